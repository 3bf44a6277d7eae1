import Foundation
import Tensor

/// A batch of tokenized sequences, laid out row by row (one row per token position).
///
/// Two layouts: *padded* — every sequence padded to the longest of the batch (B·T rows, the
/// classic dynamic padding) — and *packed* — the sequences' real tokens back to back (Σ L rows),
/// so that no linear layer computes a padding row. Attention is per sequence in both.
public struct EncoderBatch: Sendable {
    public var batchSize: Int     // B
    public var seqLen: Int        // T, the longest sequence
    public var packed: Bool
    public var ids: [Int32]       // (rows), pad id in padding rows
    public var typeIds: [Int32]   // (rows)
    public var lengths: [Int]     // (B) real tokens per sequence
    public var rowStart: [Int]    // (B + 1) first row of each sequence; rowStart[B] = rows

    public init(_ encodings: [Encoding], padId: Int, packed: Bool = true) {
        batchSize = encodings.count
        seqLen = encodings.map(\.ids.count).max() ?? 0
        lengths = encodings.map(\.ids.count)
        self.packed = packed
        var starts = [0]
        for l in lengths { starts.append(starts.last! + (packed ? l : seqLen)) }
        rowStart = starts
        ids = [Int32](repeating: Int32(padId), count: starts.last!)
        typeIds = [Int32](repeating: 0, count: starts.last!)
        for (b, e) in encodings.enumerated() {
            for (t, id) in e.ids.enumerated() { ids[starts[b] + t] = Int32(id) }
            for (t, tt) in e.typeIds.enumerated() { typeIds[starts[b] + t] = Int32(tt) }
        }
    }

    /// Rows the linear layers run on (B·T padded, Σ L packed).
    public var rows: Int { rowStart[batchSize] }
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
    var rowScale: UnsafeMutablePointer<Float> // (T) softmax row sums
    /// Per-stage wall time, when enabled (benchmarks); nil costs nothing.
    public var profile: StageProfile?

    public init(config: EncoderConfig) {
        self.config = config
        x = .allocate(capacity: 1); qkv = .allocate(capacity: 1); ctx = .allocate(capacity: 1)
        tmp = .allocate(capacity: 1); ffn = .allocate(capacity: 1); scores = .allocate(capacity: 1)
        rowScale = .allocate(capacity: 1)
    }

    deinit { for p in [x, qkv, ctx, tmp, ffn, scores, rowScale] { p.deallocate() } }

    func reserve(tokens n: Int, seqLen t: Int) {
        let C = config.hiddenSize, F = config.intermediateSize
        if n > tokenCapacity {
            for p in [x, qkv, ctx, tmp, ffn] { p.deallocate() }
            x = .allocate(capacity: n * C); qkv = .allocate(capacity: n * 3 * C)
            ctx = .allocate(capacity: n * C); tmp = .allocate(capacity: n * C); ffn = .allocate(capacity: n * F)
            tokenCapacity = n
        }
        if t * t > scoreCapacity {
            scores.deallocate(); rowScale.deallocate()
            scores = .allocate(capacity: t * t); rowScale = .allocate(capacity: t)
            scoreCapacity = t * t
        }
    }
}

/// Where a forward pass spends its time, stage by stage (accumulated over passes).
public final class StageProfile {
    public enum Stage: Int, CaseIterable, Sendable {
        case embeddings, qkvGemm, attentionScores, softmax, attentionContext, attentionOutput, ffnInGemm, gelu, ffnOutGemm, residualLayerNorm
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
                let id = Int(batch.ids[batch.rowStart[b] + t]), tt = Int(batch.typeIds[batch.rowStart[b] + t])
                guard id >= 0, id < config.vocabSize else {
                    throw ModelError(file: "input", reason: "token id \(id) is outside the vocabulary (\(config.vocabSize))", hint: "the tokenizer does not belong to this model")
                }
                guard tt >= 0, tt < config.typeVocabSize else {
                    throw ModelError(file: "input", reason: "token type id \(tt) is outside type_vocab_size (\(config.typeVocabSize))", hint: "this model takes single texts only")
                }
            }
        }
    }

    /// Runs the encoder; returns the last hidden state (rows, C) inside `workspace` (valid until its
    /// next use); sequence b's tokens are rows rowStart[b] ..< rowStart[b] + lengths[b]. Padding rows
    /// (padded layout) hold unspecified values.
    public func forward(_ batch: EncoderBatch, workspace ws: EncoderWorkspace) -> UnsafeMutablePointer<Float> {
        let B = batch.batchSize, T = batch.seqLen, N = batch.rows
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
                    let start = batch.rowStart[b], L = batch.lengths[b]
                    for t in 0..<(batch.rowStart[b + 1] - start) {
                        let row = x + (start + t) * C
                        if t < L {
                            addForward(out: row, word + Int(ids[start + t]) * C, pos + (t + offset) * C, count: C)
                            addForward(out: row, row, type + Int(tts[start + t]) * C, count: C)
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
                let L = batch.lengths[b], start = batch.rowStart[b], end = batch.rowStart[b + 1]
                if start + L < end { (ctx + (start + L) * C).initialize(repeating: 0, count: (end - start - L) * C) }
                guard L > 0 else { continue }
                for h in 0..<NH {
                    let q = qkv + start * 3 * C + h * D
                    let out = ctx + start * C + h * D
                    sgemm(scores, ldc: L, q, lda: 3 * C, transA: false, q + C, ldb: 3 * C, transB: true,
                          m: L, n: L, k: D, alpha: scale)
                    prof?.lap(.attentionScores)
                    // exp(s − max) without normalising; the 1/Σ is applied to the (L, D) output instead.
                    softmaxUnnormalized(scores, rowSums: ws.rowScale, rows: L, n: L, stride: L)
                    prof?.lap(.softmax)
                    sgemm(out, ldc: C, scores, lda: L, transA: false, q + 2 * C, ldb: 3 * C, transB: false,
                          m: L, n: D, k: L)
                    for r in 0..<L { scaleInPlace(out + r * C, 1 / ws.rowScale[r], count: D) }
                    prof?.lap(.attentionContext)
                }
            }
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
        let C = config.hiddenSize, L = batch.lengths[b]
        let rows = hidden + batch.rowStart[b] * C
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
