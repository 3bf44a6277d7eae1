import Encoder
import Foundation
import XCTest

/// Hidden states and pooled embeddings against Hugging Face transformers (golden fixtures made by
/// scripts/fixtures/make_encoder_fixtures.py), for the packaged MiniLM and a tiny RoBERTa.
final class EncoderParityTests: XCTestCase {
    func testMiniLMMatchesTransformers() throws {
        try checkParity(modelDir: try Paths.requireMiniLM(), stem: "minilm")
    }

    func testTinyRobertaMatchesTransformers() throws {
        try checkParity(modelDir: Paths.fixtures.appendingPathComponent("tiny-roberta"), stem: "tiny_roberta")
    }

    private func checkParity(modelDir: URL, stem: String) throws {
        let pretrained = try PretrainedEncoder(directory: modelDir)
        let cases = try EncoderCase.load("\(stem)_cases.json")
        let golden = try SafeTensorsFile(url: Paths.fixtures.appendingPathComponent("\(stem)_hidden.safetensors"))

        // Token ids exactly as `tokenizers` made them.
        var encodings: [Encoding] = []
        for (i, c) in cases.enumerated() {
            let e = try pretrained.tokenizer.encode(c.text, pair: c.pair, maxLength: c.max_length)
            XCTAssertEqual(e.ids, c.ids, "ids of case \(i): \(c.text.prefix(40))")
            XCTAssertEqual(e.typeIds, c.type_ids, "type ids of case \(i)")
            encodings.append(e)
        }

        // Batches of 3 mix lengths, so padding and masking are exercised; 2 threads; both layouts.
        for packed in [true, false] {
            try compare(pretrained, encodings, cases, golden, runner: EncoderRunner(model: pretrained.model, threads: 2, batchSize: 3, packed: packed),
                        label: "\(stem) \(packed ? "packed" : "padded")")
        }
    }

    private func compare(_ pretrained: PretrainedEncoder, _ encodings: [Encoding], _ cases: [EncoderCase], _ golden: SafeTensorsFile,
                         runner: EncoderRunner, label stem: String) throws {
        let C = pretrained.model.config.hiddenSize
        let hidden = try runner.hiddenStates(encodings, padId: pretrained.tokenizer.padId)
        let mean = try runner.embed(encodings, padId: pretrained.tokenizer.padId, pooling: .mean, normalize: false)
        let meanNorm = try runner.embed(encodings, padId: pretrained.tokenizer.padId, pooling: .mean, normalize: true)
        let cls = try runner.embed(encodings, padId: pretrained.tokenizer.padId, pooling: .cls, normalize: false)
        var worst: Float = 0
        for i in cases.indices {
            let want = try golden.floats("hidden.\(i)", shape: [encodings[i].ids.count, C])
            let d = maxAbsDiff(hidden[i], want)
            worst = max(worst, d)
            XCTAssertLessThan(d, 1e-4, "hidden state of case \(i) (\(cases[i].text.prefix(40))): max abs diff \(d)")
            XCTAssertLessThan(maxAbsDiff(mean[i], try golden.floats("mean.\(i)")), 1e-4, "mean pooling, case \(i)")
            XCTAssertLessThan(maxAbsDiff(meanNorm[i], try golden.floats("mean_norm.\(i)")), 1e-4, "normalised mean, case \(i)")
            XCTAssertLessThan(maxAbsDiff(cls[i], try golden.floats("cls.\(i)")), 1e-4, "CLS pooling, case \(i)")
        }
        print("\(stem): \(cases.count) cases, worst hidden-state max abs diff \(worst)")
    }

    func testResultsDoNotDependOnThreadsOrBatching() throws {
        let pretrained = try PretrainedEncoder(directory: Paths.fixtures.appendingPathComponent("tiny-roberta"))
        let cases = try EncoderCase.load("tiny_roberta_cases.json")
        let encodings = try cases.map { try pretrained.tokenizer.encode($0.text, pair: $0.pair, maxLength: $0.max_length) }
        let one = try EncoderRunner(model: pretrained.model, threads: 1, batchSize: 1).hiddenStates(encodings, padId: 1)
        let many = try EncoderRunner(model: pretrained.model, threads: 2, batchSize: 8).hiddenStates(encodings, padId: 1)
        let padded = try EncoderRunner(model: pretrained.model, threads: 2, batchSize: 8, packed: false).hiddenStates(encodings, padId: 1)
        for i in encodings.indices {
            XCTAssertLessThan(maxAbsDiff(one[i], many[i]), 1e-5, "case \(i)")
            XCTAssertLessThan(maxAbsDiff(one[i], padded[i]), 1e-5, "case \(i), padded layout")
        }
    }
}
