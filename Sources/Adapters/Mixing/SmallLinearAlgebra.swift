import Foundation

// Small dense linear algebra in Double for refactoring LoRA deltas: a cyclic Jacobi eigen-solver for
// symmetric matrices, and a truncated SVD of a product B·A computed from two K × K Gram matrices.

extension Mixing {
    /// Eigen-decomposition of a symmetric n × n matrix (row-major) by cyclic Jacobi rotations:
    /// A = V·diag(λ)·Vᵀ. Eigenvalues in descending order; `vectors` is V, row-major, eigenvectors as its
    /// columns (each with its largest-magnitude entry positive, so the result is unique for distinct λ).
    public static func symmetricEigen(_ matrix: [Double], n: Int) -> (values: [Double], vectors: [Double]) {
        precondition(matrix.count == n * n)
        var a = matrix
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        var scale = 0.0
        for x in a { scale = max(scale, abs(x)) }
        if scale > 0 && n > 1 {
            for _ in 0..<100 {
                var off = 0.0
                for p in 0..<n { for q in (p + 1)..<n where q < n { off = max(off, abs(a[p * n + q])) } }
                if off <= scale * 1e-17 { break }
                for p in 0..<(n - 1) {
                    for q in (p + 1)..<n {
                        let apq = a[p * n + q]
                        if abs(apq) <= scale * 1e-300 { continue }
                        let theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
                        let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                        let c = 1 / (t * t + 1).squareRoot(), s = t * c
                        for k in 0..<n {  // A ← A·P (columns p, q)
                            let akp = a[k * n + p], akq = a[k * n + q]
                            a[k * n + p] = c * akp - s * akq
                            a[k * n + q] = s * akp + c * akq
                        }
                        for k in 0..<n {  // A ← Pᵀ·A (rows p, q)
                            let apk = a[p * n + k], aqk = a[q * n + k]
                            a[p * n + k] = c * apk - s * aqk
                            a[q * n + k] = s * apk + c * aqk
                        }
                        for k in 0..<n {  // V ← V·P
                            let vkp = v[k * n + p], vkq = v[k * n + q]
                            v[k * n + p] = c * vkp - s * vkq
                            v[k * n + q] = s * vkp + c * vkq
                        }
                    }
                }
            }
        }
        let order = (0..<n).sorted { (a[$0 * n + $0], $1) > (a[$1 * n + $1], $0) }
        var values = [Double](repeating: 0, count: n), vectors = [Double](repeating: 0, count: n * n)
        for (j, col) in order.enumerated() {
            values[j] = a[col * n + col]
            var big = 0, sign = 1.0
            for k in 0..<n where abs(v[k * n + col]) > abs(v[big * n + col]) { big = k }
            if v[big * n + col] < 0 { sign = -1 }
            for k in 0..<n { vectors[k * n + j] = sign * v[k * n + col] }
        }
        return (values, vectors)
    }

    /// The best rank-`rank` approximation of M = B·A (B: m × K, A: K × n, row-major) as factors
    /// B′ (m × rank) and A′ (rank × n), with the singular values split evenly: B′ = U·√Σ, A′ = √Σ·Vᵀ.
    /// Exact (to rounding) when rank(M) ≤ rank. M is never formed: with A·Aᵀ = Q·Λ·Qᵀ (K × K, Jacobi),
    /// N = B·Q·√Λ (m × ρ, ρ = the non-negligible λ) gives M = N·(√Λ⁻¹·Qᵀ·A), whose right factor has
    /// orthonormal rows; then Nᵀ·N = W·Σ²·Wᵀ (ρ × ρ) gives M = (N·W·Σ⁻¹)·Σ·(Wᵀ·√Λ⁻¹·Qᵀ·A), an SVD.
    /// Directions with λ or σ² below 10⁻¹²× the largest (σ below 10⁻⁶× the largest) are dropped.
    /// Returns the factors and all ρ singular values of M, descending.
    public static func truncatedFactorization(b: [Double], a: [Double], m: Int, k: Int, n: Int, rank: Int)
        -> (b: [Double], a: [Double], singularValues: [Double]) {
        precondition(b.count == m * k && a.count == k * n && rank >= 1)
        var outB = [Double](repeating: 0, count: m * rank), outA = [Double](repeating: 0, count: rank * n)
        // Gram of A's rows.
        var ga = [Double](repeating: 0, count: k * k)
        for i in 0..<k {
            for j in i..<k {
                var s = 0.0
                for c in 0..<n { s += a[i * n + c] * a[j * n + c] }
                ga[i * k + j] = s; ga[j * k + i] = s
            }
        }
        let (lambda, q) = symmetricEigen(ga, n: k)
        guard let l0 = lambda.first, l0 > 0 else { return (outB, outA, []) }
        let rho = lambda.prefix { $0 > l0 * 1e-12 }.count
        // N = B·Q_ρ·√Λ (m × ρ).
        var qs = [Double](repeating: 0, count: k * rho)  // Q_ρ·√Λ
        for i in 0..<k { for j in 0..<rho { qs[i * rho + j] = q[i * k + j] * lambda[j].squareRoot() } }
        var nm = [Double](repeating: 0, count: m * rho)
        for r in 0..<m {
            for i in 0..<k {
                let bri = b[r * k + i]
                if bri == 0 { continue }
                for j in 0..<rho { nm[r * rho + j] += bri * qs[i * rho + j] }
            }
        }
        var gn = [Double](repeating: 0, count: rho * rho)
        for r in 0..<m {
            for i in 0..<rho {
                let x = nm[r * rho + i]
                if x == 0 { continue }
                for j in i..<rho { gn[i * rho + j] += x * nm[r * rho + j] }
            }
        }
        for i in 0..<rho { for j in 0..<i { gn[i * rho + j] = gn[j * rho + i] } }
        let (sigma2, w) = symmetricEigen(gn, n: rho)
        let singular = sigma2.map { max($0, 0).squareRoot() }
        guard let s0 = sigma2.first, s0 > 0 else { return (outB, outA, singular) }
        let kept = min(rank, sigma2.prefix { $0 > s0 * 1e-12 }.count)
        // T_B = Q_ρ·√Λ·W_r·Σ_r^{-1/2} (K × rank); T_A = Σ_r^{1/2}·W_rᵀ·√Λ⁻¹·Q_ρᵀ (rank × K).
        var tb = [Double](repeating: 0, count: k * rank), ta = [Double](repeating: 0, count: rank * k)
        for t in 0..<kept {
            let st = singular[t].squareRoot()
            for i in 0..<k {
                var xb = 0.0, xa = 0.0
                for j in 0..<rho {
                    xb += qs[i * rho + j] * w[j * rho + t]
                    xa += w[j * rho + t] * q[i * k + j] / lambda[j].squareRoot()
                }
                tb[i * rank + t] = xb / st
                ta[t * k + i] = xa * st
            }
        }
        for r in 0..<m {
            for i in 0..<k {
                let bri = b[r * k + i]
                if bri == 0 { continue }
                for t in 0..<kept { outB[r * rank + t] += bri * tb[i * rank + t] }
            }
        }
        for t in 0..<kept {
            for i in 0..<k {
                let x = ta[t * k + i]
                if x == 0 { continue }
                for c in 0..<n { outA[t * n + c] += x * a[i * n + c] }
            }
        }
        return (outB, outA, singular)
    }
}
