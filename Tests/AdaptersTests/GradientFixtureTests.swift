import Adapters
import Encoder
import Foundation
import Tensor
import XCTest

/// Golden gradients from the reference implementation (AdapterHub `adapters` 1.3.0 on PyTorch, made by
/// scripts/fixtures/make_adapter_fixtures.py): for each method, the tiny RoBERTa with an adapter and
/// a 2-layer classification head whose every parameter is N(0, 0.1), 4 texts, mean cross-entropy.
/// Checks logits, loss, every parameter gradient tensor by tensor and the embedding-sum gradient.
final class GradientFixtureTests: XCTestCase {
    private struct Inputs: Decodable {
        var texts: [String]
        var labels: [Int]
        var ids: [[Int]]
    }

    private static let fixtures: URL = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!

    private static let packageRoot: URL = {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { dir = dir.deletingLastPathComponent() }
        return dir
    }()

    private static func maxAbsDiff(_ a: UnsafePointer<Float>, _ b: [Float]) -> Float {
        var d: Float = 0
        for i in b.indices { d = max(d, abs(a[i] - b[i])) }
        return d
    }

    func testPfeifferGradientsMatchAdapterHub() throws {
        try check("pfeiffer", config: AdapterConfig(method: .pfeiffer, bottleneck: 8))
    }

    func testHoulsbyGradientsMatchAdapterHub() throws {
        try check("houlsby", config: AdapterConfig(method: .houlsby, bottleneck: 8))
    }

    func testLoRAGradientsMatchAdapterHub() throws {
        try check("lora", config: AdapterConfig(method: .lora, bottleneck: 8, loraRank: 4, loraAlpha: 8, loraTargets: ["query", "value"]))
    }

    private func check(_ stem: String, config: AdapterConfig) throws {
        XCTAssertEqual(config.nonLinearity, stem == "houlsby" ? .swish : .relu)
        let inputs = try JSONDecoder().decode(Inputs.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("grad_inputs.json")))
        let file = try SafeTensorsFile(url: Self.fixtures.appendingPathComponent("grad_\(stem).safetensors"))
        let pre = try PretrainedEncoder(directory: Self.packageRoot.appendingPathComponent("Tests/EncoderTests/Fixtures/tiny-roberta"))
        let C = pre.model.config.hiddenSize

        // Token ids must be the reference tokenizer's.
        let encodings = try pre.encode(inputs.texts)
        XCTAssertEqual(encodings.map(\.ids), inputs.ids, "token ids differ from the fixture's")
        let batch = EncoderBatch(encodings, padId: pre.tokenizer.padId)

        // Parameters: every layout key must be in the fixture and every fixture parameter in the layout.
        let adapter = Adapter.initialized(config: config, encoder: pre.model.config, labels: ["0", "1", "2"], seed: 1)
        let layout = adapter.layout
        let ours = Set(layout.table.map(\.key))
        let theirs = Set(file.names.filter { !$0.hasPrefix("grad/") && !$0.hasPrefix("dembed/") && $0 != "logits" && $0 != "loss" })
        let onlyOurs = ours.subtracting(theirs).sorted(), onlyTheirs = theirs.subtracting(ours).sorted()
        guard onlyOurs.isEmpty, onlyTheirs.isEmpty else {
            XCTFail("\(stem): keys only in our layout: \(onlyOurs); only in the fixture: \(onlyTheirs)")
            return
        }
        for t in layout.table {
            let v = try file.floats(t.key, shape: t.shape)
            adapter.parameters.pointer(t.offset).update(from: v, count: v.count)
        }

        // Forward: logits and loss.
        let model = try AdaptedEncoder(model: pre.model, adapter: adapter)
        let ws = AdaptedWorkspace()
        let B = batch.batchSize, K = 3
        let logits = model.forward(batch, workspace: ws, keepTrace: true)
        let logitsDiff = Self.maxAbsDiff(logits, try file.floats("logits", shape: [B, K]))
        XCTAssertLessThan(logitsDiff, 1e-5, "\(stem): logits differ by \(logitsDiff)")
        let targets = inputs.labels.map { Int32($0) }
        var dLogits = [Float](repeating: 0, count: B * K)
        let loss = crossEntropyForwardBackward(dLogits: &dLogits, logits: logits, targets: targets, rows: B, classes: K)
        let refLoss = try file.floats("loss", shape: [1])[0]
        XCTAssertEqual(loss, refLoss, accuracy: 1e-5, "\(stem): loss")

        // Backward: every gradient tensor.
        let grads = ParameterBuffer(count: layout.count)
        model.backward(batch, workspace: ws, dLogits: dLogits, grads: grads)
        var worst: (key: String, diff: Float, ratio: Float) = ("", 0, -1)
        var report: [String] = []
        for t in layout.table {
            let ref = try file.floats("grad/" + t.key, shape: t.shape)
            let diff = Self.maxAbsDiff(grads.pointer(t.offset), ref)
            let scale = ref.map(abs).max() ?? 0
            let tolerance = 1e-5 + 1e-3 * scale
            XCTAssertLessThanOrEqual(diff, tolerance, "\(stem): gradient of \(t.key) differs by \(diff) (max |grad| \(scale))")
            if diff / tolerance > worst.ratio { worst = (t.key, diff, diff / tolerance) }
            report.append("\(t.key): \(diff) / max|g| \(scale)")
        }

        // The embedding-sum gradient, per sequence's real tokens.
        var dEmbedDiff: Float = 0
        for b in 0..<B {
            let L = batch.lengths[b]
            let ref = try file.floats("dembed/\(b)", shape: [L, C])
            let scale = ref.map(abs).max() ?? 0
            let diff = Self.maxAbsDiff(ws.dEmbeddings.pointer + batch.rowStart[b] * C, ref)
            XCTAssertLessThanOrEqual(diff, 1e-5 + 1e-3 * scale, "\(stem): dEmbeddings of sequence \(b) differ by \(diff) (max |g| \(scale))")
            dEmbedDiff = max(dEmbedDiff, diff)
        }
        let summary = "\(stem): logits \(logitsDiff), loss \(abs(loss - refLoss)), worst gradient \(worst.key) \(worst.diff) "
            + "(\(worst.ratio) of its tolerance), dEmbeddings \(dEmbedDiff)"
        print(summary)
        if ProcessInfo.processInfo.environment["GRADIENT_FIXTURE_VERBOSE"] != nil { print(report.joined(separator: "\n")) }
        withExtendedLifetime(ws) {}
    }
}
