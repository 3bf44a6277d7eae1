import CKernels
import Foundation

// Backward passes, side by side with their forwards' conventions (after llm.c): gradients carry a
// `d` prefix and are *accumulated* (+=), so one zeroing clears them all; a nil gradient output is
// not computed (the frozen base's parameters).

/// Linear layer backward for out = input · weightᵀ + bias (input (N, in), weight (out, in)):
/// dInput += dOut · weight, dWeight += dOutᵀ · input, dBias += Σ_rows dOut.
public func linearBackward(
    dInput: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?,
    dOut: UnsafePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
    rows: Int, inDim: Int, outDim: Int
) {
    if let dInput {
        sgemm(dInput, ldc: inDim, dOut, lda: outDim, transA: false, weight, ldb: inDim, transB: false,
              m: rows, n: inDim, k: outDim, beta: 1)
    }
    if let dWeight {
        sgemm(dWeight, ldc: inDim, dOut, lda: outDim, transA: true, input, ldb: inDim, transB: false,
              m: outDim, n: inDim, k: rows, beta: 1)
    }
    if let dBias {
        for r in 0..<rows { addForward(out: dBias, dBias, dOut + r * outDim, count: outDim) }
    }
}

/// LayerNorm backward (torch.nn.LayerNorm, biased variance), given the forward's per-row mean and
/// rstd: with x̂ = (x − mean)·rstd and g = dOut ⊙ weight,
/// dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)); dWeight += Σ dOut ⊙ x̂; dBias += Σ dOut.
public func layernormBackward(
    dInput: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?,
    dOut: UnsafePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
    mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows: Int, cols: Int
) {
    for r in 0..<rows {
        let x = input + r * cols, dy = dOut + r * cols, dx = dInput + r * cols
        let m = mean[r], rs = rstd[r]
        var sumG: Float = 0, sumGX: Float = 0
        for i in 0..<cols {
            let xhat = (x[i] - m) * rs
            let g = dy[i] * weight[i]
            sumG += g
            sumGX += g * xhat
        }
        let meanG = sumG / Float(cols), meanGX = sumGX / Float(cols)
        for i in 0..<cols {
            let xhat = (x[i] - m) * rs
            dx[i] += rs * (dy[i] * weight[i] - meanG - xhat * meanGX)
            dWeight?[i] += dy[i] * xhat
            dBias?[i] += dy[i]
        }
    }
}

/// GELU (exact erf) backward: d/dx [x·Φ(x)] = Φ(x) + x·φ(x), φ(x) = exp(−x²/2)/√(2π).
/// `input` is the pre-activation; dInput += dOut · gelu′(input).
public func geluBackward(dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, input: UnsafePointer<Float>, count: Int) {
    let invSqrt2: Float = 0.7071067811865476, invSqrt2Pi: Float = 0.3989422804014327
    var i = 0
    while i + 8 <= count {
        let x = load8(input + i)
        let cdf = 0.5 * (1 + verf(x * invSqrt2))
        let pdf = vexp(-0.5 * x * x) * invSqrt2Pi
        store8(dInput + i, load8(dInput + i) + load8(dOut + i) * (cdf + x * pdf))
        i += 8
    }
    while i < count {
        let x = input[i]
        let cdf = 0.5 * (1 + serf(x * invSqrt2))
        let pdf = sexp(-0.5 * x * x) * invSqrt2Pi
        dInput[i] += dOut[i] * (cdf + x * pdf)
        i += 1
    }
}

/// ReLU in place, and its backward (dInput += dOut where the *output* is positive).
public func reluForward(_ x: UnsafeMutablePointer<Float>, count: Int) {
    ck_relu(x, count)
}

public func reluBackward(dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, output: UnsafePointer<Float>, count: Int) {
    for i in 0..<count where output[i] > 0 { dInput[i] += dOut[i] }
}

/// tanh in place, and its backward from the output y: dInput += dOut · (1 − y²).
public func tanhForward(_ x: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { x[i] = Foundation.tanh(x[i]) }
}

public func tanhBackward(dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, output: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { dInput[i] += dOut[i] * (1 - output[i] * output[i]) }
}

/// Softmax backward over rows of probabilities P (n of each `stride`-spaced row):
/// dX += P ⊙ (dP − Σ_j dP_j P_j). `dInput` may alias `dOut` (then it is overwritten, not accumulated).
public func softmaxBackward(dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                            rows: Int, n: Int, stride: Int, accumulate: Bool = true) {
    for r in 0..<rows {
        let p = probs + r * stride, dp = dOut + r * stride, dx = dInput + r * stride
        var dot: Float = 0
        for j in 0..<n { dot += dp[j] * p[j] }
        for j in 0..<n {
            let g = p[j] * (dp[j] - dot)
            dx[j] = accumulate ? dx[j] + g : g
        }
    }
}

/// Mean softmax cross-entropy over `rows` rows of `classes` logits, with its gradient
/// dLogits = (softmax − onehot) / rows (written, not accumulated). Returns the mean loss.
public func crossEntropyForwardBackward(dLogits: UnsafeMutablePointer<Float>?, logits: UnsafePointer<Float>,
                                        targets: UnsafePointer<Int32>, rows: Int, classes: Int) -> Float {
    var loss: Double = 0
    for r in 0..<rows {
        let z = logits + r * classes
        var mx = -Float.infinity
        for c in 0..<classes { mx = max(mx, z[c]) }
        var sum: Double = 0
        for c in 0..<classes { sum += Foundation.exp(Double(z[c] - mx)) }
        let t = Int(targets[r])
        loss += Foundation.log(sum) - Double(z[t] - mx)
        if let dLogits {
            for c in 0..<classes {
                let p = Float(Foundation.exp(Double(z[c] - mx)) / sum)
                dLogits[r * classes + c] = (p - (c == t ? 1 : 0)) / Float(rows)
            }
        }
    }
    return Float(loss / Double(rows))
}

/// SiLU ("swish" in AdapterHub) x·σ(x), writing into `out` from `input`; and its backward
/// dInput += dOut · σ(x)·(1 + x·(1 − σ(x))) from the pre-activation.
public func swishForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { let x = input[i]; out[i] = x / (1 + Foundation.exp(-x)) }
}

public func swishBackward(dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, input: UnsafePointer<Float>, count: Int) {
    for i in 0..<count {
        let x = input[i], s = 1 / (1 + Foundation.exp(-x))
        dInput[i] += dOut[i] * s * (1 + x * (1 - s))
    }
}
