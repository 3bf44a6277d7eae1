import Encoder
import Foundation
import Tensor

/// A growable Float scratch buffer (one thread).
public final class Scratch {
    public private(set) var pointer: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    public private(set) var capacity = 1
    public init() {}
    deinit { pointer.deallocate() }

    /// At least `n` floats (contents unspecified after growth).
    @discardableResult public func reserve(_ n: Int) -> UnsafeMutablePointer<Float> {
        if n > capacity {
            pointer.deallocate()
            pointer = .allocate(capacity: n)
            capacity = n
        }
        return pointer
    }

    public func zeroed(_ n: Int) -> UnsafeMutablePointer<Float> {
        let p = reserve(n)
        p.initialize(repeating: 0, count: n)
        return p
    }
}

/// Activations of one layer that the backward pass reads (N rows, dimension letters as in Encoder).
final class LayerTrace {
    let xIn = Scratch()      // (N, C) layer input
    let qkv = Scratch()      // (N, 3C)
    let probs = Scratch()    // Σ_b NH·L_b² attention probabilities
    let ctx = Scratch()      // (N, C)
    let hAtt = Scratch()     // (N, C) attention output projection (before the residual)
    let s1 = Scratch()       // (N, C) pre-LayerNorm sum of the attention block
    let mean1 = Scratch(), rstd1 = Scratch()
    let x1 = Scratch()       // (N, C) attention block output
    let ffnPre = Scratch()   // (N, F) before GELU
    let ffnAct = Scratch()   // (N, F) after GELU
    let hFfn = Scratch()     // (N, C) FFN output projection (before the residual)
    let t = Scratch()        // (N, C) pfeiffer: h + x, the first LayerNorm's input
    let meanT = Scratch(), rstdT = Scratch()
    let u = Scratch()        // (N, C) pfeiffer: LN(h + x), the adapter's input
    let s2 = Scratch()       // (N, C) pre-LayerNorm sum of the FFN block
    let mean2 = Scratch(), rstd2 = Scratch()
    let attnPre = Scratch(), attnAct = Scratch()  // (N, R) houlsby attention bottleneck
    let ffnAdPre = Scratch(), ffnAdAct = Scratch()  // (N, R) FFN bottleneck
    let xaQuery = Scratch(), xaKey = Scratch(), xaValue = Scratch()  // (N, r) x·Aᵀ for LoRA
}

/// Everything one forward pass produces and the backward pass needs; one per thread.
public final class AdaptedWorkspace {
    var layers: [LayerTrace] = []
    let emb = Scratch(), meanE = Scratch(), rstdE = Scratch()  // embeddings before LayerNorm
    let out = Scratch()                                        // (N, C) last hidden state
    let cls = Scratch(), z1 = Scratch(), act1 = Scratch()      // head: (B, C) each
    // The last layer on first tokens only (`lastLayerAttentionCLS`).
    let clsIn = Scratch(), clsQ = Scratch(), clsU = Scratch(), clsZ = Scratch(), clsCtx = Scratch()
    let clsScores = Scratch(), clsLoRA = Scratch()
    public let logits = Scratch()                              // (B, K)
    // Backward scratch.
    let dy = Scratch(), dx = Scratch(), ds = Scratch(), dh = Scratch(), du = Scratch(), dt = Scratch()
    let dffn = Scratch(), dffnPre = Scratch(), dctx = Scratch(), dqkv = Scratch(), dP = Scratch()
    let dR = Scratch(), dR2 = Scratch(), dHead = Scratch(), dHead2 = Scratch()
    /// Gradient of the loss with respect to the embeddings' sum (word + position + type), (N, C).
    public let dEmbeddings = Scratch()
    var probOffsets: [Int] = []

    public init() {}

    func trace(_ l: Int, keep: Bool) -> LayerTrace {
        let i = keep ? l : 0
        while layers.count <= i { layers.append(LayerTrace()) }
        return layers[i]
    }
}

/// What every adapter of one method computes alike for one batch on one base model: the layer-1
/// input `x` (the embeddings after their LayerNorm; empty for Pfeiffer, whose forward starts after
/// it) and, for bottleneck adapters, layer 1 up to the first adapter (`second`: the attention output
/// for Houlsby, the FFN output plus residual for Pfeiffer). A sweep computes it once per batch of a target's test split and reuses it for every
/// mixture of that target (`AdaptedRunner.predict(prefixes:)`).
public struct SharedPrefix: Sendable, Equatable {
    public enum Point: String, Sendable { case embeddings, attentionOutput, ffnOutput }
    public let point: Point
    public let rows: Int
    public let x: [Float]
    public let second: [Float]?
}

/// The frozen encoder with one adapter and its head: forward (inference and training) and the
/// backward pass into the adapter, the head and the input embeddings.
public struct AdaptedEncoder: Sendable {
    public let model: EncoderModel
    public let adapter: Adapter
    /// LoRA already added into `model`'s query/key/value weights (inference only).
    public let loraFolded: Bool

    public init(model: EncoderModel, adapter: Adapter) throws {
        guard adapter.layout.hidden == model.config.hiddenSize, adapter.layout.layers.count == model.config.numHiddenLayers else {
            throw AdapterError(file: "adapter", reason: "adapter is for hidden size \(adapter.layout.hidden) and \(adapter.layout.layers.count) layers; the encoder has \(model.config.hiddenSize) and \(model.config.numHiddenLayers)",
                               hint: "train or load an adapter for this base model")
        }
        self.model = model
        self.adapter = adapter
        loraFolded = false
    }

    private init(folded model: EncoderModel, adapter: Adapter) {
        self.model = model
        self.adapter = adapter
        loraFolded = true
    }

    /// The same function with LoRA folded into the base weights, W ← W + (α/r)·B·A (one small GEMM
    /// per adapted matrix), so inference pays no extra low-rank products per token.
    public func foldingLoRA() -> AdaptedEncoder {
        guard adapter.config.method == .lora, !loraFolded else { return self }
        let cfg = model.config, C = cfg.hiddenSize, r = adapter.config.loraRank
        let weights = model.weights.copy(config: cfg), p = adapter.parameters
        for (l, ad) in adapter.layout.layers.enumerated() {
            let qkvW = weights.buffer.pointer(weights.layers[l].qkvWeight)  // (3C, C): query, key, value rows
            for (lora, row) in [(ad.query, 0), (ad.key, C), (ad.value, 2 * C)] {
                guard let lora else { continue }
                sgemm(qkvW + row * C, ldc: C, p.pointer(lora.b), lda: r, transA: false, p.pointer(lora.a), ldb: C, transB: false,
                      m: C, n: C, k: r, alpha: adapter.config.loraScaling, beta: 1)
            }
        }
        return AdaptedEncoder(folded: EncoderModel(config: cfg, weights: weights), adapter: adapter)
    }

    var classes: Int { adapter.layout.head.classes }

    /// The last hidden state (rows, C) of the latest forward pass.
    public func lastHidden(_ ws: AdaptedWorkspace) -> UnsafePointer<Float> { UnsafePointer(ws.out.pointer) }

    /// Where the first adapter of this method reads the encoder: everything before it depends on
    /// the base model and the batch only, so every adapter of the method shares it.
    public var prefixPoint: SharedPrefix.Point {
        switch adapter.config.method {
        case .pfeiffer: return .ffnOutput        // after layer 1's FFN output (+ residual)
        case .houlsby: return .attentionOutput   // after layer 1's attention output projection
        case .lora: return .embeddings           // LoRA changes layer 1's query and value
        }
    }

    /// Everything of `batch` before the first adapter (`prefixPoint`), computed by the same code as
    /// `forward`, so that `forward(batch, prefix:)` gives the same logits bit for bit.
    public func sharedPrefix(_ batch: EncoderBatch, workspace ws: AdaptedWorkspace) -> SharedPrefix {
        var captured: SharedPrefix?
        run(batch, workspace: ws, keepTrace: false, embeddingDelta: nil, prefix: nil, capture: { captured = $0 })
        return captured!
    }

    /// Forward pass; returns the logits (B, K) in `ws.logits`. With `keepTrace`, every layer's
    /// activations are kept for `backward`. `embeddingDelta` (rows, C), if given, is added to the
    /// embeddings before their LayerNorm (FGSM's perturbation). With `prefix` (from `sharedPrefix`
    /// of an encoder with the same base model, method and batch), the computation starts from it.
    /// With `clsOnly` (inference only), the last layer is computed for each sequence's first token
    /// alone — all the head reads (`lastLayerAttentionCLS`); `lastHidden` then holds B rows.
    @discardableResult
    public func forward(_ batch: EncoderBatch, workspace ws: AdaptedWorkspace, keepTrace: Bool = false,
                        embeddingDelta: UnsafePointer<Float>? = nil, prefix: SharedPrefix? = nil, clsOnly: Bool = false) -> UnsafeMutablePointer<Float> {
        precondition(prefix == nil || (prefix!.point == prefixPoint && prefix!.rows == batch.rows && !keepTrace && embeddingDelta == nil),
                     "a shared prefix of another method or batch, or with a trace or FGSM")
        precondition(!(clsOnly && keepTrace), "the backward pass needs every token of the last layer")
        return run(batch, workspace: ws, keepTrace: keepTrace, embeddingDelta: embeddingDelta, prefix: prefix, clsOnly: clsOnly, capture: nil)!
    }

    @discardableResult
    private func run(_ batch: EncoderBatch, workspace ws: AdaptedWorkspace, keepTrace: Bool, embeddingDelta: UnsafePointer<Float>?,
                     prefix: SharedPrefix?, clsOnly: Bool = false, capture: ((SharedPrefix) -> Void)?) -> UnsafeMutablePointer<Float>? {
        let cfg = model.config
        let B = batch.batchSize, N = batch.rows
        let C = cfg.hiddenSize, F = cfg.intermediateSize, NH = cfg.numAttentionHeads, D = cfg.headSize
        let R = adapter.config.bottleneck, r = adapter.config.loraRank
        let w = model.weights.buffer, ew = model.weights, p = adapter.parameters
        let eps = cfg.layerNormEps

        let point = prefixPoint
        var x: UnsafeMutablePointer<Float>
        if let prefix {
            x = ws.trace(0, keep: true).xIn.reserve(N * C)
            // From layer 1's FFN output on, the layer input is only the buffer of its output (the
            // prefix keeps none).
            if prefix.point != .ffnOutput {
                prefix.x.withUnsafeBufferPointer { x.update(from: $0.baseAddress!, count: N * C) }
            }
        } else {
        // Embeddings.
        let e = ws.emb.reserve(N * C)
        let word = w.pointer(ew.wordEmbeddings), pos = w.pointer(ew.positionEmbeddings), type = w.pointer(ew.tokenTypeEmbeddings)
        for b in 0..<B {
            let start = batch.rowStart[b], L = batch.lengths[b]
            for t in 0..<(batch.rowStart[b + 1] - start) {
                let row = e + (start + t) * C
                if t < L {
                    addForward(out: row, word + Int(batch.ids[start + t]) * C, pos + (t + cfg.positionOffset) * C, count: C)
                    addForward(out: row, row, type + Int(batch.typeIds[start + t]) * C, count: C)
                } else {
                    row.initialize(repeating: 0, count: C)
                }
            }
        }
        if let embeddingDelta { addForward(out: e, e, embeddingDelta, count: N * C) }
        x = ws.trace(0, keep: true).xIn.reserve(N * C)
        layernormForward(out: x, mean: ws.meanE.reserve(N), rstd: ws.rstdE.reserve(N), input: e,
                         weight: w.pointer(ew.embLnWeight), bias: w.pointer(ew.embLnBias), rows: N, cols: C, eps: eps)
        }
        func copy(_ p: UnsafePointer<Float>) -> [Float] { Array(UnsafeBufferPointer(start: p, count: N * C)) }
        if let capture, point == .embeddings {
            capture(SharedPrefix(point: point, rows: N, x: copy(x), second: nil))
            return nil
        }
        // Layer 1 from the prefix: its attention output (houlsby) or its FFN output + residual (pfeiffer).
        let fromAttention = prefix != nil && point == .attentionOutput
        let fromFFN = prefix != nil && point == .ffnOutput

        // Attention probabilities: per sequence, NH blocks of L × L.
        ws.probOffsets = [0]
        for L in batch.lengths { ws.probOffsets.append(ws.probOffsets.last! + NH * L * L) }
        let scale = 1 / Float(D).squareRoot()
        let lastLayer = ew.layers.count - 1

        for (l, layer) in ew.layers.enumerated() {
            let tr = ws.trace(l, keep: keepTrace)
            if l > 0 || !keepTrace {
                // The layer input lives in this trace slot.
                let slot = tr.xIn.reserve(N * C)
                if slot != x { slot.update(from: x, count: N * C) }
                x = slot
            }
            let ad = adapter.layout.layers[l]
            // From the attention output on, every step is row by row: on all N rows, or — the last
            // layer with `clsOnly` — on the B first-token rows (`xr`, the residual input).
            let cls = clsOnly && l == lastLayer
            let n = cls ? B : N
            var xr: UnsafePointer<Float> = UnsafePointer(x)
            let hAtt = tr.hAtt.reserve(N * C)
            let s2 = tr.s2.reserve(N * C)
            var hFfnOut: UnsafeMutablePointer<Float>?
            // The FFN block's output before its adapter is s2 = a + b (FFN output + residual), or the
            // shared prefix's (b nil); `tail` forms it.
            var sumA: UnsafePointer<Float>?, sumB: UnsafePointer<Float>?
            if !(l == 0 && fromFFN) {
            if l == 0 && fromAttention {
                prefix!.second!.withUnsafeBufferPointer { hAtt.update(from: $0.baseAddress!, count: N * C) }
            } else if cls {
                let xc = ws.clsIn.reserve(B * C)
                for b in 0..<B { (xc + b * C).update(from: x + batch.rowStart[b] * C, count: C) }
                xr = UnsafePointer(xc)
                lastLayerAttentionCLS(batch, x: x, xCLS: xc, layer: l, workspace: ws, out: hAtt)
            } else {
            // Q, K, V (+ LoRA: q += s·(x·Aᵀ)·Bᵀ).
            let qkv = tr.qkv.reserve(N * 3 * C)
            linearForward(out: qkv, input: x, weight: w.pointer(layer.qkvWeight), bias: w.pointer(layer.qkvBias), rows: N, inDim: C, outDim: 3 * C)
            for (lora, column, xa) in [(ad.query, 0, tr.xaQuery), (ad.key, C, tr.xaKey), (ad.value, 2 * C, tr.xaValue)] where !loraFolded {
                guard let lora else { continue }
                let xA = xa.reserve(N * r)
                linearForward(out: xA, input: x, weight: p.pointer(lora.a), bias: nil, rows: N, inDim: C, outDim: r)
                sgemm(qkv + column, ldc: 3 * C, xA, lda: r, transA: false, p.pointer(lora.b), ldb: r, transB: true,
                      m: N, n: C, k: r, alpha: adapter.config.loraScaling, beta: 1)
            }
            // Attention over each sequence's real tokens; P kept for the backward pass.
            let probs = tr.probs.reserve(max(ws.probOffsets.last!, 1))
            let ctx = tr.ctx.reserve(N * C)
            for b in 0..<B {
                let L = batch.lengths[b], start = batch.rowStart[b], end = batch.rowStart[b + 1]
                if start + L < end { (ctx + (start + L) * C).initialize(repeating: 0, count: (end - start - L) * C) }
                for h in 0..<NH {
                    let q = qkv + start * 3 * C + h * D
                    let P = probs + ws.probOffsets[b] + h * L * L
                    sgemm(P, ldc: L, q, lda: 3 * C, transA: false, q + C, ldb: 3 * C, transB: true, m: L, n: L, k: D, alpha: scale)
                    softmaxForward(P, rows: L, n: L, stride: L)
                    sgemm(ctx + start * C + h * D, ldc: C, P, lda: L, transA: false, q + 2 * C, ldb: 3 * C, transB: false, m: L, n: D, k: L)
                }
            }
            linearForward(out: hAtt, input: ctx, weight: w.pointer(layer.attnOutWeight), bias: w.pointer(layer.attnOutBias), rows: N, inDim: C, outDim: C)
            if l == 0, let capture, point == .attentionOutput {
                capture(SharedPrefix(point: point, rows: N, x: copy(x), second: copy(hAtt)))
                return nil
            }
            }
            // Attention block output: LN(h + [A(h)] + x) — in inference without an adapter there,
            // the add and the LayerNorm in one pass (the same bits).
            let x1 = tr.x1.reserve(N * C)
            if !keepTrace && ad.attention == nil {
                addLayernormForward(out: x1, hAtt, xr, weight: w.pointer(layer.attnLnWeight), bias: w.pointer(layer.attnLnBias), rows: n, cols: C, eps: eps)
            } else {
                let s1 = tr.s1.reserve(N * C)
                addForward(out: s1, hAtt, xr, count: n * C)
                if let bn = ad.attention {
                    bottleneckForward(bn, input: hAtt, addInto: s1, pre: tr.attnPre.reserve(N * R), act: tr.attnAct.reserve(N * R), rows: n)
                }
                layernormForward(out: x1, mean: tr.mean1.reserve(N), rstd: tr.rstd1.reserve(N), input: s1,
                                 weight: w.pointer(layer.attnLnWeight), bias: w.pointer(layer.attnLnBias), rows: n, cols: C, eps: eps)
            }
            // FFN. Inference applies the bias and GELU in place in one pass; training keeps the
            // pre-activation for the backward pass.
            let ffnPre = tr.ffnPre.reserve(N * F)
            let ffnAct: UnsafeMutablePointer<Float>
            if keepTrace {
                ffnAct = tr.ffnAct.reserve(N * F)
                linearForward(out: ffnPre, input: x1, weight: w.pointer(layer.ffnInWeight), bias: w.pointer(layer.ffnInBias), rows: n, inDim: C, outDim: F)
                ffnAct.update(from: ffnPre, count: n * F)
                geluForward(ffnAct, count: n * F)
            } else {
                ffnAct = ffnPre
                linearForward(out: ffnAct, input: x1, weight: w.pointer(layer.ffnInWeight), bias: nil, rows: n, inDim: C, outDim: F)
                biasGeluForward(ffnAct, bias: w.pointer(layer.ffnInBias), rows: n, cols: F)
            }
            let hFfn = tr.hFfn.reserve(N * C)
            linearForward(out: hFfn, input: ffnAct, weight: w.pointer(layer.ffnOutWeight), bias: w.pointer(layer.ffnOutBias), rows: n, inDim: F, outDim: C)
            hFfnOut = hFfn
            if l == 0, let capture, point == .ffnOutput {
                addForward(out: s2, hFfn, x1, count: n * C)
                capture(SharedPrefix(point: point, rows: N, x: [], second: copy(s2)))
                return nil
            }
            (sumA, sumB) = (UnsafePointer(hFfn), UnsafePointer(x1))
            }
            // The next layer's input: its trace slot when training; in inference the same buffer as
            // this layer's input (dead once the attention block's residual has been added).
            let next: UnsafeMutablePointer<Float>
            if l == lastLayer { next = ws.out.reserve(N * C) }
            else if keepTrace { next = ws.trace(l + 1, keep: true).xIn.reserve(N * C) }
            else { next = x }
            let outLnW = w.pointer(layer.outLnWeight), outLnB = w.pointer(layer.outLnBias)
            // s2 = a + b, the FFN block's adapter, and the LayerNorm into `next`. Inference fuses the
            // residual adds into the LayerNorms after them (the same bits, fewer passes over memory).
            func tail(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>?) {
                guard let bn = ad.ffn else {
                    if keepTrace {
                        addForward(out: s2, a, b!, count: n * C)
                        layernormForward(out: next, mean: tr.mean2.reserve(N), rstd: tr.rstd2.reserve(N), input: s2, weight: outLnW, bias: outLnB, rows: n, cols: C, eps: eps)
                    } else {
                        addLayernormForward(out: next, a, b, weight: outLnW, bias: outLnB, rows: n, cols: C, eps: eps)
                    }
                    return
                }
                // Inference applies the adapter's activation in place.
                let pre = tr.ffnAdPre.reserve(N * R), act = keepTrace ? tr.ffnAdAct.reserve(N * R) : pre
                if adapter.config.method == .pfeiffer {
                    // y = LN(h + x + A(LN(h + x))): the adapter reads the first LayerNorm of h + x.
                    let u = tr.u.reserve(N * C)
                    if keepTrace {
                        addForward(out: s2, a, b!, count: n * C)
                        let kept = tr.t.reserve(N * C)
                        kept.update(from: s2, count: n * C)
                        layernormForward(out: u, mean: tr.meanT.reserve(N), rstd: tr.rstdT.reserve(N), input: kept, weight: outLnW, bias: outLnB, rows: n, cols: C, eps: eps)
                        bottleneckForward(bn, input: u, addInto: s2, pre: pre, act: act, rows: n)
                    } else {
                        // s2 = a + b, u = LN(s2) and s2 += the adapter's up-projection bias, in one pass.
                        addLayernormForward(out: u, sum: s2, a, b, sumBias: adapter.parameters.pointer(bn.upBias),
                                            weight: outLnW, bias: outLnB, rows: n, cols: C, eps: eps)
                        bottleneckForward(bn, input: u, addInto: s2, pre: pre, act: act, rows: n, upBiasAdded: true)
                    }
                } else {
                    addForward(out: s2, a, b!, count: n * C)
                    bottleneckForward(bn, input: hFfnOut!, addInto: s2, pre: pre, act: act, rows: n)
                }
                layernormForward(out: next, mean: tr.mean2.reserve(N), rstd: tr.rstd2.reserve(N), input: s2, weight: outLnW, bias: outLnB, rows: n, cols: C, eps: eps)
            }
            if let sumA {
                tail(sumA, sumB)
            } else {
                prefix!.second!.withUnsafeBufferPointer { tail($0.baseAddress!, nil) }
            }
            x = next
        }
        return headForward(batch, hidden: ws.out.pointer, clsRows: clsOnly, workspace: ws)
    }

    /// The last layer's attention output for each sequence's first token only, without the keys and
    /// values of the other tokens. With q the first token's (scaled) query and X the layer input of
    /// the sequence, per head h: the scores are X·(W_kₕᵀ·qₕ) (the key bias adds qₕ·b_kₕ to every score
    /// of the row, which the softmax cancels) and the context is W_vₕ·(Pₕ·X) + b_vₕ (the
    /// probabilities sum to 1), LoRA terms likewise through Aᵀ·(Bᵀ·q) and
    /// B·(A·(P·X)). Per sequence that is O(NH·L·C + C²) instead of the keys and values' O(L·C²): the
    /// same function, arithmetic reordered (logits within 1e-5 of the full layer).
    private func lastLayerAttentionCLS(_ batch: EncoderBatch, x: UnsafePointer<Float>, xCLS xc: UnsafePointer<Float>, layer l: Int,
                                       workspace ws: AdaptedWorkspace, out hAtt: UnsafeMutablePointer<Float>) {
        let cfg = model.config, B = batch.batchSize
        let C = cfg.hiddenSize, NH = cfg.numAttentionHeads, D = cfg.headSize
        let w = model.weights.buffer, layer = model.weights.layers[l], p = adapter.parameters
        let ad = adapter.layout.layers[l], r = adapter.config.loraRank, s = adapter.config.loraScaling
        let lora = !loraFolded
        let wq = w.pointer(layer.qkvWeight), wk = wq + C * C, wv = wq + 2 * C * C
        let bq = w.pointer(layer.qkvBias), bv = bq + 2 * C
        let scale = 1 / Float(D).squareRoot()

        // q (B, C) of the first tokens.
        let q = ws.clsQ.reserve(B * C)
        linearForward(out: q, input: xc, weight: wq, bias: bq, rows: B, inDim: C, outDim: C)
        if lora, let lq = ad.query {
            let t = ws.clsLoRA.reserve(B * r)
            linearForward(out: t, input: xc, weight: p.pointer(lq.a), bias: nil, rows: B, inDim: C, outDim: r)
            sgemm(q, ldc: C, t, lda: r, transA: false, p.pointer(lq.b), ldb: r, transB: true, m: B, n: C, k: r, alpha: s, beta: 1)
        }
        // U (B, NH, C): row (b, h) = scale·W_kₕᵀ·qₕ (+ scale·s·A_kᵀ·(B_kₕᵀ·qₕ)).
        let U = ws.clsU.reserve(B * NH * C)
        for h in 0..<NH {
            sgemm(U + h * C, ldc: NH * C, q + h * D, lda: C, transA: false, wk + h * D * C, ldb: C, transB: false,
                  m: B, n: C, k: D, alpha: scale)
            if lora, let lk = ad.key {
                let t = ws.clsLoRA.reserve(B * r)
                sgemm(t, ldc: r, q + h * D, lda: C, transA: false, p.pointer(lk.b) + h * D * r, ldb: r, transB: false, m: B, n: r, k: D)
                sgemm(U + h * C, ldc: NH * C, t, lda: r, transA: false, p.pointer(lk.a), ldb: C, transB: false,
                      m: B, n: C, k: r, alpha: scale * s, beta: 1)
            }
        }
        // Per sequence: scores S (NH, L) = U_b·X_bᵀ, softmax, Z_b (NH, C) = P·X_b.
        let Z = ws.clsZ.reserve(B * NH * C)
        for b in 0..<B {
            let L = batch.lengths[b], start = batch.rowStart[b]
            let S = ws.clsScores.reserve(NH * L)
            let xb = x + start * C
            sgemm(S, ldc: L, U + b * NH * C, lda: C, transA: false, xb, ldb: C, transB: true, m: NH, n: L, k: C)
            softmaxForward(S, rows: NH, n: L, stride: L)
            sgemm(Z + b * NH * C, ldc: C, S, lda: L, transA: false, xb, ldb: C, transB: false, m: NH, n: C, k: L)
        }
        // Context (B, C): head h's D columns = Z_h·W_vₕᵀ + b_vₕ (+ s·(Z_h·A_vᵀ)·B_vₕᵀ).
        let ctx = ws.clsCtx.reserve(B * C)
        for b in 0..<B { (ctx + b * C).update(from: bv, count: C) }
        for h in 0..<NH {
            sgemm(ctx + h * D, ldc: C, Z + h * C, lda: NH * C, transA: false, wv + h * D * C, ldb: C, transB: true,
                  m: B, n: D, k: C, beta: 1)
            if lora, let lv = ad.value {
                let t = ws.clsLoRA.reserve(B * r)
                sgemm(t, ldc: r, Z + h * C, lda: NH * C, transA: false, p.pointer(lv.a), ldb: C, transB: true, m: B, n: r, k: C)
                sgemm(ctx + h * D, ldc: C, t, lda: r, transA: false, p.pointer(lv.b) + h * D * r, ldb: r, transB: true,
                      m: B, n: D, k: r, alpha: s, beta: 1)
            }
        }
        linearForward(out: hAtt, input: ctx, weight: w.pointer(layer.attnOutWeight), bias: w.pointer(layer.attnOutBias), rows: B, inDim: C, outDim: C)
    }

    /// u → A(u) = W_up·f(W_down·u + b_down) + b_up, added into `addInto`; keeps the pre- and
    /// post-activation for the backward pass (inference passes `act` = `pre`: the activation in
    /// place). `upBiasAdded`: b_up is already in `addInto` (`addLayernormForward` put it there).
    private func bottleneckForward(_ bn: BottleneckOffsets, input: UnsafePointer<Float>, addInto: UnsafeMutablePointer<Float>,
                                   pre: UnsafeMutablePointer<Float>, act: UnsafeMutablePointer<Float>, rows N: Int, upBiasAdded: Bool = false) {
        let p = adapter.parameters, C = adapter.layout.hidden, R = adapter.config.bottleneck
        linearForward(out: pre, input: input, weight: p.pointer(bn.downWeight), bias: p.pointer(bn.downBias), rows: N, inDim: C, outDim: R)
        switch adapter.config.nonLinearity {
        case .relu:
            if act != pre { act.update(from: pre, count: N * R) }
            reluForward(act, count: N * R)
        case .swish:
            swishForward(out: act, input: pre, count: N * R)
        }
        if !upBiasAdded {
            for r in 0..<N { addForward(out: addInto + r * C, addInto + r * C, p.pointer(bn.upBias), count: C) }
        }
        sgemm(addInto, ldc: C, act, lda: R, transA: false, p.pointer(bn.upWeight), ldb: R, transB: true, m: N, n: C, k: R, beta: 1)
    }

    /// The head on each sequence's first token: logits = W₂·tanh(W₁·h + b₁) + b₂.
    /// `clsRows`: `hidden` holds the B first tokens' rows only (`forward(clsOnly:)`).
    private func headForward(_ batch: EncoderBatch, hidden: UnsafePointer<Float>, clsRows: Bool, workspace ws: AdaptedWorkspace) -> UnsafeMutablePointer<Float> {
        let B = batch.batchSize, C = adapter.layout.hidden, K = classes, hd = adapter.layout.head, p = adapter.parameters
        let cls = ws.cls.reserve(B * C), z1 = ws.z1.reserve(B * C), a = ws.act1.reserve(B * C), logits = ws.logits.reserve(B * K)
        for b in 0..<B { (cls + b * C).update(from: hidden + (clsRows ? b : batch.rowStart[b]) * C, count: C) }
        linearForward(out: z1, input: cls, weight: p.pointer(hd.w1), bias: p.pointer(hd.b1), rows: B, inDim: C, outDim: C)
        a.update(from: z1, count: B * C)
        tanhForward(a, count: B * C)
        linearForward(out: logits, input: a, weight: p.pointer(hd.w2), bias: p.pointer(hd.b2), rows: B, inDim: C, outDim: K)
        return logits
    }

    /// Backward pass after `forward(…, keepTrace: true)`: accumulates into `grads` (the adapter's
    /// layout) from `dLogits` (B, K), and writes the gradient with respect to the embeddings into
    /// `ws.dEmbeddings` (rows, C). The frozen base receives no gradient.
    public func backward(_ batch: EncoderBatch, workspace ws: AdaptedWorkspace, dLogits: UnsafePointer<Float>, grads: ParameterBuffer) {
        precondition(!loraFolded, "train the unfolded adapter")
        let cfg = model.config
        let B = batch.batchSize, N = batch.rows
        let C = cfg.hiddenSize, F = cfg.intermediateSize, NH = cfg.numAttentionHeads, D = cfg.headSize
        let r = adapter.config.loraRank
        let w = model.weights.buffer, ew = model.weights, p = adapter.parameters, g = grads
        let hd = adapter.layout.head, K = classes

        // Head.
        let a = ws.act1.pointer, cls = ws.cls.pointer
        let da = ws.dHead.zeroed(B * C), dz = ws.dHead2.zeroed(B * C)
        linearBackward(dInput: da, dWeight: g.pointer(hd.w2), dBias: g.pointer(hd.b2), dOut: dLogits, input: a, weight: p.pointer(hd.w2),
                       rows: B, inDim: C, outDim: K)
        tanhBackward(dInput: dz, dOut: da, output: a, count: B * C)
        let dcls = ws.dHead.zeroed(B * C)
        linearBackward(dInput: dcls, dWeight: g.pointer(hd.w1), dBias: g.pointer(hd.b1), dOut: dz, input: cls, weight: p.pointer(hd.w1),
                       rows: B, inDim: C, outDim: C)
        var dy = ws.dy.zeroed(N * C)
        for b in 0..<B { addForward(out: dy + batch.rowStart[b] * C, dy + batch.rowStart[b] * C, dcls + b * C, count: C) }

        let scale = 1 / Float(D).squareRoot()
        for l in stride(from: ew.layers.count - 1, through: 0, by: -1) {
            let layer = ew.layers[l], tr = ws.layers[l], ad = adapter.layout.layers[l]
            // FFN block: y = LN₂(s₂).
            let ds2 = ws.ds.zeroed(N * C)
            layernormBackward(dInput: ds2, dWeight: nil, dBias: nil, dOut: dy, input: tr.s2.pointer, weight: w.pointer(layer.outLnWeight),
                              mean: tr.mean2.pointer, rstd: tr.rstd2.pointer, rows: N, cols: C)
            let dh = ws.dh.reserve(N * C), dx1 = ws.dx.reserve(N * C)
            dh.update(from: ds2, count: N * C)
            dx1.update(from: ds2, count: N * C)
            if let bn = ad.ffn {
                let du = ws.du.zeroed(N * C)
                if adapter.config.method == .pfeiffer {
                    bottleneckBackward(bn, dOut: ds2, input: tr.u.pointer, pre: tr.ffnAdPre.pointer, act: tr.ffnAdAct.pointer, dInput: du, grads: g, rows: N, workspace: ws)
                    let dt = ws.dt.zeroed(N * C)
                    layernormBackward(dInput: dt, dWeight: nil, dBias: nil, dOut: du, input: tr.t.pointer, weight: w.pointer(layer.outLnWeight),
                                      mean: tr.meanT.pointer, rstd: tr.rstdT.pointer, rows: N, cols: C)
                    addForward(out: dh, dh, dt, count: N * C)
                    addForward(out: dx1, dx1, dt, count: N * C)
                } else {
                    bottleneckBackward(bn, dOut: ds2, input: tr.hFfn.pointer, pre: tr.ffnAdPre.pointer, act: tr.ffnAdAct.pointer, dInput: du, grads: g, rows: N, workspace: ws)
                    addForward(out: dh, dh, du, count: N * C)
                }
            }
            let dAct = ws.dffn.zeroed(N * F)
            linearBackward(dInput: dAct, dWeight: nil, dBias: nil, dOut: dh, input: tr.ffnAct.pointer, weight: w.pointer(layer.ffnOutWeight),
                           rows: N, inDim: F, outDim: C)
            let dPre = ws.dffnPre.zeroed(N * F)
            geluBackward(dInput: dPre, dOut: dAct, input: tr.ffnPre.pointer, count: N * F)
            linearBackward(dInput: dx1, dWeight: nil, dBias: nil, dOut: dPre, input: tr.x1.pointer, weight: w.pointer(layer.ffnInWeight),
                           rows: N, inDim: C, outDim: F)
            // Attention block: x₁ = LN₁(s₁), s₁ = h + [A(h)] + x.
            let ds1 = ws.ds.zeroed(N * C)
            layernormBackward(dInput: ds1, dWeight: nil, dBias: nil, dOut: dx1, input: tr.s1.pointer, weight: w.pointer(layer.attnLnWeight),
                              mean: tr.mean1.pointer, rstd: tr.rstd1.pointer, rows: N, cols: C)
            let dhAtt = ws.dh.reserve(N * C)
            dhAtt.update(from: ds1, count: N * C)
            let dx0 = ws.dy.reserve(N * C)  // dy is consumed; reuse it for the layer input's gradient
            dx0.update(from: ds1, count: N * C)
            if let bn = ad.attention {
                let du = ws.du.zeroed(N * C)
                bottleneckBackward(bn, dOut: ds1, input: tr.hAtt.pointer, pre: tr.attnPre.pointer, act: tr.attnAct.pointer, dInput: du, grads: g, rows: N, workspace: ws)
                addForward(out: dhAtt, dhAtt, du, count: N * C)
            }
            let dctx = ws.dctx.zeroed(N * C)
            linearBackward(dInput: dctx, dWeight: nil, dBias: nil, dOut: dhAtt, input: tr.ctx.pointer, weight: w.pointer(layer.attnOutWeight),
                           rows: N, inDim: C, outDim: C)
            // softmax(q·kᵀ·scale)·v per sequence and head.
            let dqkv = ws.dqkv.zeroed(N * 3 * C)
            let qkv = tr.qkv.pointer, probs = tr.probs.pointer
            for b in 0..<B {
                let L = batch.lengths[b], start = batch.rowStart[b]
                let dP = ws.dP.reserve(max(L * L, 1))
                for h in 0..<NH {
                    let q = qkv + start * 3 * C + h * D, dq = dqkv + start * 3 * C + h * D
                    let P = probs + ws.probOffsets[b] + h * L * L
                    let dO = dctx + start * C + h * D
                    sgemm(dP, ldc: L, dO, lda: C, transA: false, q + 2 * C, ldb: 3 * C, transB: true, m: L, n: L, k: D)
                    sgemm(dq + 2 * C, ldc: 3 * C, P, lda: L, transA: true, dO, ldb: C, transB: false, m: L, n: D, k: L, beta: 1)
                    softmaxBackward(dInput: dP, dOut: dP, probs: P, rows: L, n: L, stride: L, accumulate: false)
                    sgemm(dq, ldc: 3 * C, dP, lda: L, transA: false, q + C, ldb: 3 * C, transB: false, m: L, n: D, k: L, alpha: scale, beta: 1)
                    sgemm(dq + C, ldc: 3 * C, dP, lda: L, transA: true, q, ldb: 3 * C, transB: false, m: L, n: D, k: L, alpha: scale, beta: 1)
                }
            }
            // LoRA: q = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ.
            let x = tr.xIn.pointer, s = adapter.config.loraScaling
            for (lora, column, xa) in [(ad.query, 0, tr.xaQuery), (ad.key, C, tr.xaKey), (ad.value, 2 * C, tr.xaValue)] {
                guard let lora else { continue }
                let dq = dqkv + column
                sgemm(g.pointer(lora.b), ldc: r, dq, lda: 3 * C, transA: true, xa.pointer, ldb: r, transB: false, m: C, n: r, k: N, alpha: s, beta: 1)
                let dxA = ws.dR.reserve(N * r)
                sgemm(dxA, ldc: r, dq, lda: 3 * C, transA: false, p.pointer(lora.b), ldb: r, transB: false, m: N, n: r, k: C, alpha: s)
                sgemm(g.pointer(lora.a), ldc: C, dxA, lda: r, transA: true, x, ldb: C, transB: false, m: r, n: C, k: N, beta: 1)
                sgemm(dx0, ldc: C, dxA, lda: r, transA: false, p.pointer(lora.a), ldb: C, transB: false, m: N, n: C, k: r, beta: 1)
            }
            linearBackward(dInput: dx0, dWeight: nil, dBias: nil, dOut: dqkv, input: x, weight: w.pointer(layer.qkvWeight),
                           rows: N, inDim: C, outDim: 3 * C)
            dy = dx0
        }
        // Embeddings' LayerNorm.
        let dE = ws.dEmbeddings.zeroed(N * C)
        layernormBackward(dInput: dE, dWeight: nil, dBias: nil, dOut: dy, input: ws.emb.pointer, weight: w.pointer(ew.embLnWeight),
                          mean: ws.meanE.pointer, rstd: ws.rstdE.pointer, rows: N, cols: C)
    }

    /// Backward of u → A(u): parameter gradients into `grads`, dInput += dOut·∂A/∂u.
    private func bottleneckBackward(_ bn: BottleneckOffsets, dOut: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                    pre: UnsafePointer<Float>, act: UnsafePointer<Float>, dInput: UnsafeMutablePointer<Float>,
                                    grads g: ParameterBuffer, rows N: Int, workspace ws: AdaptedWorkspace) {
        let p = adapter.parameters, C = adapter.layout.hidden, R = adapter.config.bottleneck
        let dAct = ws.dR.zeroed(N * R), dPre = ws.dR2.zeroed(N * R)
        linearBackward(dInput: dAct, dWeight: g.pointer(bn.upWeight), dBias: g.pointer(bn.upBias), dOut: dOut, input: act, weight: p.pointer(bn.upWeight),
                       rows: N, inDim: R, outDim: C)
        switch adapter.config.nonLinearity {
        case .relu: reluBackward(dInput: dPre, dOut: dAct, output: act, count: N * R)
        case .swish: swishBackward(dInput: dPre, dOut: dAct, input: pre, count: N * R)
        }
        linearBackward(dInput: dInput, dWeight: g.pointer(bn.downWeight), dBias: g.pointer(bn.downBias), dOut: dPre, input: input,
                       weight: p.pointer(bn.downWeight), rows: N, inDim: C, outDim: R)
    }
}
