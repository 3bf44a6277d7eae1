import Foundation
import Tensor

/// A padded batch of tokenized sequences (B sequences, padded to T tokens, row-major B × T).
public struct EncoderBatch: Sendable {
    public var batchSize: Int     // B
    public var seqLen: Int        // T
    public var ids: [Int32]       // (B, T), pad id beyond each length
    public var typeIds: [Int32]   // (B, T)
    public var lengths: [Int]     // (B) real tokens per sequence

    /// Pads to the longest sequence of the batch (dynamic padding).
    public init(_ encodings: [Encoding], padId: Int) {
        batchSize = encodings.count
        seqLen = encodings.map(\.ids.count).max() ?? 0
        lengths = encodings.map(\.ids.count)
        ids = [Int32](repeating: Int32(padId), count: batchSize * seqLen)
        typeIds = [Int32](repeating: 0, count: batchSize * seqLen)
        for (b, e) in encodings.enumerated() {
            for (t, id) in e.ids.enumerated() { ids[b * seqLen + t] = Int32(id) }
            for (t, tt) in e.typeIds.enumerated() { typeIds[b * seqLen + t] = Int32(tt) }
        }
    }

    public var realTokens: Int { lengths.reduce(0, +) }
}

/// Scratch buffers of one forward pass, reused across batches; one per thread (not thread-safe).
public final class EncoderWorkspace {
    private(set) var tokenCapacity = 0
    private(set) var scoreCapacity = 0
    private let config: EncoderConfig
    var x: UnsafeMutablePointer<Float>      // (N, C) hidden state, the output
    var qkv: UnsafeMutablePointer<Float>    // (N, 3C)
    var ctx: UnsafeMutablePointer<Float>    // (N, C)
    var tmp: UnsafeMutablePointer<Float>    // (N, C)
    var ffn: UnsafeMutablePointer<Float>    // (N, F)
    var scores: UnsafeMutablePointer<Float> // (T, T)
    /// Per-stage wall time, when enabled (benchmarks); nil costs nothing.
    public var profile: StageProfile?

    public init(config: EncoderConfig) {
        self.config = config
        x = .allocate(capacity: 1); qkv = .allocate(capacity: 1); ctx = .allocate(capacity: 1)
        tmp = .allocate(capacity: 1); ffn = .allocate(capacity: 1); scores = .allocate(capacity: 1)
    }

    deinit { for p in [x, qkv, ctx, tmp, ffn, scores] { p.deallocate() } }

    func reserve(tokens n: Int, seqLen t: Int) {
        let C = config.hiddenSize, F = config.intermediateSize
        if n > tokenCapacity {
            for p in [x, qkv, ctx, tmp, ffn] { p.deallocate() }
            x = .allocate(capacity: n * C); qkv = .allocate(capacity: n * 3 * C)
            ctx = .allocate(capacity: n * C); tmp = .allocate(capacity: n * C); ffn = .allocate(capacity: n * F)
            tokenCapacity = n
        }
        if t * t > scoreCapacity {
            scores.deallocate()
            scores = .allocate(capacity: t * t)
            scoreCapacity = t * t
        }
    }
}

/// Where a forward pass spends its time, stage by stage (accumulated over passes).
public final class StageProfile {
    public enum Stage: Int, CaseIterable, Sendable {
        case embeddings, qkvGemm, attention, attentionOutput, ffnInGemm, gelu, ffnOutGemm, residualLayerNorm
    }
    public private(set) var nanoseconds = [UInt64](repeating: 0, count: Stage.allCases.count)
    private var last: UInt64 = 0

    public init() {}

    func start() { last = DispatchTime.now().uptimeNanoseconds }

    func lap(_ stage: Stage) {
        let now = DispatchTime.now().uptimeNanoseconds
        nanoseconds[stage.rawValue] &+= now &- last
        last = now
    }

    public func add(_ other: [UInt64]) {
        for i in nanoseconds.indices { nanoseconds[i] &+= other[i] }
    }
}

public enum Pooling: String, Sendable, CaseIterable {
    /// The first token's hidden state ([CLS] / <s>).
    case cls
    /// Mean over the real (unmasked) tokens, as sentence-transformers' mean pooling.
    case mean
}

/// A BERT / RoBERTa encoder (post-LN, exact-erf GELU) whose matmuls all run through OpenBLAS.
///
/// Immutable and `Sendable`: many threads may run `forward` at once, each with its own workspace.
public struct EncoderModel: Sendable {
    public let config: EncoderConfig
    public let weights: EncoderWeights

    public init(config: EncoderConfig, weights: EncoderWeights) {
        self.config = config
        self.weights = weights
    }

    /// Checks ids against the vocabulary, type ids and lengths against the tables.
    public func check(_ batch: EncoderBatch) throws {
        for b in 0..<batch.batchSize {
            let L = batch.lengths[b]
            guard L <= config.maxSequenceLength else {
                throw ModelError(file: "input", reason: "sequence \(b) has \(L) tokens, more than the model's \(config.maxSequenceLength)", hint: "lower --max-length")
            }
            for t in 0..<L {
                let id = Int(batch.ids[b * batch.seqLen + t]), tt = Int(batch.typeIds[b * batch.seqLen + t])
                guard id >= 0, id < config.vocabSize else {
                    throw ModelError(file: "input", reason: "token id \(id) is outside the vocabulary (\(config.vocabSize))", hint: "the tokenizer does not belong to this model")
                }
                guard tt >= 0, tt < config.typeVocabSize else {
                    throw ModelError(file: "input", reason: "token type id \(tt) is outside type_vocab_size (\(config.typeVocabSize))", hint: "this model takes single texts only")
                }
            }
        }
    }

    /// Runs the encoder; returns the last hidden state (B·T, C) inside `workspace` (valid until its
    /// next use). Rows past each sequence's length are padding and hold unspecified values.
    public func forward(_ batch: EncoderBatch, workspace ws: EncoderWorkspace) -> UnsafeMutablePointer<Float> {
        let B = batch.batchSize, T = batch.seqLen, N = B * T
        let C = config.hiddenSize, F = config.intermediateSize, NH = config.numAttentionHeads, D = config.headSize
        ws.reserve(tokens: max(N, 1), seqLen: max(T, 1))
        ws.profile?.start()
        let w = weights.buffer
        let x = ws.x, qkv = ws.qkv, ctx = ws.ctx, tmp = ws.tmp, ffn = ws.ffn, scores = ws.scores
        let eps = config.layerNormEps

        // Embeddings: word + position + token type, then LayerNorm (padding rows are zero).
        let word = w.pointer(weights.wordEmbeddings), pos = w.pointer(weights.positionEmbeddings)
        let type = w.pointer(weights.tokenTypeEmbeddings)
        let offset = config.positionOffset
        batch.ids.withUnsafeBufferPointer { ids in
            batch.typeIds.withUnsafeBufferPointer { tts in
                for b in 0..<B {
                    for t in 0..<T {
                        let row = x + (b * T + t) * C
                        if t < batch.lengths[b] {
                            let i = b * T + t
                            addForward(out: row, word + Int(ids[i]) * C, pos + (t + offset) * C, count: C)
                            addForward(out: row, row, type + Int(tts[i]) * C, count: C)
                        } else {
                            row.initialize(repeating: 0, count: C)
                        }
                    }
                }
            }
        }
        layernormForward(out: x, mean: nil, rstd: nil, input: x, weight: w.pointer(weights.embLnWeight),
                         bias: w.pointer(weights.embLnBias), rows: N, cols: C, eps: eps)
        let prof = ws.profile
        prof?.lap(.embeddings)

        let scale = 1 / Float(D).squareRoot()
        for layer in weights.layers {
            // Self-attention: fused QKV projection, then per sequence and head softmax(q·kᵀ/√D)·v
            // over the real tokens only (what HF's additive mask computes for them).
            linearForward(out: qkv, input: x, weight: w.pointer(layer.qkvWeight), bias: w.pointer(layer.qkvBias),
                          rows: N, inDim: C, outDim: 3 * C)
            prof?.lap(.qkvGemm)
            for b in 0..<B {
                let L = batch.lengths[b]
                if L < T { (ctx + (b * T + L) * C).initialize(repeating: 0, count: (T - L) * C) }
                guard L > 0 else { continue }
                for h in 0..<NH {
                    let q = qkv + b * T * 3 * C + h * D
                    sgemm(scores, ldc: L, q, lda: 3 * C, transA: false, q + C, ldb: 3 * C, transB: true,
                          m: L, n: L, k: D, alpha: scale)
                    softmaxForward(scores, rows: L, n: L, stride: L)
                    sgemm(ctx + b * T * C + h * D, ldc: C, scores, lda: L, transA: false, q + 2 * C, ldb: 3 * C, transB: false,
                          m: L, n: D, k: L)
                }
            }
            prof?.lap(.attention)
            linearForward(out: tmp, input: ctx, weight: w.pointer(layer.attnOutWeight), bias: nil, rows: N, inDim: C, outDim: C)
            biasResidualForward(out: tmp, tmp, bias: w.pointer(layer.attnOutBias), residual: x, rows: N, cols: C)
            layernormForward(out: x, mean: nil, rstd: nil, input: tmp, weight: w.pointer(layer.attnLnWeight),
                             bias: w.pointer(layer.attnLnBias), rows: N, cols: C, eps: eps)
            prof?.lap(.attentionOutput)
            // Feed-forward: GELU(x·W1ᵀ + b1)·W2ᵀ + b2, residual, LayerNorm (biases fused into the passes after each GEMM).
            linearForward(out: ffn, input: x, weight: w.pointer(layer.ffnInWeight), bias: nil, rows: N, inDim: C, outDim: F)
            prof?.lap(.ffnInGemm)
            biasGeluForward(ffn, bias: w.pointer(layer.ffnInBias), rows: N, cols: F)
            prof?.lap(.gelu)
            linearForward(out: tmp, input: ffn, weight: w.pointer(layer.ffnOutWeight), bias: nil, rows: N, inDim: F, outDim: C)
            prof?.lap(.ffnOutGemm)
            biasResidualForward(out: tmp, tmp, bias: w.pointer(layer.ffnOutBias), residual: x, rows: N, cols: C)
            layernormForward(out: x, mean: nil, rstd: nil, input: tmp, weight: w.pointer(layer.outLnWeight),
                             bias: w.pointer(layer.outLnBias), rows: N, cols: C, eps: eps)
            prof?.lap(.residualLayerNorm)
        }
        return x
    }

    /// Pools sequence `b` of a forward pass's output into `out` (C values), optionally L2-normalised
    /// (sentence-transformers' `Normalize` module: x / max(‖x‖, 1e-12)).
    public func pool(_ hidden: UnsafePointer<Float>, batch: EncoderBatch, index b: Int, pooling: Pooling, normalize: Bool,
                     into out: UnsafeMutablePointer<Float>) {
        let C = config.hiddenSize, T = batch.seqLen, L = batch.lengths[b]
        let rows = hidden + b * T * C
        switch pooling {
        case .cls:
            out.update(from: rows, count: C)
        case .mean:
            out.initialize(repeating: 0, count: C)
            for t in 0..<L { addForward(out: out, out, rows + t * C, count: C) }
            scaleInPlace(out, 1 / Float(max(L, 1)), count: C)
        }
        if normalize {
            var s: Float = 0
            for i in 0..<C { s += out[i] * out[i] }
            scaleInPlace(out, 1 / max(s.squareRoot(), 1e-12), count: C)
        }
    }

    /// Multiply–add count of one forward pass over sequences of these real lengths (linear layers
    /// 2·(4C² + 2CF) per token per layer, attention 2·2·L·C per token per layer), for GFLOP/s figures.
    public func flops(lengths: [Int]) -> Double {
        let C = Double(config.hiddenSize), F = Double(config.intermediateSize), Lyr = Double(config.numHiddenLayers)
        var total = 0.0
        for l in lengths {
            let n = Double(l)
            total += Lyr * (n * 2 * (4 * C * C + 2 * C * F) + n * 2 * 2 * n * C)
        }
        return total
    }
}
