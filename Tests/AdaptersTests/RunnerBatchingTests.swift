import Adapters
import Encoder
import Foundation
import Tensor
import XCTest

/// `AdaptedRunner(fixedBatches: true)`: the same batches, and so the same logits to the bit, for any
/// thread count.
final class RunnerBatchingTests: XCTestCase {
    /// Eleven texts of different lengths (so the length sort and padding matter), on the tiny RoBERTa.
    static let texts = TestModels.texts + [
        "Had your mobile 11 months or more? U R entitled to Update to the latest colour mobiles with camera for Free!",
        "I'm gonna be home soon", "Even my brother is not like to speak with me. They treat me like aids patent.",
        "As per your request 'Melle Melle (Oru Minnaminunginte Nurungu Vettam)' has been set as your callertune",
        "WINNER!! As a valued network customer you have been selected", "Is that seriously how you spell his name?",
        "Oh k...i'm watching here:)",
    ]

    /// An adapter whose every parameter is random, so that the body, the head and (for LoRA) B all matter.
    static func randomAdapter(_ method: AdapterMethod, encoder: EncoderConfig, seed: UInt64,
                              loraTargets: [String] = ["query", "value"]) -> Adapter {
        var cfg = AdapterConfig(method: method, bottleneck: 4)
        if method == .lora { cfg.loraTargets = loraTargets }
        let a = Adapter.initialized(config: cfg, encoder: encoder, labels: ["a", "b", "c"], seed: seed)
        var rng = SplitMix64(seed: seed &+ 101)
        for i in 0..<a.layout.count { a.parameters.base[i] = 0.3 * rng.nextGaussian() }
        return a
    }

    func testFixedBatchesGiveBitIdenticalLogitsForAnyThreadCount() throws {
        let pre = try TestModels.tinyRoberta()
        let encodings = try pre.encode(Self.texts)
        let labels = Self.texts.indices.map { $0 % 3 }
        for method in [AdapterMethod.pfeiffer, .lora] {
            let model = try AdaptedEncoder(model: pre.model, adapter: Self.randomAdapter(method, encoder: pre.model.config, seed: 5))
            let clean = method == .lora ? model.foldingLoRA() : model
            func runner(_ m: AdaptedEncoder, threads: Int, fixed: Bool) -> AdaptedRunner {
                AdaptedRunner(model: m, threads: threads, batchSize: 8, fixedBatches: fixed)
            }
            // By default three threads cut the eleven examples into ⌈11 / 3⌉ = 4 per batch, one thread into 8;
            // fixed batches are 8 + 3 for both.
            XCTAssertEqual(runner(clean, threads: 1, fixed: false).batches(encodings).map(\.count), [8, 3])
            XCTAssertEqual(runner(clean, threads: 3, fixed: false).batches(encodings).map(\.count), [4, 4, 3])
            XCTAssertEqual(runner(clean, threads: 3, fixed: true).batches(encodings), runner(clean, threads: 1, fixed: true).batches(encodings))
            XCTAssertEqual(runner(clean, threads: 3, fixed: true).batches(encodings).map(\.count), [8, 3])

            let one = try runner(clean, threads: 1, fixed: true).predict(encodings, padId: pre.tokenizer.padId)
            let three = try runner(clean, threads: 3, fixed: true).predict(encodings, padId: pre.tokenizer.padId)
            XCTAssertEqual(one.map { $0.logits.map(\.bitPattern) }, three.map { $0.logits.map(\.bitPattern) },
                           "\(method): clean logits differ between 1 and 3 threads")
            let fgsmOne = try runner(model, threads: 1, fixed: true)
                .predict(encodings, padId: pre.tokenizer.padId, labels: labels, fgsmEpsilon: 0.05)
            let fgsmThree = try runner(model, threads: 3, fixed: true)
                .predict(encodings, padId: pre.tokenizer.padId, labels: labels, fgsmEpsilon: 0.05)
            XCTAssertEqual(fgsmOne.map { $0.logits.map(\.bitPattern) }, fgsmThree.map { $0.logits.map(\.bitPattern) },
                           "\(method): FGSM logits differ between 1 and 3 threads")
            XCTAssertNotEqual(one.map(\.logits), fgsmOne.map(\.logits), "\(method): the attack should move the logits")

            // The batches do not change the function, only its last bits.
            let unfixed = try runner(clean, threads: 3, fixed: false).predict(encodings, padId: pre.tokenizer.padId)
            for (u, f) in zip(unfixed, three) {
                XCTAssertLessThan(zip(u.logits, f.logits).map { abs($0 - $1) }.max()!, 1e-4, "\(method)")
            }
        }
    }
}
