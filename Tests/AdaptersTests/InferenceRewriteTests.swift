import Adapters
import Encoder
import Foundation
import Tensor
import XCTest

/// The sweep's inference rewrites against the plain forward pass: the last layer on first tokens
/// only (arithmetic reordered: logits within 1e-5, the same predictions) and many mixtures in one
/// pool of tasks (`predictEach`: bit for bit what `predict` gives each).
final class InferenceRewriteTests: XCTestCase {
    /// Every method, LoRA on query, key and value, folded and not, packed and padded batches, with
    /// and without a shared prefix.
    func testFirstTokenLastLayerMatchesTheFullLayer() throws {
        let pre = try TestModels.tinyRoberta()
        let encodings = try pre.encode(RunnerBatchingTests.texts)
        var worst: Float = 0
        for method in [AdapterMethod.pfeiffer, .houlsby, .lora] {
            for fold in method == .lora ? [false, true] : [false] {
                let adapter = RunnerBatchingTests.randomAdapter(method, encoder: pre.model.config, seed: 21, loraTargets: ["query", "key", "value"])
                var model = try AdaptedEncoder(model: pre.model, adapter: adapter)
                if fold { model = model.foldingLoRA() }
                for packed in [true, false] {
                    let batch = EncoderBatch(encodings, padId: pre.tokenizer.padId, packed: packed)
                    let K = adapter.layout.head.classes, B = batch.batchSize
                    let full = logits(model, batch, clsOnly: false), cls = logits(model, batch, clsOnly: true)
                    XCTAssertEqual(full.count, B * K)
                    let what = "\(method)\(fold ? " folded" : "")\(packed ? "" : " padded")"
                    XCTAssertNotEqual(full.map(\.bitPattern), cls.map(\.bitPattern), "\(what): the rewrite ran (some last bit differs)")
                    let d = zip(full, cls).map { abs($0 - $1) }.max()!
                    worst = max(worst, d)
                    XCTAssertLessThan(d, 1e-5, "\(what): first-token last layer vs full, max |Δlogit| \(d)")
                    for b in 0..<B {
                        XCTAssertEqual(argmax(full[(b * K)..<((b + 1) * K)]), argmax(cls[(b * K)..<((b + 1) * K)]), "\(what): example \(b)")
                    }
                }
                // Through the runner, from a shared prefix: the same predictions as the plain path.
                let plain = AdaptedRunner(model: model, threads: 2, batchSize: 4, fixedBatches: true, clsOnly: false)
                let fast = AdaptedRunner(model: model, threads: 2, batchSize: 4, fixedBatches: true, clsOnly: true)
                let prefixes = try fast.sharedPrefixes(encodings, padId: pre.tokenizer.padId)
                let a = try plain.predict(encodings, padId: pre.tokenizer.padId)
                let b = try fast.predict(encodings, padId: pre.tokenizer.padId, prefixes: prefixes)
                XCTAssertEqual(a.map(\.label), b.map(\.label))
                for (x, y) in zip(a, b) { for (u, v) in zip(x.logits, y.logits) { XCTAssertEqual(u, v, accuracy: 1e-5) } }
            }
        }
        XCTAssertGreaterThan(worst, 0)
    }

    /// A hand-sized case: one sequence, the last layer's first-token output against a direct
    /// evaluation of the full layer (the plain path) on a 2-layer model, for a one-token sequence
    /// too (where the attention is the identity on the value).
    func testOneTokenSequence() throws {
        let pre = try TestModels.tinyRoberta()
        let adapter = RunnerBatchingTests.randomAdapter(.pfeiffer, encoder: pre.model.config, seed: 8)
        let model = try AdaptedEncoder(model: pre.model, adapter: adapter)
        let e = Encoding(ids: [try pre.encode(["x"])[0].ids[0]], typeIds: [0])
        let batch = EncoderBatch([e], padId: pre.tokenizer.padId)
        let K = adapter.layout.head.classes
        let full = logits(model, batch, clsOnly: false), cls = logits(model, batch, clsOnly: true)
        XCTAssertEqual(full.count, K)
        for (u, v) in zip(full, cls) { XCTAssertEqual(u, v, accuracy: 1e-6) }
    }

    func testPredictEachIsPredictOfEach() throws {
        let pre = try TestModels.tinyRoberta()
        let encodings = try pre.encode(RunnerBatchingTests.texts)
        for method in [AdapterMethod.pfeiffer, .lora] {
            let runners = try (0..<5).map { seed in
                AdaptedRunner(model: try AdaptedEncoder(model: pre.model, adapter: RunnerBatchingTests.randomAdapter(method, encoder: pre.model.config, seed: UInt64(seed))),
                              threads: 2, batchSize: 4, fixedBatches: true)
            }
            let prefixes = try runners[0].sharedPrefixes(encodings, padId: pre.tokenizer.padId)
            for p in [nil, prefixes] {
                let each = try AdaptedRunner.predictEach(runners, encodings, padId: pre.tokenizer.padId, prefixes: p)
                XCTAssertEqual(each.count, 5)
                for (r, got) in zip(runners, each) {
                    let want = try r.predict(encodings, padId: pre.tokenizer.padId, prefixes: p)
                    XCTAssertEqual(want.map { $0.logits.map(\.bitPattern) }, got.map { $0.logits.map(\.bitPattern) }, "\(method)")
                }
                XCTAssertNotEqual(each[0].map(\.logits), each[1].map(\.logits))
            }
        }
    }

    /// Inference fuses each residual add into the LayerNorm after it (and the Pfeiffer adapter's
    /// up-projection bias into that pass) and applies the adapters' activation in place; the
    /// training forward (`keepTrace`) keeps every step apart. The same logits bit for bit, for every
    /// method, packed and padded, from the embeddings and from a shared prefix.
    func testFusedInferencePassesAreTheTrainingForwardBitForBit() throws {
        let pre = try TestModels.tinyRoberta()
        let encodings = try pre.encode(RunnerBatchingTests.texts)
        for method in [AdapterMethod.pfeiffer, .houlsby, .lora] {
            let adapter = RunnerBatchingTests.randomAdapter(method, encoder: pre.model.config, seed: 5)
            let model = try AdaptedEncoder(model: pre.model, adapter: adapter)
            for packed in [true, false] {
                let batch = EncoderBatch(encodings, padId: pre.tokenizer.padId, packed: packed)
                let fused = logits(model, batch, clsOnly: false)
                let traced = logits(model, batch, clsOnly: false, keepTrace: true)
                XCTAssertEqual(fused.map(\.bitPattern), traced.map(\.bitPattern), "\(method)\(packed ? "" : " padded")")
                let ws = AdaptedWorkspace()
                let prefix = withExtendedLifetime(ws) { model.sharedPrefix(batch, workspace: ws) }
                let fromPrefix = logits(model, batch, clsOnly: false, prefix: prefix)
                XCTAssertEqual(fromPrefix.map(\.bitPattern), traced.map(\.bitPattern), "\(method)\(packed ? "" : " padded"), from the shared prefix")
            }
        }
    }

    /// The logits of one forward pass, copied out while its workspace lives.
    private func logits(_ model: AdaptedEncoder, _ batch: EncoderBatch, clsOnly: Bool, keepTrace: Bool = false, prefix: SharedPrefix? = nil) -> [Float] {
        let ws = AdaptedWorkspace()
        return withExtendedLifetime(ws) {
            Array(UnsafeBufferPointer(start: model.forward(batch, workspace: ws, keepTrace: keepTrace, prefix: prefix, clsOnly: clsOnly),
                                      count: batch.batchSize * model.adapter.layout.head.classes))
        }
    }

    private func argmax(_ row: ArraySlice<Float>) -> Int {
        var best = row.startIndex
        for i in row.indices where row[i] > row[best] { best = i }
        return best - row.startIndex
    }
}
