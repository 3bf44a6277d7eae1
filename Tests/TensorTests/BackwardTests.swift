import Foundation
import Tensor
import XCTest

/// Every backward against central finite differences of a Double reference forward, on tiny shapes.
/// The loss is L = Σ w ⊙ f(x) with fixed random weights w, so dL/df = w is the upstream gradient.
final class BackwardTests: XCTestCase {
    var rng = SplitMix64(seed: 7)

    func rand(_ n: Int, scale: Double = 1) -> [Double] { (0..<n).map { _ in scale * (Double(rng.next() >> 11) / Double(1 << 52) - 1) } }

    /// Numerical gradient of `f` (Double) at `x`, contracted with `w`.
    func numericGradient(_ x: [Double], _ w: [Double], h: Double = 1e-6, _ f: ([Double]) -> [Double]) -> [Double] {
        var g = [Double](repeating: 0, count: x.count)
        for i in x.indices {
            var xp = x, xm = x
            xp[i] += h; xm[i] -= h
            let fp = f(xp), fm = f(xm)
            var s = 0.0
            for j in w.indices { s += w[j] * (fp[j] - fm[j]) }
            g[i] = s / (2 * h)
        }
        return g
    }

    func assertClose(_ got: [Float], _ want: [Double], tol: Double = 2e-3, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, file: file, line: line)
        let scale = max(1, want.map(abs).max() ?? 1)
        let worst = zip(got, want).map { abs(Double($0) - $1) }.max() ?? 0
        XCTAssertLessThan(worst / scale, tol, "\(what): max abs diff \(worst)", file: file, line: line)
    }

    func testLinearBackward() {
        let N = 3, I = 4, O = 5
        let x = rand(N * I), W = rand(O * I), b = rand(O), w = rand(N * O)
        func f(_ x: [Double], _ W: [Double], _ b: [Double]) -> [Double] {
            (0..<(N * O)).map { k in let r = k / O, o = k % O; return b[o] + (0..<I).reduce(0) { $0 + x[r * I + $1] * W[o * I + $1] } }
        }
        var dx = [Float](repeating: 0, count: N * I), dW = [Float](repeating: 0, count: O * I), db = [Float](repeating: 0, count: O)
        let dOut = w.map(Float.init)
        linearBackward(dInput: &dx, dWeight: &dW, dBias: &db, dOut: dOut, input: x.map(Float.init), weight: W.map(Float.init),
                       rows: N, inDim: I, outDim: O)
        assertClose(dx, numericGradient(x, w) { f($0, W, b) }, "dInput")
        assertClose(dW, numericGradient(W, w) { f(x, $0, b) }, "dWeight")
        assertClose(db, numericGradient(b, w) { f(x, W, $0) }, "dBias")
    }

    func testLayerNormBackward() {
        let R = 2, C = 6, eps = 1e-5
        let x = rand(R * C, scale: 2), g = rand(C), b = rand(C), w = rand(R * C)
        func f(_ x: [Double], _ g: [Double], _ b: [Double]) -> [Double] {
            var out = [Double](repeating: 0, count: R * C)
            for r in 0..<R {
                let row = Array(x[(r * C)..<((r + 1) * C)])
                let m = row.reduce(0, +) / Double(C)
                let v = row.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(C)
                for c in 0..<C { out[r * C + c] = (row[c] - m) / (v + eps).squareRoot() * g[c] + b[c] }
            }
            return out
        }
        let xf = x.map(Float.init), gf = g.map(Float.init), bf = b.map(Float.init)
        var y = [Float](repeating: 0, count: R * C), mean = [Float](repeating: 0, count: R), rstd = mean
        layernormForward(out: &y, mean: &mean, rstd: &rstd, input: xf, weight: gf, bias: bf, rows: R, cols: C, eps: Float(eps))
        var dx = [Float](repeating: 0, count: R * C), dg = [Float](repeating: 0, count: C), db = dg
        layernormBackward(dInput: &dx, dWeight: &dg, dBias: &db, dOut: w.map(Float.init), input: xf, weight: gf,
                          mean: mean, rstd: rstd, rows: R, cols: C)
        assertClose(dx, numericGradient(x, w) { f($0, g, b) }, "dInput")
        assertClose(dg, numericGradient(g, w) { f(x, $0, b) }, "dWeight")
        assertClose(db, numericGradient(b, w) { f(x, g, $0) }, "dBias")
    }

    func testGeluBackward() {
        let x = rand(19, scale: 4), w = rand(19)
        var dx = [Float](repeating: 0, count: 19)
        geluBackward(dInput: &dx, dOut: w.map(Float.init), input: x.map(Float.init), count: 19)
        assertClose(dx, numericGradient(x, w) { $0.map { $0 * 0.5 * (1 + Foundation.erf($0 / 2.0.squareRoot())) } }, "gelu")
    }

    func testReluAndTanhBackward() {
        let x = rand(9, scale: 2).map { abs($0) < 0.05 ? 0.3 : $0 }, w = rand(9)
        var y = x.map(Float.init)
        reluForward(&y, count: 9)
        var dx = [Float](repeating: 0, count: 9)
        reluBackward(dInput: &dx, dOut: w.map(Float.init), output: y, count: 9)
        assertClose(dx, numericGradient(x, w) { $0.map { max($0, 0) } }, "relu")
        var t = x.map(Float.init)
        tanhForward(&t, count: 9)
        var dt = [Float](repeating: 0, count: 9)
        tanhBackward(dInput: &dt, dOut: w.map(Float.init), output: t, count: 9)
        assertClose(dt, numericGradient(x, w) { $0.map(Foundation.tanh) }, "tanh")
    }

    func testSoftmaxBackward() {
        let R = 2, n = 5
        let x = rand(R * n, scale: 3), w = rand(R * n)
        func f(_ x: [Double]) -> [Double] {
            var out = x
            for r in 0..<R {
                let row = x[(r * n)..<((r + 1) * n)]
                let m = row.max()!
                let z = row.reduce(0) { $0 + Foundation.exp($1 - m) }
                for j in 0..<n { out[r * n + j] = Foundation.exp(x[r * n + j] - m) / z }
            }
            return out
        }
        var p = x.map(Float.init)
        softmaxForward(&p, rows: R, n: n, stride: n)
        var dx = [Float](repeating: 0, count: R * n)
        softmaxBackward(dInput: &dx, dOut: w.map(Float.init), probs: p, rows: R, n: n, stride: n)
        assertClose(dx, numericGradient(x, w, f), "softmax")
    }

    func testCrossEntropyGradient() {
        let R = 3, K = 4
        let z = rand(R * K, scale: 2)
        let t: [Int32] = [0, 3, 1]
        func loss(_ z: [Double]) -> [Double] {
            var l = 0.0
            for r in 0..<R {
                let row = z[(r * K)..<((r + 1) * K)]
                let m = row.max()!
                l += Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - m) }) + m - z[r * K + Int(t[r])]
            }
            return [l / Double(R)]
        }
        var dz = [Float](repeating: 0, count: R * K)
        let l = crossEntropyForwardBackward(dLogits: &dz, logits: z.map(Float.init), targets: t, rows: R, classes: K)
        XCTAssertEqual(Double(l), loss(z)[0], accuracy: 1e-5)
        assertClose(dz, numericGradient(z, [1], loss), "cross-entropy")
    }
}

extension BackwardTests {
    func testSwishBackward() {
        let x = rand(13, scale: 4), w = rand(13)
        var y = [Float](repeating: 0, count: 13)
        swishForward(out: &y, input: x.map(Float.init), count: 13)
        for (a, b) in zip(y, x) { XCTAssertEqual(Double(a), b / (1 + Foundation.exp(-b)), accuracy: 1e-6) }
        var dx = [Float](repeating: 0, count: 13)
        swishBackward(dInput: &dx, dOut: w.map(Float.init), input: x.map(Float.init), count: 13)
        assertClose(dx, numericGradient(x, w) { $0.map { $0 / (1 + Foundation.exp(-$0)) } }, "swish")
    }
}
