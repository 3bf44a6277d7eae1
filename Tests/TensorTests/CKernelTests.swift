import CKernels
import Foundation
import Tensor
import XCTest

/// The C elementwise kernels, each variant called directly (portable always; AVX2 + FMA when this
/// CPU has it), against Double references computed here, on odd row lengths (the masked tails).
/// Tolerances: exp relative 2e-7, erf absolute 2e-7, GELU 1e-6 · max(1, |x|), LayerNorm absolute
/// 2e-6 on unit-scale inputs, softmax relative 1e-6; additions and scaling bit-exact.
final class CKernelTests: XCTestCase {
    enum Path: String, CaseIterable { case portable, avx2 }

    /// The variants this CPU can run.
    static var paths: [Path] { ck_cpu_has_avx2_fma() != 0 ? [.portable, .avx2] : [.portable] }

    static let lengths = [1, 7, 8, 9, 383, 384, 1536 + 3]

    var rng = SplitMix64(seed: 11)

    /// Uniform in [lo, hi).
    func uniform(_ n: Int, _ lo: Float, _ hi: Float) -> [Float] {
        (0..<n).map { _ in lo + (hi - lo) * Float(rng.next() >> 40) / Float(1 << 24) }
    }

    // MARK: Calls by path

    func exp(_ x: [Float], _ p: Path) -> [Float] {
        var y = [Float](repeating: .nan, count: x.count)
        switch p { case .portable: ck_exp_portable(&y, x, x.count); case .avx2: ck_exp_avx2(&y, x, x.count) }
        return y
    }

    func erf(_ x: [Float], _ p: Path) -> [Float] {
        var y = [Float](repeating: .nan, count: x.count)
        switch p { case .portable: ck_erf_portable(&y, x, x.count); case .avx2: ck_erf_avx2(&y, x, x.count) }
        return y
    }

    func gelu(_ x: [Float], _ p: Path) -> [Float] {
        var y = x
        switch p { case .portable: ck_gelu_portable(&y, y.count); case .avx2: ck_gelu_avx2(&y, y.count) }
        return y
    }

    func biasGelu(_ x: [Float], _ bias: [Float], rows: Int, _ p: Path) -> [Float] {
        var y = x
        switch p {
        case .portable: ck_bias_gelu_portable(&y, bias, rows, bias.count)
        case .avx2: ck_bias_gelu_avx2(&y, bias, rows, bias.count)
        }
        return y
    }

    // MARK: Double references

    static func geluReference(_ x: Double) -> Double { x * 0.5 * (1 + Foundation.erf(x / 2.0.squareRoot())) }

    /// Largest GELU error in units of max(1, |x|).
    static func geluError(_ got: [Float], _ x: [Float]) -> Double {
        zip(got, x).map { abs(Double($0) - geluReference(Double($1))) / max(1, abs(Double($1))) }.max() ?? 0
    }

    // MARK: exp, erf, GELU

    func testExpRelativeError() {
        var x = stride(from: Float(-87.3), to: 88.3, by: 0.00731).map { $0 }
        x += uniform(1539, -20, 20)
        for p in Self.paths {
            let y = exp(x, p)
            let worst = zip(y, x).map { abs(Double($0) / Foundation.exp(Double($1)) - 1) }.max()!
            XCTAssertLessThan(worst, 2e-7, "exp \(p): max relative error")
            print("exp \(p): max relative error \(worst)")
            for n in Self.lengths {
                let xs = uniform(n, -10, 10)
                let got = exp(xs, p)
                // Tail lanes compute as body lanes do.
                XCTAssertEqual(got, xs.map { exp([$0], p)[0] }, "exp \(p), n = \(n): tail differs")
                let w = zip(got, xs).map { abs(Double($0) / Foundation.exp(Double($1)) - 1) }.max()!
                XCTAssertLessThan(w, 2e-7, "exp \(p), n = \(n)")
            }
            // Underflow is exactly zero, as expf; exp(0) = 1; NaN passes through.
            XCTAssertEqual(exp([-87.34, -88, -100, -1e30, -.infinity], p), [0, 0, 0, 0, 0], "exp \(p) underflow")
            XCTAssertEqual(exp([0], p), [1])
            XCTAssertTrue(exp([.nan], p)[0].isNaN)
        }
    }

    func testErfAbsoluteErrorOnDenseGrid() {
        let x = stride(from: Float(-6), through: 6, by: 0.0001).map { $0 }
        for p in Self.paths {
            let y = erf(x, p)
            let worst = zip(y, x).map { abs(Double($0) - Foundation.erf(Double($1))) }.max()!
            XCTAssertLessThan(worst, 2e-7, "erf \(p): max absolute error over [-6, 6]")
            print("erf \(p): max absolute error \(worst)")
            XCTAssertEqual(erf([0, 4, -4, 10, -1e30, .infinity, -.infinity], p), [0, 1, -1, 1, -1, 1, -1])
            XCTAssertTrue(erf([.nan], p)[0].isNaN)
            // Odd, and relatively accurate near 0 (the first interval is expanded about 0).
            XCTAssertEqual(erf(x.map { -$0 }, p), y.map { -$0 }, "erf \(p) is not odd")
            let tiny: [Float] = [1e-30, 1e-6, 1e-3, 0.01]
            for (t, e) in zip(tiny, erf(tiny, p)) {
                XCTAssertEqual(Double(e) / Foundation.erf(Double(t)), 1, accuracy: 1e-6, "erf \(p)(\(t))")
            }
        }
    }

    func testGeluMatchesExactErfForm() {
        var x = stride(from: Float(-10), through: 10, by: 0.0003).map { $0 }
        x += uniform(1539, -4, 4)
        for p in Self.paths {
            let worst = Self.geluError(gelu(x, p), x)
            XCTAssertLessThan(worst, 1e-6, "gelu \(p): max error / max(1, |x|)")
            print("gelu \(p): max error / max(1, |x|) \(worst)")
            for n in Self.lengths {
                let xs = uniform(n, -6, 6)
                XCTAssertLessThan(Self.geluError(gelu(xs, p), xs), 1e-6, "gelu \(p), n = \(n)")
            }
            // Far out, GELU is exactly x or 0.
            let big: [Float] = [6, 10, 100, 1e6, 1e30]
            XCTAssertEqual(gelu(big, p), big, "gelu \(p), large positive")
            XCTAssertEqual(gelu(big.map { -$0 }, p), [0, 0, 0, 0, 0], "gelu \(p), large negative")
            XCTAssertEqual(gelu([0], p), [0])
        }
    }

    func testBiasGeluOddRowLengths() {
        for p in Self.paths {
            var worst = 0.0
            for cols in Self.lengths {
                let rows = 3
                let x = uniform(rows * cols, -4, 4), bias = uniform(cols, -1, 1)
                let y = biasGelu(x, bias, rows: rows, p)
                let pre = x.indices.map { x[$0] + bias[$0 % cols] }
                let e = Self.geluError(y, pre)
                worst = max(worst, e)
                XCTAssertLessThan(e, 1e-6, "biasGelu \(p), cols = \(cols)")
            }
            print("biasGelu \(p): max error / max(1, |x|) \(worst)")
        }
    }

    // MARK: Additions and scaling (the same float operations in the same order: bit-exact)

    func testAddBiasResidualScaleAreExact() {
        for p in Self.paths {
            for n in Self.lengths {
                let a = uniform(n, -3, 3), b = uniform(n, -3, 3), bias = uniform(n, -1, 1)
                var out = [Float](repeating: .nan, count: n + 1) // one guard entry past the end
                switch p { case .portable: ck_add_portable(&out, a, b, n); case .avx2: ck_add_avx2(&out, a, b, n) }
                XCTAssertEqual(Array(out[..<n]), zip(a, b).map { $0 + $1 }, "add \(p), n = \(n)")
                XCTAssertTrue(out[n].isNaN, "add \(p) wrote past n = \(n)")

                let rows = 2
                let x = uniform(rows * n, -3, 3), res = uniform(rows * n, -3, 3)
                var o = x // out aliases x, as the encoder calls it
                switch p {
                case .portable: ck_bias_residual_portable(&o, o, bias, res, rows, n)
                case .avx2: ck_bias_residual_avx2(&o, o, bias, res, rows, n)
                }
                XCTAssertEqual(o, x.indices.map { x[$0] + bias[$0 % n] + res[$0] }, "biasResidual \(p), n = \(n)")

                var s = a + [.nan]
                switch p { case .portable: ck_scale_portable(&s, 0.37, n); case .avx2: ck_scale_avx2(&s, 0.37, n) }
                XCTAssertEqual(Array(s[..<n]), a.map { $0 * 0.37 }, "scale \(p), n = \(n)")
                XCTAssertTrue(s[n].isNaN, "scale \(p) wrote past n = \(n)")
            }
        }
    }

    func testReluKeepsNaNAndSignedZero() {
        for p in Self.paths {
            for n in Self.lengths {
                var x = uniform(n, -2, 2)
                if n > 3 { x[0] = -0.0; x[1] = .nan; x[2] = -.infinity; x[3] = 0 }
                var y = x + [.nan]
                switch p { case .portable: ck_relu_portable(&y, n); case .avx2: ck_relu_avx2(&y, n) }
                let want = x.map { $0 < 0 ? 0 : $0 }
                XCTAssertEqual(Array(y[..<n]).map(\.bitPattern), want.map(\.bitPattern), "relu \(p), n = \(n)")
                XCTAssertTrue(y[n].isNaN, "relu \(p) wrote past n = \(n)")
            }
        }
    }

    // MARK: LayerNorm

    /// The fused residual add + LayerNorm gives the bits of its three separate passes (add, LayerNorm,
    /// add the bias row into the kept sum), for every variant, with and without `b`, `sum` and
    /// `sum_bias`, and with `out` aliasing an input.
    func testAddLayerNormIsTheSeparatePassesBitForBit() {
        for p in Self.paths {
            let add: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Void = p == .portable
                ? { ck_add_portable($0, $1, $2, $3) } : { ck_add_avx2($0, $1, $2, $3) }
            let norm: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int, Int) -> Void = p == .portable
                ? { ck_layernorm_portable($0, nil, nil, $1, $2, $3, $4, $5, 1e-12) } : { ck_layernorm_avx2($0, nil, nil, $1, $2, $3, $4, $5, 1e-12) }
            let fused: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>?, UnsafePointer<Float>, UnsafePointer<Float>?, UnsafePointer<Float>?,
                        UnsafePointer<Float>, UnsafePointer<Float>, Int, Int) -> Void = p == .portable
                ? { ck_add_layernorm_portable($0, $1, $2, $3, $4, $5, $6, $7, $8, 1e-12) } : { ck_add_layernorm_avx2($0, $1, $2, $3, $4, $5, $6, $7, $8, 1e-12) }
            for cols in Self.lengths {
                let rows = 3
                let a = uniform(rows * cols, -2, 2), b = uniform(rows * cols, -2, 2)
                let w = uniform(cols, 0.5, 1.5), beta = uniform(cols, -0.5, 0.5), sumBias = uniform(cols, -1, 1)
                // Separate passes.
                var s = [Float](repeating: 0, count: rows * cols), y = s
                add(&s, a, b, rows * cols)
                norm(&y, s, w, beta, rows, cols)
                var kept = s
                for r in 0..<rows { kept.withUnsafeMutableBufferPointer { k in add(k.baseAddress! + r * cols, k.baseAddress! + r * cols, sumBias, cols) } }
                var yA = [Float](repeating: 0, count: rows * cols)
                norm(&yA, a, w, beta, rows, cols)
                var keptA = a
                for r in 0..<rows { keptA.withUnsafeMutableBufferPointer { k in add(k.baseAddress! + r * cols, k.baseAddress! + r * cols, sumBias, cols) } }

                // out only, out aliasing a.
                var o = a
                o.withUnsafeMutableBufferPointer { o in fused(o.baseAddress!, nil, o.baseAddress!, b, nil, w, beta, rows, cols) }
                XCTAssertEqual(o.map(\.bitPattern), y.map(\.bitPattern), "add+layernorm \(p), cols = \(cols)")
                // out and the sum with its bias.
                var o2 = [Float](repeating: .nan, count: rows * cols), sum = o2
                fused(&o2, &sum, a, b, sumBias, w, beta, rows, cols)
                XCTAssertEqual(o2.map(\.bitPattern), y.map(\.bitPattern), "add+layernorm (sum) \(p), cols = \(cols)")
                XCTAssertEqual(sum.map(\.bitPattern), kept.map(\.bitPattern), "add+layernorm sum + bias \(p), cols = \(cols)")
                // No b: LayerNorm of a, the sum a + bias; and the sum without a bias.
                var o3 = [Float](repeating: .nan, count: rows * cols), sum3 = o3, sum4 = o3
                fused(&o3, &sum3, a, nil, sumBias, w, beta, rows, cols)
                XCTAssertEqual(o3.map(\.bitPattern), yA.map(\.bitPattern), "layernorm (no b) \(p), cols = \(cols)")
                XCTAssertEqual(sum3.map(\.bitPattern), keptA.map(\.bitPattern), "sum (no b) \(p), cols = \(cols)")
                fused(&o3, &sum4, a, b, nil, w, beta, rows, cols)
                XCTAssertEqual(sum4.map(\.bitPattern), s.map(\.bitPattern), "sum (no bias) \(p), cols = \(cols)")
            }
        }
    }

    func testLayerNormMatchesTorchSemantics() {
        for p in Self.paths {
            var worst = 0.0, worstStats = 0.0
            for cols in Self.lengths {
                let rows = 3
                // Unit-scale rows with an offset, so the two-pass variance matters.
                let x = uniform(rows * cols, -2, 2).map { $0 + 3 }
                let w = uniform(cols, 0.5, 1.5), b = uniform(cols, -0.5, 0.5)
                var y = [Float](repeating: .nan, count: rows * cols)
                var mean = [Float](repeating: .nan, count: rows), rstd = mean
                var yNoStats = x // out aliases input, no mean/rstd
                switch p {
                case .portable:
                    ck_layernorm_portable(&y, &mean, &rstd, x, w, b, rows, cols, 1e-5)
                    ck_layernorm_portable(&yNoStats, nil, nil, yNoStats, w, b, rows, cols, 1e-5)
                case .avx2:
                    ck_layernorm_avx2(&y, &mean, &rstd, x, w, b, rows, cols, 1e-5)
                    ck_layernorm_avx2(&yNoStats, nil, nil, yNoStats, w, b, rows, cols, 1e-5)
                }
                XCTAssertEqual(yNoStats, y, "layernorm \(p): aliasing or NULL stats changed the output")
                for r in 0..<rows {
                    let row = x[(r * cols)..<((r + 1) * cols)].map(Double.init)
                    let m = row.reduce(0, +) / Double(cols)
                    let v = row.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(cols)
                    let rs = 1 / (v + 1e-5).squareRoot()
                    worstStats = max(worstStats, abs(Double(mean[r]) - m), abs(Double(rstd[r]) - rs) / rs)
                    for c in 0..<cols {
                        let want = (row[c] - m) * rs * Double(w[c]) + Double(b[c])
                        worst = max(worst, abs(Double(y[r * cols + c]) - want))
                    }
                }
            }
            XCTAssertLessThan(worst, 2e-6, "layernorm \(p): max absolute error")
            XCTAssertLessThan(worstStats, 1e-6, "layernorm \(p): mean (absolute) / rstd (relative) error")
            print("layernorm \(p): max absolute error \(worst), mean/rstd \(worstStats)")
        }
    }

    // MARK: Softmax

    func testSoftmaxRowsWithStride() {
        for p in Self.paths {
            var worst = 0.0
            for n in Self.lengths {
                let rows = 3, stride = n + 5
                let x = uniform(rows * stride, -8, 8)
                var probs = x, unnorm = x
                var sums = [Float](repeating: .nan, count: rows)
                switch p {
                case .portable:
                    ck_softmax_portable(&probs, rows, n, stride)
                    ck_softmax_unnormalized_portable(&unnorm, &sums, rows, n, stride)
                case .avx2:
                    ck_softmax_avx2(&probs, rows, n, stride)
                    ck_softmax_unnormalized_avx2(&unnorm, &sums, rows, n, stride)
                }
                for r in 0..<rows {
                    let row = x[(r * stride)..<(r * stride + n)].map(Double.init)
                    let mx = row.max()!
                    let e = row.map { Foundation.exp($0 - mx) }
                    let z = e.reduce(0, +)
                    worst = max(worst, abs(Double(sums[r]) / z - 1))
                    for i in 0..<n {
                        worst = max(worst, abs(Double(probs[r * stride + i]) / (e[i] / z) - 1))
                        worst = max(worst, abs(Double(unnorm[r * stride + i]) / e[i] - 1))
                    }
                    // Entries past n are untouched.
                    XCTAssertEqual(probs[(r * stride + n)..<((r + 1) * stride)], x[(r * stride + n)..<((r + 1) * stride)])
                    XCTAssertEqual(unnorm[(r * stride + n)..<((r + 1) * stride)], x[(r * stride + n)..<((r + 1) * stride)])
                }
            }
            XCTAssertLessThan(worst, 1e-6, "softmax \(p): max relative error")
            print("softmax \(p): max relative error \(worst)")
        }
    }

    /// A masked-out or very negative entry contributes exactly 0, and the row max is its own 1.
    func testSoftmaxUnderflowAndMax() {
        for p in Self.paths {
            var x: [Float] = [0, -200, 5, -1e30, 5, -.infinity, 1, 2, 3]
            var s: Float = 0
            switch p {
            case .portable: ck_softmax_unnormalized_portable(&x, &s, 1, x.count, x.count)
            case .avx2: ck_softmax_unnormalized_avx2(&x, &s, 1, x.count, x.count)
            }
            XCTAssertEqual(x[1], 0); XCTAssertEqual(x[3], 0); XCTAssertEqual(x[5], 0)
            XCTAssertEqual(x[2], 1); XCTAssertEqual(x[4], 1)
        }
    }

    // MARK: The two variants agree; dispatch

    func testVariantsAgree() throws {
        guard Self.paths.contains(.avx2) else { throw XCTSkip("this CPU has no AVX2 + FMA") }
        let x = uniform(100_003, -9, 9)
        let e1 = exp(x, .portable), e2 = exp(x, .avx2)
        XCTAssertLessThan(zip(e1, e2).map { abs(Double($0) / Double($1) - 1) }.max()!, 2e-7, "exp")
        let f1 = erf(x, .portable), f2 = erf(x, .avx2)
        XCTAssertLessThan(zip(f1, f2).map { abs(Double($0) - Double($1)) }.max()!, 2e-7, "erf")
        let g1 = gelu(x, .portable), g2 = gelu(x, .avx2)
        XCTAssertLessThan(zip(zip(g1, g2), x).map { abs(Double($0.0) - Double($0.1)) / max(1, abs(Double($1))) }.max()!, 1e-6, "gelu")
    }

    func testDispatchFollowsCPUAndEnvironment() {
        let forced = ProcessInfo.processInfo.environment["ADAPTERMIX_NO_SIMD_DISPATCH"].map { !$0.isEmpty && $0 != "0" } ?? false
        let want = !forced && ck_cpu_has_avx2_fma() != 0 ? "avx2+fma" : "portable"
        XCTAssertEqual(Elementwise.kernelName, want)
        // The Swift wrappers use the dispatched kernels.
        var x: [Float] = [1, -1, 0.5]
        geluForward(&x, count: 3)
        XCTAssertLessThan(Self.geluError(x, [1, -1, 0.5]), 1e-6)
    }
}
