import CKernels
import Foundation

// Elementwise kernels of the encoder. The forward kernels run in C (Sources/CKernels): AVX2 + FMA
// when the CPU has both, else a portable variant, chosen once per process, because Swift builds
// for baseline x86-64 (SSE2, no FMA) and these were ~17% of a sweep's time in that form.
// Layout: row-major (rows, C); every function writes its outputs first, then reads inputs.
// The SIMD8 exp/erf below (accurate to about 1e-7 and 6e-7) remain for the backward passes.

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

/// Which variant of the C kernels this process runs, for benchmark printouts.
public enum Elementwise {
    /// "avx2+fma" or "portable" (no AVX2/FMA, or `ADAPTERMIX_NO_SIMD_DISPATCH=1` at start-up).
    public static var kernelName: String { String(cString: ck_kernel_name()) }
}

/// GELU with the exact erf form, as PyTorch's default `nn.GELU()` / HF "gelu":
/// gelu(x) = x · ½ · (1 + erf(x / √2)). In place over `count` values.
public func geluForward(_ x: UnsafeMutablePointer<Float>, count: Int) {
    ck_gelu(x, count)
}

/// GELU of (x + bias) in place over `rows` rows of `cols`: the linear layer's bias fused in.
public func biasGeluForward(_ x: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, rows: Int, cols: Int) {
    ck_bias_gelu(x, bias, rows, cols)
}

/// out = x + bias + residual over `rows` rows of `cols` (a linear layer's bias and the residual
/// connection in one pass). `out` may alias `x`.
public func biasResidualForward(out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                residual: UnsafePointer<Float>, rows: Int, cols: Int) {
    ck_bias_residual(out, x, bias, residual, rows, cols)
}

/// out[i] = a[i] + b[i] (residual connections). `out` may alias `a`.
public func addForward(out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
    ck_add(out, a, b, count)
}

/// LayerNorm over the last dimension, as torch.nn.LayerNorm: (x − mean) / sqrt(var + eps) · w + b,
/// with the biased variance. Writes `mean` and `rstd` per row when given (for the backward pass).
/// `out` may alias `input`.
public func layernormForward(
    out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?,
    input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
    rows: Int, cols: Int, eps: Float
) {
    ck_layernorm(out, mean, rstd, input, weight, bias, rows, cols, eps)
}

/// The residual add and the LayerNorm after it in one pass, a row at a time: s = a + b (s = a when
/// `b` is nil), out = LayerNorm(s); when `sum` is given it receives s + `sumBias` (or s). Bit for
/// bit `addForward`, `layernormForward` and adding `sumBias` as three passes (inference: no mean
/// or rstd kept). `out` may alias `a` or `b` when `sum` is nil; `sum` never aliases `out`.
public func addLayernormForward(
    out: UnsafeMutablePointer<Float>, sum: UnsafeMutablePointer<Float>? = nil, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>?,
    sumBias: UnsafePointer<Float>? = nil, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, rows: Int, cols: Int, eps: Float
) {
    ck_add_layernorm(out, sum, a, b, sumBias, weight, bias, rows, cols, eps)
}

/// exp(x − rowmax) in place, the row sums written to `rowSums` — softmax without the division,
/// for attention, where dividing the (L, D) output is cheaper than the (L, L) probabilities.
public func softmaxUnnormalized(_ x: UnsafeMutablePointer<Float>, rowSums: UnsafeMutablePointer<Float>, rows: Int, n: Int, stride: Int) {
    ck_softmax_unnormalized(x, rowSums, rows, n, stride)
}

/// Row softmax in place over the first `n` entries of each of `rows` rows spaced `stride` apart:
/// p = exp(x − max) / Σ exp(x − max).
public func softmaxForward(_ x: UnsafeMutablePointer<Float>, rows: Int, n: Int, stride: Int) {
    ck_softmax(x, rows, n, stride)
}

/// x[i] *= s.
public func scaleInPlace(_ x: UnsafeMutablePointer<Float>, _ s: Float, count: Int) {
    ck_scale(x, s, count)
}
