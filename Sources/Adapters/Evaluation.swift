import Dispatch
import Encoder
import Foundation
import Synchronization
import Tensor

/// Predictions of one example: the logits and the arg-max class.
public struct Prediction: Sendable, Equatable {
    public var logits: [Float]
    public var label: Int
    public init(logits: [Float], label: Int) {
        self.logits = logits
        self.label = label
    }
}

/// Accuracy and macro-F1 over a set of predictions.
public struct ClassificationScores: Sendable, Equatable, Codable {
    public var n: Int
    public var correct: Int
    public var accuracy: Double
    public var macroF1: Double

    enum CodingKeys: String, CodingKey { case n, correct, accuracy, macroF1 = "macro_f1" }

    /// Macro-F1 averages the per-class F1 over every class that occurs in the targets or predictions
    /// (scikit-learn's `f1_score(average="macro")` over the union of labels).
    public init(predicted: [Int], targets: [Int], classes: Int) {
        n = targets.count
        correct = zip(predicted, targets).filter { $0 == $1 }.count
        accuracy = n == 0 ? 0 : Double(correct) / Double(n)
        var tp = [Int](repeating: 0, count: classes), fp = tp, fn = tp
        for (p, t) in zip(predicted, targets) {
            if p == t { tp[t] += 1 } else { fp[p] += 1; fn[t] += 1 }
        }
        var sum = 0.0, present = 0
        for c in 0..<classes where tp[c] + fp[c] + fn[c] > 0 {
            present += 1
            let denom = Double(2 * tp[c] + fp[c] + fn[c])
            sum += denom == 0 ? 0 : Double(2 * tp[c]) / denom
        }
        macroF1 = present == 0 ? 0 : sum / Double(present)
    }
}

/// Runs an adapted encoder over many examples on several threads (whole batches per thread,
/// single-threaded BLAS), optionally under FGSM.
///
/// Examples are sorted by length (longest first) and cut into batches. By default a batch holds
/// `min(batchSize, ⌈n / threads⌉)` examples, so that every thread gets work on small inputs; the
/// padding, and so the last bits of the logits, then depend on `threads`. With `fixedBatches` the
/// batches are always `batchSize` examples of the sorted order, and the logits are bit-identical
/// for any thread count (what a sweep needs, whose workers may have different core counts).
public struct AdaptedRunner: Sendable {
    public let model: AdaptedEncoder
    public let threads: Int
    public let batchSize: Int
    /// Batches of exactly `batchSize` (the last one smaller), whatever `threads` is.
    public let fixedBatches: Bool
    /// The last layer on each sequence's first token only (`AdaptedEncoder.forward(clsOnly:)`): the
    /// same predictions with logits within 1e-5, for about a sixth less work on a 6-layer encoder.
    public var clsOnly: Bool

    /// On unless `ADAPTERMIX_FULL_LAST_LAYER=1` is in the environment (inherited by workers).
    public static let clsOnlyByDefault = ProcessInfo.processInfo.environment["ADAPTERMIX_FULL_LAST_LAYER"] != "1"

    public init(model: AdaptedEncoder, threads: Int = ProcessInfo.processInfo.activeProcessorCount, batchSize: Int = 32,
                fixedBatches: Bool = false, clsOnly: Bool = AdaptedRunner.clsOnlyByDefault) {
        self.model = model
        self.threads = max(1, threads)
        self.batchSize = max(1, batchSize)
        self.fixedBatches = fixedBatches
        self.clsOnly = clsOnly
        BLAS.setThreads(1)
    }

    /// The examples of each batch (indices into the input), longest first: the batches `predict` runs.
    public func batches(_ encodings: [Encoding]) -> [[Int]] {
        let order = encodings.indices.sorted { (encodings[$0].ids.count, $1) > (encodings[$1].ids.count, $0) }
        let size = fixedBatches ? batchSize : min(batchSize, max(1, (order.count + threads - 1) / threads))
        return stride(from: 0, to: order.count, by: size).map { Array(order[$0..<min($0 + size, order.count)]) }
    }

    /// Logits for every example, in input order. With `fgsmEpsilon`, each batch is first run
    /// forward and backward against its true `labels`, its embeddings are moved by
    /// ε·sign(∂loss/∂embeddings) (Goodfellow et al. 2015, on the embedding sum before its
    /// LayerNorm), and the logits are those of the perturbed input.
    public func predict(_ encodings: [Encoding], padId: Int, labels: [Int]? = nil, fgsmEpsilon: Float? = nil,
                        prefixes: [SharedPrefix]? = nil) throws -> [Prediction] {
        precondition(fgsmEpsilon == nil || labels?.count == encodings.count, "FGSM needs the true labels")
        precondition(prefixes == nil || (fgsmEpsilon == nil && prefixes!.count == batches(encodings).count),
                     "shared prefixes are one per batch, for clean predictions")
        guard let eps = fgsmEpsilon, let labels else {
            return try Self.predictEach([self], encodings, padId: padId, prefixes: prefixes)[0]
        }
        let K = model.adapter.layout.head.classes
        let groups = batches(encodings)
        let batches = groups.map { EncoderBatch($0.map { encodings[$0] }, padId: padId) }
        for b in batches { try model.model.check(b) }
        let out = LockedPredictions(count: encodings.count)
        let next = Atomic<Int>(0)
        let model = self.model, clsOnly = self.clsOnly
        DispatchQueue.concurrentPerform(iterations: min(threads, max(batches.count, 1))) { _ in
            let ws = AdaptedWorkspace()
            let grads = ParameterBuffer(count: model.adapter.layout.count)
            while true {
                let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard i < batches.count else { break }
                let batch = batches[i], B = batch.batchSize
                var logits = model.forward(batch, workspace: ws, keepTrace: true)
                let targets = groups[i].map { Int32(labels[$0]) }
                let dLogits = UnsafeMutablePointer<Float>.allocate(capacity: B * K)
                defer { dLogits.deallocate() }
                _ = crossEntropyForwardBackward(dLogits: dLogits, logits: logits, targets: targets, rows: B, classes: K)
                model.backward(batch, workspace: ws, dLogits: dLogits, grads: grads)
                let N = batch.rows * model.model.config.hiddenSize
                let delta = UnsafeMutablePointer<Float>.allocate(capacity: N)
                defer { delta.deallocate() }
                let dE = ws.dEmbeddings.pointer
                for j in 0..<N { delta[j] = dE[j] > 0 ? eps : (dE[j] < 0 ? -eps : 0) }
                logits = model.forward(batch, workspace: ws, embeddingDelta: delta, clsOnly: clsOnly)
                out.set(groups[i], logits: logits, classes: K)
            }
        }
        return out.values()
    }
}

extension AdaptedRunner {
    /// Clean predictions of several models (one runner each, all with this runner's batches) on the
    /// same examples, as `predict(_:padId:prefixes:)` of each would give them bit for bit, but with
    /// every (model, batch) pair in one pool of tasks: the threads never wait at the end of one
    /// model for the last batch of it. A sweep evaluates its mixtures of one target this way.
    public static func predictEach(_ runners: [AdaptedRunner], _ encodings: [Encoding], padId: Int,
                                   prefixes: [SharedPrefix]? = nil) throws -> [[Prediction]] {
        guard let first = runners.first else { return [] }
        precondition(runners.allSatisfy { $0.batchSize == first.batchSize && $0.fixedBatches == first.fixedBatches && $0.threads == first.threads },
                     "one set of batches for every runner")
        let groups = first.batches(encodings)
        precondition(prefixes == nil || prefixes!.count == groups.count, "shared prefixes are one per batch")
        let batches = groups.map { EncoderBatch($0.map { encodings[$0] }, padId: padId) }
        for b in batches { try first.model.model.check(b) }
        let outs = runners.map { _ in LockedPredictions(count: encodings.count) }
        let next = Atomic<Int>(0)
        let tasks = runners.count * batches.count
        DispatchQueue.concurrentPerform(iterations: min(first.threads, max(tasks, 1))) { _ in
            let ws = AdaptedWorkspace()
            while true {
                let t = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard t < tasks else { break }
                let m = t / batches.count, i = t % batches.count
                let runner = runners[m], K = runner.model.adapter.layout.head.classes
                let logits = runner.model.forward(batches[i], workspace: ws, prefix: prefixes?[i], clsOnly: runner.clsOnly)
                outs[m].set(groups[i], logits: logits, classes: K)
            }
        }
        return outs.map { $0.values() }
    }

    /// One `SharedPrefix` per batch of `encodings` (the batches `predict` runs; with `fixedBatches`
    /// they are the same for every call): what every adapter of this runner's method computes alike
    /// before its first adapter. `predict(prefixes:)` of any runner with the same base model, method,
    /// batch size and `fixedBatches` then starts from them, with the same logits bit for bit.
    public func sharedPrefixes(_ encodings: [Encoding], padId: Int) throws -> [SharedPrefix] {
        let groups = batches(encodings)
        let batches = groups.map { EncoderBatch($0.map { encodings[$0] }, padId: padId) }
        for b in batches { try model.model.check(b) }
        let out = Mutex<[SharedPrefix?]>([SharedPrefix?](repeating: nil, count: batches.count))
        let next = Atomic<Int>(0)
        let model = self.model
        DispatchQueue.concurrentPerform(iterations: min(threads, max(batches.count, 1))) { _ in
            let ws = AdaptedWorkspace()
            while true {
                let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard i < batches.count else { break }
                let p = model.sharedPrefix(batches[i], workspace: ws)
                out.withLock { $0[i] = p }
            }
        }
        return out.withLock { $0.map { $0! } }
    }
}

/// Results written by several threads at disjoint indices.
final class LockedPredictions: Sendable {
    private let storage: Mutex<[Prediction?]>
    init(count: Int) { storage = Mutex([Prediction?](repeating: nil, count: count)) }
    func set(_ i: Int, _ p: Prediction) { storage.withLock { $0[i] = p } }
    /// One batch's logits (rows in the order of `indices`) and their arg-max classes.
    func set(_ indices: [Int], logits: UnsafePointer<Float>, classes K: Int) {
        for (b, index) in indices.enumerated() {
            let row = Array(UnsafeBufferPointer(start: logits + b * K, count: K))
            var best = 0
            for c in 1..<K where row[c] > row[best] { best = c }
            set(index, Prediction(logits: row, label: best))
        }
    }
    func values() -> [Prediction] { storage.withLock { $0.map { $0! } } }
}
