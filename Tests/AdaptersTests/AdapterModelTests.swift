import Adapters
import Encoder
import Foundation
import Tensor
import XCTest

enum TestModels {
    static let root: URL = {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { dir = dir.deletingLastPathComponent() }
        return dir
    }()

    /// The tiny random RoBERTa committed with the encoder's fixtures (2 layers, hidden 32).
    static func tinyRoberta() throws -> PretrainedEncoder {
        try PretrainedEncoder(directory: root.appendingPathComponent("Tests/EncoderTests/Fixtures/tiny-roberta"))
    }

    static let texts = ["Free entry in 2 a wkly comp to win FA Cup final tkts", "ok lar joking wif u oni",
                        "Nah I don't think he goes to usf, he lives around here though", "U dun say so early hor"]
}

final class AdapterModelTests: XCTestCase {
    func testFreshAdaptersLeaveTheEncoderUnchanged() throws {
        let pre = try TestModels.tinyRoberta()
        let enc = try pre.encode(TestModels.texts)
        let batch = EncoderBatch(enc, padId: pre.tokenizer.padId)
        let baseWorkspace = EncoderWorkspace(config: pre.model.config)
        let base = pre.model.forward(batch, workspace: baseWorkspace)
        let baseRows = Array(UnsafeBufferPointer(start: base, count: batch.rows * pre.model.config.hiddenSize))
        withExtendedLifetime(baseWorkspace) {}
        for method in AdapterMethod.allCases {
            let adapter = Adapter.initialized(config: .init(method: method, bottleneck: 8), encoder: pre.model.config, labels: ["a", "b"], seed: 1)
            let model = try AdaptedEncoder(model: pre.model, adapter: adapter)
            let ws = AdaptedWorkspace()
            model.forward(batch, workspace: ws)
            let got = Array(UnsafeBufferPointer(start: model.lastHidden(ws), count: baseRows.count))
            let d = zip(got, baseRows).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(d, 1e-5, "\(method): a fresh adapter changed the hidden states by \(d)")
        }
    }

    func testFoldedLoRAEqualsUnfolded() throws {
        let pre = try TestModels.tinyRoberta()
        let batch = EncoderBatch(try pre.encode(TestModels.texts), padId: pre.tokenizer.padId)
        var cfg = AdapterConfig(method: .lora, bottleneck: 1)
        cfg.loraTargets = ["query", "key", "value"]
        let adapter = Adapter.initialized(config: cfg, encoder: pre.model.config, labels: ["a", "b", "c"], seed: 3)
        // Non-zero B so that LoRA does something.
        var rng = SplitMix64(seed: 9)
        for t in adapter.layout.table where t.key.hasSuffix("lora_B") {
            for i in 0..<t.shape.reduce(1, *) { adapter.parameters.pointer(t.offset)[i] = 0.3 * rng.nextGaussian() }
        }
        let unfolded = try AdaptedEncoder(model: pre.model, adapter: adapter)
        let folded = unfolded.foldingLoRA()
        let w1 = AdaptedWorkspace(), w2 = AdaptedWorkspace()
        let a = Array(UnsafeBufferPointer(start: unfolded.forward(batch, workspace: w1), count: batch.batchSize * 3))
        let b = Array(UnsafeBufferPointer(start: folded.forward(batch, workspace: w2), count: batch.batchSize * 3))
        let d = zip(a, b).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(d, 1e-5, "folded vs unfolded logits differ by \(d)")
        let base = try AdaptedEncoder(model: pre.model, adapter: Adapter.initialized(config: cfg, encoder: pre.model.config, labels: ["a", "b", "c"], seed: 3))
        let c = Array(UnsafeBufferPointer(start: base.forward(batch, workspace: AdaptedWorkspace()), count: batch.batchSize * 3))
        XCTAssertGreaterThan(zip(a, c).map { abs($0 - $1) }.max()!, 1e-3, "the LoRA should change the logits")
    }
}
