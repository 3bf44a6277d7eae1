import Foundation

// Elementwise kernels of the encoder, vectorised with SIMD8<Float>.
// Layout: row-major (rows, C); every function writes its outputs first, then reads inputs.
// A plain scalar port spent ~45% of its time in libm's erff (see shared/DESIGN.md), hence the
// vector exp/erf below, accurate to about 1e-7 (checked against Foundation in the tests).

public typealias F8 = SIMD8<Float>

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> F8 {
    UnsafeRawPointer(p).loadUnaligned(as: F8.self)
}

@inline(__always) func store8(_ p: UnsafeMutablePointer<Float>, _ v: F8) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self)
}

/// exp(x) for 8 lanes: Cephes-style range reduction x = n·ln2 + r, degree-6 polynomial in r,
/// then scale by 2ⁿ through the exponent bits. Relative error ≈ 1e-7; exp(x < -87.3) = 0.
@inline(__always) public func vexp(_ x: F8) -> F8 {
    let hi = F8(repeating: 88.37626)
    let lo = F8(repeating: -87.33654)
    var xv = x.replacing(with: hi, where: x .> hi).replacing(with: lo, where: x .< lo)
    // n = round(x / ln2) with the 1.5·2²³ trick: adding it leaves n in the low mantissa bits, and
    // keeps every step a plain vector op (Swift's generic SIMD rounding/conversion is per-lane).
    let magic = F8(repeating: 12_582_912)
    let shifted = xv * 1.442695040888963 + magic
    let n = shifted - magic
    xv = xv - n * 0.693359375
    xv = xv - n * -2.12194440e-4
    let z = xv * xv
    var p = F8(repeating: 1.9875691500e-4)
    p = p * xv + 1.3981999507e-3
    p = p * xv + 8.3334519073e-3
    p = p * xv + 4.1665795894e-2
    p = p * xv + 1.6666665459e-1
    p = p * xv + 5.0000001201e-1
    p = p * z + xv + 1
    let nInt = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
    let scale = unsafeBitCast((nInt &+ 127) &<< 23, to: F8.self)
    let result = p * scale
    // Below the clamp, return exactly zero (as expf underflows).
    return result.replacing(with: 0, where: x .< lo)
}

/// erf(x) for 8 lanes: Abramowitz & Stegun 7.1.26 on |x| (max abs error 1.5e-7), odd extension.
@inline(__always) public func verf(_ x: F8) -> F8 {
    let ax = x.replacing(with: -x, where: x .< 0)
    let t = 1 / (1 + 0.3275911 * ax)
    var p = F8(repeating: 1.061405429)
    p = p * t - 1.453152027
    p = p * t + 1.421413741
    p = p * t - 0.284496736
    p = p * t + 0.254829592
    p = p * t
    let y = 1 - p * vexp(-ax * ax)
    return y.replacing(with: -y, where: x .< 0)
}

/// Scalar companions with the same arithmetic as the vector versions (tails of rows).
@inline(__always) public func sexp(_ x: Float) -> Float { vexp(F8(repeating: x))[0] }
@inline(__always) public func serf(_ x: Float) -> Float { verf(F8(repeating: x))[0] }

/// GELU with the exact erf form, as PyTorch's default `nn.GELU()` / HF "gelu":
/// gelu(x) = x · ½ · (1 + erf(x / √2)). In place over `count` values.
public func geluForward(_ x: UnsafeMutablePointer<Float>, count: Int) {
    let invSqrt2: Float = 0.7071067811865476
    var i = 0
    while i + 8 <= count {
        let v = load8(x + i)
        store8(x + i, v * 0.5 * (1 + verf(v * invSqrt2)))
        i += 8
    }
    while i < count {
        let v = x[i]
        x[i] = v * 0.5 * (1 + serf(v * invSqrt2))
        i += 1
    }
}

/// GELU of (x + bias) in place over `rows` rows of `cols`: the linear layer's bias fused in.
public func biasGeluForward(_ x: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, rows: Int, cols: Int) {
    let invSqrt2: Float = 0.7071067811865476
    for r in 0..<rows {
        let row = x + r * cols
        var i = 0
        while i + 8 <= cols {
            let v = load8(row + i) + load8(bias + i)
            store8(row + i, v * 0.5 * (1 + verf(v * invSqrt2)))
            i += 8
        }
        while i < cols {
            let v = row[i] + bias[i]
            row[i] = v * 0.5 * (1 + serf(v * invSqrt2))
            i += 1
        }
    }
}

/// out = x + bias + residual over `rows` rows of `cols` (a linear layer's bias and the residual
/// connection in one pass). `out` may alias `x`.
public func biasResidualForward(out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                residual: UnsafePointer<Float>, rows: Int, cols: Int) {
    for r in 0..<rows {
        let o = out + r * cols, a = x + r * cols, res = residual + r * cols
        var i = 0
        while i + 8 <= cols { store8(o + i, load8(a + i) + load8(bias + i) + load8(res + i)); i += 8 }
        while i < cols { o[i] = a[i] + bias[i] + res[i]; i += 1 }
    }
}

/// out[i] = a[i] + b[i] (residual connections). `out` may alias `a`.
public func addForward(out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
    var i = 0
    while i + 8 <= count {
        store8(out + i, load8(a + i) + load8(b + i))
        i += 8
    }
    while i < count { out[i] = a[i] + b[i]; i += 1 }
}

/// LayerNorm over the last dimension, as torch.nn.LayerNorm: (x − mean) / sqrt(var + eps) · w + b,
/// with the biased variance. Writes `mean` and `rstd` per row when given (for the backward pass).
/// `out` may alias `input`.
public func layernormForward(
    out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?,
    input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
    rows: Int, cols: Int, eps: Float
) {
    let c = cols
    for r in 0..<rows {
        let x = input + r * c
        let y = out + r * c
        var acc = F8(repeating: 0)
        var i = 0
        while i + 8 <= c { acc += load8(x + i); i += 8 }
        var s = acc.sum()
        while i < c { s += x[i]; i += 1 }
        let m = s / Float(c)
        var vacc = F8(repeating: 0)
        let mv = F8(repeating: m)
        i = 0
        while i + 8 <= c { let d = load8(x + i) - mv; vacc += d * d; i += 8 }
        var v = vacc.sum()
        while i < c { let d = x[i] - m; v += d * d; i += 1 }
        let rs = 1 / (v / Float(c) + eps).squareRoot()
        let rsv = F8(repeating: rs)
        i = 0
        while i + 8 <= c {
            store8(y + i, (load8(x + i) - mv) * rsv * load8(weight + i) + load8(bias + i))
            i += 8
        }
        while i < c { y[i] = (x[i] - m) * rs * weight[i] + bias[i]; i += 1 }
        mean?[r] = m
        rstd?[r] = rs
    }
}

/// exp(x − rowmax) in place, the row sums written to `rowSums` — softmax without the division,
/// for attention, where dividing the (L, D) output is cheaper than the (L, L) probabilities.
public func softmaxUnnormalized(_ x: UnsafeMutablePointer<Float>, rowSums: UnsafeMutablePointer<Float>, rows: Int, n: Int, stride: Int) {
    for r in 0..<rows {
        let row = x + r * stride
        var mx = -Float.infinity
        var i = 0
        if n >= 8 {
            var mv = F8(repeating: -.infinity)
            while i + 8 <= n { let v = load8(row + i); mv = mv.replacing(with: v, where: v .> mv); i += 8 }
            mx = mv.max()
        }
        while i < n { mx = max(mx, row[i]); i += 1 }
        let mv = F8(repeating: mx)
        var acc = F8(repeating: 0)
        i = 0
        while i + 8 <= n {
            let e = vexp(load8(row + i) - mv)
            store8(row + i, e)
            acc += e
            i += 8
        }
        var s = acc.sum()
        while i < n { let e = sexp(row[i] - mx); row[i] = e; s += e; i += 1 }
        rowSums[r] = s
    }
}

/// Row softmax in place over the first `n` entries of each of `rows` rows spaced `stride` apart:
/// p = exp(x − max) / Σ exp(x − max).
public func softmaxForward(_ x: UnsafeMutablePointer<Float>, rows: Int, n: Int, stride: Int) {
    var sum: Float = 0
    for r in 0..<rows {
        softmaxUnnormalized(x + r * stride, rowSums: &sum, rows: 1, n: n, stride: stride)
        scaleInPlace(x + r * stride, 1 / sum, count: n)
    }
}

/// x[i] *= s.
public func scaleInPlace(_ x: UnsafeMutablePointer<Float>, _ s: Float, count: Int) {
    var i = 0
    let sv = F8(repeating: s)
    while i + 8 <= count { store8(x + i, load8(x + i) * sv); i += 8 }
    while i < count { x[i] *= s; i += 1 }
}
