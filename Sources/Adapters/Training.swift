import Dispatch
import Encoder
import Foundation
import Tensor

/// Hyper-parameters of adapter training. Defaults: AdapterHub's recipe (AdamW, linear schedule,
/// batch 32), with a higher learning rate and fewer epochs for the small MiniLM encoder and the
/// demo's capped domains (docs/adapters.md).
public struct TrainingOptions: Sendable, Codable, Equatable {
    public var epochs = 3
    public var batchSize = 32
    public var learningRate: Float = 1e-3
    public var weightDecay: Float = 0.01
    public var warmupRatio: Float = 0.1
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public var maxGradNorm: Float = 1.0
    public var seed: UInt64 = 42
    public var threads = ProcessInfo.processInfo.activeProcessorCount

    enum CodingKeys: String, CodingKey {
        case epochs, batchSize = "batch_size", learningRate = "learning_rate", weightDecay = "weight_decay"
        case warmupRatio = "warmup_ratio", beta1 = "beta1", beta2 = "beta2", epsilon, maxGradNorm = "max_grad_norm", seed, threads
    }

    public init() {}
}

/// What happened in one epoch.
public struct EpochReport: Sendable, Codable, Equatable {
    public var epoch: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var validation: ClassificationScores
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case epoch, trainLoss = "train_loss", trainAccuracy = "train_accuracy", validation, seconds
    }
}

/// Progress of training, for a progress bar.
public struct TrainingProgress: Sendable {
    public var epoch: Int
    public var epochs: Int
    public var step: Int            // within the epoch
    public var steps: Int           // per epoch
    public var loss: Double         // running mean over the epoch
    public var accuracy: Double     // running, on training batches
    public var elapsed: Double      // seconds since training started
    public var remaining: Double    // estimated
}

/// AdamW as torch.optim.AdamW: decoupled decay θ ← θ·(1 − lr·λ) first, then
/// θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε). Moments share the adapter's layout.
public final class AdamW {
    let m: ParameterBuffer, v: ParameterBuffer
    let decay: [Bool]  // per parameter: weights decay, biases do not (as the HF Trainer)
    public private(set) var step = 0
    let options: TrainingOptions

    public init(layout: AdapterLayout, options: TrainingOptions) {
        m = ParameterBuffer(count: layout.count)
        v = ParameterBuffer(count: layout.count)
        var decay = [Bool](repeating: false, count: layout.count)
        for t in layout.table where !t.key.hasSuffix("bias") {
            for i in t.offset..<(t.offset + t.shape.reduce(1, *)) { decay[i] = true }
        }
        self.decay = decay
        self.options = options
    }

    public func update(_ params: ParameterBuffer, grads: ParameterBuffer, lr: Float) {
        step += 1
        let b1 = options.beta1, b2 = options.beta2
        let bc1 = 1 - pow(b1, Float(step)), bc2 = 1 - pow(b2, Float(step))
        let stepSize = lr / bc1, sqrtBc2 = bc2.squareRoot(), wd = lr * options.weightDecay
        let p = params.base, g = grads.base, mp = m.base, vp = v.base
        for i in 0..<params.count {
            if decay[i] { p[i] *= 1 - wd }
            mp[i] = b1 * mp[i] + (1 - b1) * g[i]
            vp[i] = b2 * vp[i] + (1 - b2) * g[i] * g[i]
            p[i] -= stepSize * mp[i] / (vp[i].squareRoot() / sqrtBc2 + options.epsilon)
        }
    }
}

/// transformers' `get_linear_schedule_with_warmup`: the k-th update (k = 1…T) uses λ(k − 1),
/// λ(s) = s / W during warm-up, then (T − s) / (T − W).
public func linearWarmupDecay(update k: Int, total T: Int, warmup W: Int) -> Float {
    let s = k - 1
    if s < W { return Float(s) / Float(max(1, W)) }
    return max(0, Float(T - s) / Float(max(1, T - W)))
}

/// Trains one adapter and its head on the frozen encoder.
///
/// Each batch is split across threads (whole sub-batches, single-threaded BLAS); their gradients
/// are summed in a fixed order, so a run is deterministic for a given seed and thread count.
public final class AdapterTrainer {
    public let model: AdaptedEncoder
    public let options: TrainingOptions

    public init(model: AdaptedEncoder, options: TrainingOptions) {
        self.model = model
        self.options = options
        BLAS.setThreads(1)
    }

    /// Trains on (encoding, label) pairs, validating after every epoch; the adapter ends with the
    /// parameters of the epoch with the best validation accuracy. Returns the epochs' reports.
    public func train(train: [Encoding], trainLabels: [Int], validation: [Encoding], validationLabels: [Int], padId: Int,
                      progress: ((TrainingProgress) -> Void)? = nil) throws -> [EpochReport] {
        precondition(train.count == trainLabels.count && validation.count == validationLabels.count)
        guard !train.isEmpty else { throw AdapterError(file: "training data", reason: "no training examples", hint: "check the domain's train split") }
        let layout = model.adapter.layout, params = model.adapter.parameters, K = layout.head.classes
        let threads = max(1, options.threads), B = max(1, options.batchSize)
        let stepsPerEpoch = (train.count + B - 1) / B, total = stepsPerEpoch * options.epochs
        let warmup = Int((Float(total) * options.warmupRatio).rounded(.up))
        let optimizer = AdamW(layout: layout, options: options)
        let grads = ParameterBuffer(count: layout.count)
        let shardGrads = (0..<threads).map { _ in ParameterBuffer(count: layout.count) }
        let workspaces = PerThread((0..<threads).map { _ in AdaptedWorkspace() })
        let best = ParameterBuffer(count: layout.count)
        best.base.update(from: params.base, count: layout.count)
        var bestAccuracy = -1.0
        var reports: [EpochReport] = []
        var rng = SplitMix64(seed: options.seed)
        let start = DispatchTime.now().uptimeNanoseconds
        var update = 0
        let runner = AdaptedRunner(model: model, threads: threads, batchSize: B)
        for epoch in 1...options.epochs {
            let epochStart = DispatchTime.now().uptimeNanoseconds
            var order = Array(train.indices)
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            var lossSum = 0.0, correct = 0, seen = 0
            for step in 0..<stepsPerEpoch {
                let ids = Array(order[(step * B)..<min((step + 1) * B, order.count)])
                // Shards of the batch, one per thread.
                let per = (ids.count + threads - 1) / threads
                let shards = stride(from: 0, to: ids.count, by: per).map { Array(ids[$0..<min($0 + per, ids.count)]) }
                let results = ShardResults(count: shards.count)
                let model = self.model
                for g in shardGrads { g.base.initialize(repeating: 0, count: layout.count) }
                DispatchQueue.concurrentPerform(iterations: shards.count) { s in
                    let shard = shards[s]
                    let batch = EncoderBatch(shard.map { train[$0] }, padId: padId)
                    let logits = model.forward(batch, workspace: workspaces[s], keepTrace: true)
                    let targets = shard.map { Int32(trainLabels[$0]) }
                    let dLogits = UnsafeMutablePointer<Float>.allocate(capacity: shard.count * K)
                    defer { dLogits.deallocate() }
                    let loss = crossEntropyForwardBackward(dLogits: dLogits, logits: logits, targets: targets, rows: shard.count, classes: K)
                    // The batch loss is the mean over all of its examples.
                    scaleInPlace(dLogits, Float(shard.count) / Float(ids.count), count: shard.count * K)
                    model.backward(batch, workspace: workspaces[s], dLogits: dLogits, grads: shardGrads[s])
                    var right = 0
                    for b in 0..<shard.count {
                        var arg = 0
                        for c in 1..<K where logits[b * K + c] > logits[b * K + arg] { arg = c }
                        if arg == Int(targets[b]) { right += 1 }
                    }
                    results.set(s, loss: Double(loss) * Double(shard.count), correct: right)
                }
                grads.base.initialize(repeating: 0, count: layout.count)
                for s in 0..<shards.count { addForward(out: grads.base, grads.base, shardGrads[s].base, count: layout.count) }
                // Clip the global gradient norm (as the HF Trainer, max_grad_norm 1.0).
                var norm = 0.0
                for i in 0..<layout.count { norm += Double(grads.base[i]) * Double(grads.base[i]) }
                norm = norm.squareRoot()
                guard norm.isFinite else {
                    throw AdapterError(file: "training", reason: "the gradient became \(norm) at epoch \(epoch), step \(step + 1)",
                                       hint: "lower the learning rate")
                }
                if options.maxGradNorm > 0, norm > Double(options.maxGradNorm) {
                    scaleInPlace(grads.base, Float(Double(options.maxGradNorm) / (norm + 1e-6)), count: layout.count)
                }
                update += 1
                optimizer.update(params, grads: grads, lr: options.learningRate * linearWarmupDecay(update: update, total: total, warmup: warmup))
                let r = results.totals()
                lossSum += r.loss
                correct += r.correct
                seen += ids.count
                if let progress {
                    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    progress(TrainingProgress(epoch: epoch, epochs: options.epochs, step: step + 1, steps: stepsPerEpoch,
                                              loss: lossSum / Double(seen), accuracy: Double(correct) / Double(seen),
                                              elapsed: elapsed, remaining: elapsed / Double(update) * Double(total - update)))
                }
            }
            let predictions = try runner.predict(validation, padId: padId)
            let scores = ClassificationScores(predicted: predictions.map(\.label), targets: validationLabels, classes: K)
            reports.append(EpochReport(epoch: epoch, trainLoss: lossSum / Double(seen), trainAccuracy: Double(correct) / Double(seen),
                                       validation: scores, seconds: Double(DispatchTime.now().uptimeNanoseconds - epochStart) / 1e9))
            if scores.accuracy > bestAccuracy {
                bestAccuracy = scores.accuracy
                best.base.update(from: params.base, count: layout.count)
            }
        }
        params.base.update(from: best.base, count: layout.count)
        return reports
    }
}

/// Per-shard loss and correct counts, written by worker threads.
final class ShardResults: @unchecked Sendable {  // each shard writes only its own slot
    private let loss: UnsafeMutablePointer<Double>, correct: UnsafeMutablePointer<Int>
    private let count: Int
    init(count: Int) {
        self.count = count
        loss = .allocate(capacity: max(count, 1)); loss.initialize(repeating: 0, count: max(count, 1))
        correct = .allocate(capacity: max(count, 1)); correct.initialize(repeating: 0, count: max(count, 1))
    }
    deinit { loss.deallocate(); correct.deallocate() }
    func set(_ i: Int, loss l: Double, correct c: Int) { loss[i] = l; correct[i] = c }
    func totals() -> (loss: Double, correct: Int) {
        (0..<count).reduce((0.0, 0)) { ($0.0 + loss[$1], $0.1 + correct[$1]) }
    }
}

/// Per-thread state handed to worker threads; each thread touches only its own element.
final class PerThread<T>: @unchecked Sendable {
    let items: [T]
    init(_ items: [T]) { self.items = items }
    subscript(i: Int) -> T { items[i] }
}
