import Adapters
import Datasets
import Encoder
import Foundation
import Tensor
import XCTest

/// The sweep's inference rewrites on the real base model (all-MiniLM-L6-v2, packaged by `make
/// setup`) and the demo's four domains: for each adapter method, each domain's adapter and the
/// average of all four (the domain's head), every rewrite against the plain forward pass —
/// shared prefix and pooled mixtures bit for bit; the first-token last layer and LoRA folding,
/// which reorder arithmetic, within 1e-5 per logit with every prediction the same.
final class DemoDomainRewriteTests: XCTestCase {
    static let domains = ["election-tweets", "rotten-tomatoes", "sms-spam", "tweet-sentiment"]

    func testRewritesKeepEveryPredictionOnTheDemoDomains() throws {
        let modelDir = PretrainedEncoder.defaultModelDirectory()
        guard FileManager.default.fileExists(atPath: modelDir.appendingPathComponent("model.safetensors").path) else {
            throw XCTSkip("\(modelDir.path) is missing: run make setup")
        }
        let pre = try PretrainedEncoder(directory: modelDir)
        let catalog = try DomainCatalog(assets: PretrainedEncoder.assetsDirectory())
        var examples = 0, compared = 0
        var worst: Float = 0
        for method in [AdapterMethod.pfeiffer, .houlsby, .lora] {
            // One seeded adapter per domain: small random weights, so that the base model's features
            // matter, and a head giving logits of a trained one's size (a few units).
            var members: [MixMember] = []
            var texts: [String: [String]] = [:]
            for (i, d) in Self.domains.enumerated() {
                let split = try catalog.load(d, options: SplitOptions(seed: 42, maxTest: 16))
                texts[d] = split.test.map(\.text)
                var cfg = AdapterConfig(method: method, bottleneck: 16)
                if method == .lora { cfg.loraTargets = ["query", "key", "value"] }
                let a = Adapter.initialized(config: cfg, encoder: pre.model.config, labels: split.labels, seed: UInt64(10 + i))
                var rng = SplitMix64(seed: UInt64(100 + i))
                for j in 0..<a.layout.count { a.parameters.base[j] = (j < a.layout.bodyCount ? 0.05 : 0.1) * rng.nextGaussian() }
                members.append(MixMember(name: d, adapter: a))
            }
            for target in members {
                let average = try Mixing.mix(target: target, members: members, options: MixOptions(strategy: .average)).adapter
                let encodings = try pre.encode(texts[target.name]!, maxLength: 64)
                let pad = pre.tokenizer.padId
                func runner(_ a: Adapter, cls: Bool, fold: Bool = false) throws -> AdaptedRunner {
                    let m = try AdaptedEncoder(model: pre.model, adapter: a)
                    return AdaptedRunner(model: fold ? m.foldingLoRA() : m, threads: 2, batchSize: 8, fixedBatches: true, clsOnly: cls)
                }
                let adapters = [target.adapter, average]
                let plain = try adapters.map { try runner($0, cls: false).predict(encodings, padId: pad) }
                XCTAssertNotEqual(plain[0].map(\.logits), plain[1].map(\.logits), "\(method) \(target.name): the mixture differs from the adapter")
                let prefixes = try runner(target.adapter, cls: true).sharedPrefixes(encodings, padId: pad)
                // Shared prefix alone: bit for bit.
                for (a, want) in zip(adapters, plain) {
                    let got = try runner(a, cls: false).predict(encodings, padId: pad, prefixes: prefixes)
                    XCTAssertEqual(want.map { $0.logits.map(\.bitPattern) }, got.map { $0.logits.map(\.bitPattern) }, "\(method) \(target.name): shared prefix")
                }
                // Everything the sweep does: prefix, first-token last layer, both mixtures pooled (and LoRA folded).
                var variants: [(String, [[Prediction]])] = [
                    ("prefix + first-token last layer + pooled",
                     try AdaptedRunner.predictEach(try adapters.map { try runner($0, cls: true) }, encodings, padId: pad, prefixes: prefixes)),
                ]
                if method == .lora {
                    variants.append(("LoRA folded + first-token last layer", try adapters.map { try runner($0, cls: true, fold: true).predict(encodings, padId: pad) }))
                    variants.append(("LoRA folded", try adapters.map { try runner($0, cls: false, fold: true).predict(encodings, padId: pad) }))
                }
                for (name, got) in variants {
                    for (want, have) in zip(plain, got) {
                        XCTAssertEqual(want.map(\.label), have.map(\.label), "\(method) \(target.name), \(name): a prediction changed")
                        for (x, y) in zip(want, have) {
                            for (u, v) in zip(x.logits, y.logits) { worst = max(worst, abs(u - v)) }
                            compared += 1
                        }
                    }
                }
                examples += encodings.count
            }
        }
        XCTAssertLessThan(worst, 1e-5, "max |Δlogit| over \(compared) examples")
        XCTAssertGreaterThan(worst, 0, "the reordered rewrites ran")
        XCTAssertEqual(examples, 3 * 4 * 16)
    }
}
