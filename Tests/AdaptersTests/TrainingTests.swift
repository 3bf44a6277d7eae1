import Adapters
import Encoder
import Foundation
import Tensor
import XCTest

final class TrainingTests: XCTestCase {
    /// A small real task: SMS messages containing "free"/"win"/"prize"-style spam vs ordinary ones.
    static let texts: [(String, Int)] = [
        ("Free entry in 2 a wkly comp to win FA Cup final tkts", 1), ("WINNER!! You have been selected to receive a prize", 1),
        ("URGENT! You have won a 1 week FREE membership", 1), ("Congratulations you won a free cash prize call now", 1),
        ("Claim your free ringtone now text WIN", 1), ("You have WON a guaranteed 1000 cash prize", 1),
        ("Ok lar joking wif u oni", 0), ("U dun say so early hor", 0), ("Nah I don't think he goes to usf", 0),
        ("I'm gonna be home soon and i don't want to talk", 0), ("Even my brother is not like to speak with me", 0),
        ("As per your request the tune has been set", 0),
    ]

    func train(seed: UInt64, threads: Int, epochs: Int = 6) throws -> (Adapter, [EpochReport]) {
        let pre = try TestModels.tinyRoberta()
        let enc = try pre.encode(Self.texts.map(\.0))
        let labels = Self.texts.map(\.1)
        let adapter = Adapter.initialized(config: .init(method: .pfeiffer, bottleneck: 8), encoder: pre.model.config, labels: ["ham", "spam"], seed: seed)
        var options = TrainingOptions()
        options.epochs = epochs
        options.batchSize = 4
        options.learningRate = 5e-3
        options.seed = seed
        options.threads = threads
        let reports = try AdapterTrainer(model: try AdaptedEncoder(model: pre.model, adapter: adapter), options: options)
            .train(train: enc, trainLabels: labels, validation: enc, validationLabels: labels, padId: pre.tokenizer.padId)
        return (adapter, reports)
    }

    func testTrainingLearnsAndIsDeterministic() throws {
        let (a, reports) = try train(seed: 5, threads: 2)
        XCTAssertLessThan(reports.last!.trainLoss, reports.first!.trainLoss, "loss should fall: \(reports.map(\.trainLoss))")
        XCTAssertGreaterThanOrEqual(reports.map(\.validation.accuracy).max()!, 0.75, "learns most of 12 examples: \(reports.map(\.validation.accuracy))")
        let (b, _) = try train(seed: 5, threads: 2)
        let n = a.layout.count
        XCTAssertEqual(Array(UnsafeBufferPointer(start: a.parameters.base, count: n)), Array(UnsafeBufferPointer(start: b.parameters.base, count: n)),
                       "same seed and thread count → identical parameters")
        let (c, _) = try train(seed: 6, threads: 2)
        XCTAssertNotEqual(Array(UnsafeBufferPointer(start: a.parameters.base, count: n)), Array(UnsafeBufferPointer(start: c.parameters.base, count: n)))
    }

    func testAdamWMatchesPyTorchOnAHandComputedStep() {
        // One parameter, g = 0.5, lr 0.1, wd 0.01, β = (0.9, 0.999), ε = 1e-8, step 1:
        // θ ← 1·(1 − 0.001) = 0.999; m = 0.05, v = 0.00025; m̂ = 0.5, v̂ = 0.25; θ ← 0.999 − 0.1·0.5/(0.5 + 1e-8) = 0.899.
        var options = TrainingOptions()
        options.learningRate = 0.1
        let cfg = EncoderConfig(modelType: .bert, vocabSize: 4, hiddenSize: 2, numHiddenLayers: 1, numAttentionHeads: 1, intermediateSize: 2,
                                maxPositionEmbeddings: 4, typeVocabSize: 1)
        let layout = AdapterLayout(config: .init(method: .pfeiffer, bottleneck: 1), encoder: cfg, classes: 2)
        let opt = AdamW(layout: layout, options: options)
        let p = ParameterBuffer(count: layout.count), g = ParameterBuffer(count: layout.count)
        let w = layout.layers[0].ffn!.downWeight, b = layout.layers[0].ffn!.downBias
        p.base[w] = 1; g.base[w] = 0.5
        p.base[b] = 1; g.base[b] = 0.5
        opt.update(p, grads: g, lr: 0.1)
        XCTAssertEqual(p.base[w], 0.899, accuracy: 1e-6)
        XCTAssertEqual(p.base[b], 0.9, accuracy: 1e-6, "biases do not decay")
    }

    func testLinearWarmupSchedule() {
        // transformers' get_linear_schedule_with_warmup, T = 10, W = 2: updates use λ(0), λ(1), …
        XCTAssertEqual(linearWarmupDecay(update: 1, total: 10, warmup: 2), 0)
        XCTAssertEqual(linearWarmupDecay(update: 2, total: 10, warmup: 2), 0.5)
        XCTAssertEqual(linearWarmupDecay(update: 3, total: 10, warmup: 2), 1)
        XCTAssertEqual(linearWarmupDecay(update: 10, total: 10, warmup: 2), 0.125, accuracy: 1e-6)  // (10 − 9) / (10 − 2)
    }

    func testScores() {
        let s = ClassificationScores(predicted: [0, 0, 1, 1, 2], targets: [0, 1, 1, 1, 0], classes: 3)
        XCTAssertEqual(s.accuracy, 0.6, accuracy: 1e-12)
        // F1: class 0: tp 1, fp 1, fn 1 → 0.5; class 1: tp 2, fp 0, fn 1 → 0.8; class 2: tp 0, fp 1 → 0. Mean 0.4333.
        XCTAssertEqual(s.macroF1, (0.5 + 0.8 + 0) / 3, accuracy: 1e-12)
    }

    func testFGSMMovesPredictionsAndZeroEpsilonDoesNot() throws {
        let (adapter, _) = try train(seed: 5, threads: 1, epochs: 4)
        let pre = try TestModels.tinyRoberta()
        let enc = try pre.encode(Self.texts.map(\.0))
        let labels = Self.texts.map(\.1)
        let runner = AdaptedRunner(model: try AdaptedEncoder(model: pre.model, adapter: adapter), threads: 2, batchSize: 4)
        let clean = try runner.predict(enc, padId: 1)
        let zero = try runner.predict(enc, padId: 1, labels: labels, fgsmEpsilon: 0)
        XCTAssertEqual(clean.map(\.label), zero.map(\.label))
        for (a, b) in zip(clean, zero) { XCTAssertEqual(a.logits, b.logits) }
        let attacked = try runner.predict(enc, padId: 1, labels: labels, fgsmEpsilon: 0.5)
        // The loss of the true class rises for every example under a sign-gradient step.
        var rose = 0
        for i in enc.indices {
            func nll(_ z: [Float]) -> Float { let m = z.max()!; return log(z.reduce(0) { $0 + exp($1 - m) }) + m - z[labels[i]] }
            if nll(attacked[i].logits) > nll(clean[i].logits) { rose += 1 }
        }
        XCTAssertGreaterThanOrEqual(rose, enc.count - 1, "FGSM should raise the loss of (almost) every example")
    }
}
