import Adapters
import Encoder
import Foundation
import Tensor
import XCTest

/// The shared prefix (everything before the first adapter, computed once per batch) is an exact
/// rewrite: starting from a prefix made by one adapter, another adapter of the same method gets
/// the logits of its plain forward pass bit for bit.
final class SharedPrefixTests: XCTestCase {
    func testPrefixFromAnotherAdapterGivesBitIdenticalLogits() throws {
        let pre = try TestModels.tinyRoberta()
        let texts = RunnerBatchingTests.texts
        let encodings = try pre.encode(texts)
        for method in [AdapterMethod.pfeiffer, .houlsby, .lora] {
            for fold in method == .lora ? [false, true] : [false] {
                func encoder(_ seed: UInt64) throws -> AdaptedEncoder {
                    let m = try AdaptedEncoder(model: pre.model, adapter: RunnerBatchingTests.randomAdapter(method, encoder: pre.model.config, seed: seed))
                    return fold ? m.foldingLoRA() : m
                }
                let a = try encoder(3), b = try encoder(4)
                let runnerA = AdaptedRunner(model: a, threads: 2, batchSize: 4, fixedBatches: true)
                let runnerB = AdaptedRunner(model: b, threads: 2, batchSize: 4, fixedBatches: true)
                let prefixes = try runnerA.sharedPrefixes(encodings, padId: pre.tokenizer.padId)
                XCTAssertEqual(prefixes.count, 3, "11 texts in batches of 4")
                XCTAssertEqual(prefixes[0].point, a.prefixPoint)
                XCTAssertEqual(prefixes[0].second == nil, method == .lora)
                let plain = try runnerB.predict(encodings, padId: pre.tokenizer.padId)
                let shared = try runnerB.predict(encodings, padId: pre.tokenizer.padId, prefixes: prefixes)
                XCTAssertEqual(plain.map { $0.logits.map(\.bitPattern) }, shared.map { $0.logits.map(\.bitPattern) },
                               "\(method)\(fold ? " folded" : ""): logits from the shared prefix differ")
                // The two adapters do differ (so the comparison means something).
                let other = try runnerA.predict(encodings, padId: pre.tokenizer.padId)
                XCTAssertNotEqual(plain.map(\.logits), other.map(\.logits))
            }
        }
    }
}
