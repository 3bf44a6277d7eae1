import Foundation
import Tensor

// Merges built to resolve sign conflicts, applied to adapter bodies (bottleneck adapters as well as LoRA
// factors). The "task vector" of an adapter is its body itself: adapters start from no adapter at all
// (θ = 0 adds nothing to the frozen encoder), as PEFT and mergekit treat LoRA weights.

extension Mixing {
    /// Task arithmetic (Ilharco et al. 2023): θ = λ·Σ wᵢ·θᵢ. λ = 1/k with unit weights is the average.
    public static func taskArithmetic(_ bodies: [UnsafeBufferPointer<Float>], weights: [Double], lambda: Double,
                                      threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> [Float] {
        linearCombination(bodies, coefficients: weights.map { lambda * $0 }, threads: threads)
    }

    /// TIES-Merging (Yadav et al. 2023): (1) trim — keep the top `density` fraction of each body by
    /// magnitude within each of `groups` (magnitude pruning at sparsity 1 − density); (2) elect — per
    /// parameter, γ = sgn(Σᵢ wᵢ·τ̂ᵢ), the sign of the total mass; (3) disjoint mean — the weighted mean
    /// over the members whose trimmed value has sign γ: Σ_{agree} wᵢ·τ̂ᵢ / Σ_{agree} wᵢ; then ×λ.
    /// Weights must be ≥ 0. Where the mass is zero the result is λ times it (0, or −0.0 if every member has −0.0).
    public static func ties(_ bodies: [UnsafeBufferPointer<Float>], weights: [Double], density: Double, groups: [Range<Int>],
                            lambda: Double, threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> [Float] {
        let trimmed = bodies.map { b -> [Float] in
            var t = Array(b)
            t.withUnsafeMutableBufferPointer { _ = magnitudePrune($0, groups: groups, sparsity: 1 - density) }
            return t
        }
        return withBuffers(trimmed) { electAndMerge($0, weights: weights, lambda: lambda, threads: threads) }
    }

    /// TIES's elect and disjoint-mean steps (no trim), ×λ.
    public static func electAndMerge(_ bodies: [UnsafeBufferPointer<Float>], weights: [Double], lambda: Double,
                                     threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> [Float] {
        precondition(bodies.count == weights.count && !bodies.isEmpty)
        return elementwise(bodies, keys: weights, threads: threads) { ptrs, ws, p in
            var mass = Double(ptrs[0][p]) * ws[0]
            for i in 1..<ws.count { mass += Double(ptrs[i][p]) * ws[i] }
            if mass == 0 { return Float(lambda * mass) }
            var sum = 0.0, wsum = 0.0
            for i in 0..<ws.count {
                let x = Double(ptrs[i][p])
                if mass > 0 ? x > 0 : x < 0 { sum += ws[i] * x; wsum += ws[i] }
            }
            return Float(lambda * (sum / wsum))
        }
    }

    /// DARE (Yu et al. 2024): each weight dropped (set to 0) with probability p, the others rescaled by
    /// 1/(1 − p); seeded (SplitMix64, one draw per weight in body order: dropped iff u < p, u uniform in
    /// [0, 1) from 53 bits). p = 0 returns the body bit for bit.
    public static func dare(_ body: UnsafeBufferPointer<Float>, p: Double, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        let keep = 1 / (1 - p)
        var out = [Float](repeating: 0, count: body.count)
        for i in 0..<body.count {
            let u = Double(rng.next() >> 11) * 0x1p-53
            out[i] = u < p ? 0 : (p == 0 ? body[i] : Float(Double(body[i]) * keep))
        }
        return out
    }

    /// The seed of member i's DARE stream, for members in the canonical order.
    static func dareSeed(_ seed: UInt64, member i: Int) -> UInt64 {
        var g = SplitMix64(seed: seed ^ (UInt64(i) &* 0xD1B5_4A32_D192_ED03))
        return g.next()
    }

    /// DARE on every member (each with its own stream, by its place in the canonical order, so the listing
    /// order does not matter).
    static func dareAll(_ bodies: [UnsafeBufferPointer<Float>], weights: [Double], p: Double, seed: UInt64) -> [[Float]] {
        let order = canonicalOrder(bodies, keys: weights)
        var out = [[Float]](repeating: [], count: bodies.count)
        for (rank, i) in order.enumerated() { out[i] = dare(bodies[i], p: p, seed: dareSeed(seed, member: rank)) }
        return out
    }

    /// DARE, then task arithmetic: θ = λ·Σ wᵢ·DARE(θᵢ).
    public static func dareMerge(_ bodies: [UnsafeBufferPointer<Float>], weights: [Double], p: Double, seed: UInt64, lambda: Double,
                                 threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> [Float] {
        let dropped = dareAll(bodies, weights: weights, p: p, seed: seed)
        return withBuffers(dropped) { taskArithmetic($0, weights: weights, lambda: lambda, threads: threads) }
    }

    /// DARE + TIES: DARE in place of TIES's trim, then elect and disjoint mean, ×λ.
    public static func dareTies(_ bodies: [UnsafeBufferPointer<Float>], weights: [Double], p: Double, seed: UInt64, lambda: Double,
                                threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> [Float] {
        let dropped = dareAll(bodies, weights: weights, p: p, seed: seed)
        return withBuffers(dropped) { electAndMerge($0, weights: weights, lambda: lambda, threads: threads) }
    }

    /// Calls `body` with buffer views of `arrays` (valid only inside).
    static func withBuffers<R>(_ arrays: [[Float]], _ body: ([UnsafeBufferPointer<Float>]) -> R) -> R {
        func go(_ i: Int, _ acc: [UnsafeBufferPointer<Float>]) -> R {
            if i == arrays.count { return body(acc) }
            return arrays[i].withUnsafeBufferPointer { go(i + 1, acc + [$0]) }
        }
        return go(0, [])
    }
}
