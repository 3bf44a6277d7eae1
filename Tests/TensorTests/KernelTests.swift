import Foundation
import Tensor
import XCTest

/// Forward kernels against Double references computed here from the textbook formulas.
final class KernelTests: XCTestCase {
    func testVectorExpMatchesFoundation() {
        var worst = 0.0
        var x: Float = -87
        while x < 88 {
            let got = Double(sexp(x)), want = Foundation.exp(Double(x))
            worst = max(worst, abs(got - want) / want)
            x += 0.0137
        }
        XCTAssertLessThan(worst, 3e-7, "max relative error of vexp")
        XCTAssertEqual(sexp(-100), 0)
        XCTAssertEqual(sexp(0), 1)
    }

    func testVectorErfMatchesFoundation() {
        var worst = 0.0
        var x: Float = -6
        while x < 6 {
            worst = max(worst, abs(Double(serf(x)) - Foundation.erf(Double(x))))
            x += 0.001
        }
        XCTAssertLessThan(worst, 1e-6, "max absolute error of verf (A&S 7.1.26 bound is 1.5e-7, plus Float rounding)")
    }

    func testGeluExactErfForm() {
        let xs: [Float] = (0..<37).map { Float($0) * 0.37 - 6.5 }
        var ys = xs
        ys.withUnsafeMutableBufferPointer { geluForward($0.baseAddress!, count: $0.count) }
        for (x, y) in zip(xs, ys) {
            let want = Double(x) * 0.5 * (1 + Foundation.erf(Double(x) / 2.0.squareRoot()))
            XCTAssertEqual(Double(y), want, accuracy: 2e-6, "gelu(\(x))")
        }
        // Distinct from the tanh approximation, which is off by 4.7e-4 at x = 2.7.
        var y: Float = 2.7
        geluForward(&y, count: 1)
        let tanhApprox = 0.5 * 2.7 * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (2.7 + 0.044715 * 2.7 * 2.7 * 2.7)))
        XCTAssertGreaterThan(abs(Double(y) - tanhApprox), 4e-4)
    }

    func testLayerNormMatchesReference() {
        let rows = 3, cols = 21
        var rng = SystemRandomNumberGenerator()
        let x = (0..<(rows * cols)).map { _ in Float.random(in: -3...3, using: &rng) }
        let w = (0..<cols).map { _ in Float.random(in: 0.5...1.5, using: &rng) }
        let b = (0..<cols).map { _ in Float.random(in: -0.5...0.5, using: &rng) }
        var y = [Float](repeating: 0, count: rows * cols)
        var mean = [Float](repeating: 0, count: rows), rstd = mean
        layernormForward(out: &y, mean: &mean, rstd: &rstd, input: x, weight: w, bias: b, rows: rows, cols: cols, eps: 1e-5)
        for r in 0..<rows {
            let row = x[(r * cols)..<((r + 1) * cols)].map(Double.init)
            let m = row.reduce(0, +) / Double(cols)
            let v = row.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(cols)
            XCTAssertEqual(Double(mean[r]), m, accuracy: 1e-5)
            XCTAssertEqual(Double(rstd[r]), 1 / (v + 1e-5).squareRoot(), accuracy: 1e-4)
            for c in 0..<cols {
                let want = (row[c] - m) / (v + 1e-5).squareRoot() * Double(w[c]) + Double(b[c])
                XCTAssertEqual(Double(y[r * cols + c]), want, accuracy: 1e-5)
            }
        }
    }

    func testSoftmaxRowsSumToOneAndMatch() {
        let rows = 2, n = 11, stride = 13
        var x = (0..<(rows * stride)).map { Float($0 % 7) - 3 }
        let orig = x
        softmaxForward(&x, rows: rows, n: n, stride: stride)
        for r in 0..<rows {
            let row = orig[(r * stride)..<(r * stride + n)].map(Double.init)
            let mx = row.max()!
            let z = row.reduce(0) { $0 + Foundation.exp($1 - mx) }
            for i in 0..<n { XCTAssertEqual(Double(x[r * stride + i]), Foundation.exp(row[i] - mx) / z, accuracy: 1e-6) }
            // Entries past n are untouched.
            XCTAssertEqual(x[r * stride + n], orig[r * stride + n])
        }
    }

    func testLinearForwardMatchesNaive() {
        let rows = 5, inDim = 7, outDim = 3
        let input = (0..<(rows * inDim)).map { Float(($0 * 37) % 11) / 10 - 0.5 }
        let weight = (0..<(outDim * inDim)).map { Float(($0 * 17) % 13) / 10 - 0.6 }
        let bias: [Float] = [0.1, -0.2, 0.3]
        var out = [Float](repeating: .nan, count: rows * outDim)
        linearForward(out: &out, input: input, weight: weight, bias: bias, rows: rows, inDim: inDim, outDim: outDim)
        for r in 0..<rows {
            for o in 0..<outDim {
                var s = Double(bias[o])
                for i in 0..<inDim { s += Double(input[r * inDim + i]) * Double(weight[o * inDim + i]) }
                XCTAssertEqual(Double(out[r * outDim + o]), s, accuracy: 1e-5)
            }
        }
    }
}
