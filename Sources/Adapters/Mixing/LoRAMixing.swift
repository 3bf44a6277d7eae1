import Encoder
import Foundation

/// How a linear combination of LoRA adapters treats the factor pairs.
public enum LoRAMixMode: String, CaseIterable, Sendable {
    /// Combine A and B separately, like every other tensor (what the study and AdapterSoup do; the
    /// default). The mixture's ΔW = (Σcᵢ·Bᵢ)·(Σcᵢ·Aᵢ), which is not Σcᵢ·Bᵢ·Aᵢ: it has cross terms.
    case separate
    /// ΔW = Σcᵢ·Bᵢ·Aᵢ exactly, held as a LoRA of rank k·r: B = [c₁B₁ | … | c_kB_k], A = [A₁; …; A_k], α
    /// scaled with the rank so that α/r is unchanged. A normal adapter folder (any rank loads), but of
    /// another size than its members: it cannot be mixed or compared (FSD) with them again.
    case delta
    /// ΔW = Σcᵢ·Bᵢ·Aᵢ refactored to rank r by a truncated SVD of the stacked factors (the best rank-r
    /// approximation; exact when rank(ΔW) ≤ r, e.g. one member). Same size as the members.
    case deltaSVD = "delta-svd"
}

extension Mixing {
    /// The effective update of one LoRA target in layer `layer`: ΔW = (α/r)·B·A, C × C, row-major (out, in).
    public static func loraDelta(_ adapter: Adapter, layer: Int, target: String) -> [Double] {
        let layout = adapter.layout, C = layout.hidden, r = layout.config.loraRank
        let o = layout.layers[layer]
        guard let offsets = target == "query" ? o.query : target == "key" ? o.key : target == "value" ? o.value : nil else {
            preconditionFailure("no LoRA on \(target) in layer \(layer)")
        }
        let A = adapter.parameters.pointer(offsets.a), B = adapter.parameters.pointer(offsets.b)
        let s = Double(layout.config.loraScaling)
        var out = [Double](repeating: 0, count: C * C)
        for row in 0..<C {
            for t in 0..<r {
                let b = Double(B[row * r + t]) * s
                if b == 0 { continue }
                for col in 0..<C { out[row * C + col] += b * Double(A[t * C + col]) }
            }
        }
        return out
    }

    /// A linear combination (Σcᵢ·θᵢ)/divisor of LoRA adapters in `mode` (all of one layout; checked by the
    /// caller). Returns the body of the result and, for `.delta`, its layout (of rank k·r, with a head of
    /// `classes` classes; nil: the members' layout). Members with cᵢ = 0 are left out; a single member with
    /// c = divisor comes back bit for bit in every mode.
    static func loraCombination(_ adapters: [Adapter], coefficients: [Double], divisor: Double, mode: LoRAMixMode,
                                classes: Int, threads: Int) -> (layout: AdapterLayout?, body: [Float]) {
        let layout = adapters[0].layout
        let bodies = adapters.map(\.body)
        if mode == .separate {
            return (nil, linearCombination(bodies, coefficients: coefficients, divisor: divisor, threads: threads))
        }
        let order = canonicalOrder(bodies, keys: coefficients).filter { coefficients[$0] != 0 }
        if order.count == 1, coefficients[order[0]] == divisor { return (nil, Array(bodies[order[0]])) }
        let config = layout.config, C = layout.hidden, r = config.loraRank, L = layout.layers.count
        let members = order.map { adapters[$0] }, c = order.map { coefficients[$0] / divisor }
        let k = members.count
        guard k > 0 else { return (nil, [Float](repeating: 0, count: layout.bodyCount)) }
        var outLayout = layout
        if mode == .delta {
            var stacked = config
            stacked.loraRank = k * r
            stacked.loraAlpha = Float(Double(config.loraAlpha) * Double(k * r) / Double(r))
            let shape = EncoderConfig(modelType: .bert, vocabSize: 1, hiddenSize: C, numHiddenLayers: L, numAttentionHeads: 1,
                                      intermediateSize: 1, maxPositionEmbeddings: 1, typeVocabSize: 1)
            outLayout = AdapterLayout(config: stacked, encoder: shape, classes: classes)
        }
        var body = [Float](repeating: 0, count: outLayout.bodyCount)
        func offsets(_ o: AdapterLayerOffsets) -> [LoRAOffsets?] { [o.query, o.key, o.value] }
        for l in 0..<L {
            for (slot, inOffsets) in offsets(layout.layers[l]).enumerated() {
                guard let src = inOffsets, let dst = offsets(outLayout.layers[l])[slot] else { continue }
                switch mode {
                case .delta:
                    // A′ rows i·r..<(i+1)·r = Aᵢ; B′ columns i·r..<(i+1)·r = cᵢ·Bᵢ.
                    let K = k * r
                    for (i, m) in members.enumerated() {
                        let A = m.parameters.pointer(src.a), B = m.parameters.pointer(src.b)
                        for t in 0..<r { for col in 0..<C { body[dst.a + (i * r + t) * C + col] = A[t * C + col] } }
                        for row in 0..<C { for t in 0..<r { body[dst.b + row * K + i * r + t] = Float(c[i] * Double(B[row * r + t])) } }
                    }
                case .deltaSVD:
                    let K = k * r
                    var bs = [Double](repeating: 0, count: C * K), as_ = [Double](repeating: 0, count: K * C)
                    for (i, m) in members.enumerated() {
                        let A = m.parameters.pointer(src.a), B = m.parameters.pointer(src.b)
                        for t in 0..<r { for col in 0..<C { as_[(i * r + t) * C + col] = Double(A[t * C + col]) } }
                        for row in 0..<C { for t in 0..<r { bs[row * K + i * r + t] = c[i] * Double(B[row * r + t]) } }
                    }
                    let f = truncatedFactorization(b: bs, a: as_, m: C, k: K, n: C, rank: r)
                    for j in 0..<(r * C) { body[dst.a + j] = Float(f.a[j]) }
                    for j in 0..<(C * r) { body[dst.b + j] = Float(f.b[j]) }
                case .separate:
                    break
                }
            }
        }
        return (mode == .delta ? outLayout : nil, body)
    }
}
