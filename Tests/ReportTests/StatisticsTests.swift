import Foundation
import Report
import Tensor
import XCTest

/// Statistics against independent references: every literal below was produced by scipy 1.17.1 /
/// numpy 2.4.6 (the call is named next to it), except the hand-worked McNemar case.
final class StatisticsTests: XCTestCase {
    // Dataset A: strongly correlated, no ties.
    let ax = [1.2, 2.4, 3.1, 4.8, 5.0, 6.7, 7.3, 8.9]
    let ay = [2.1, 2.9, 3.8, 5.2, 4.9, 7.1, 6.8, 9.5]
    // Dataset B: weakly correlated, ties on both sides.
    let bx: [Double] = [1, 2, 2, 3, 4, 4, 4, 5, 6, 7]
    let by: [Double] = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
    // Dataset C: negative correlation, n = 5.
    let cx: [Double] = [10, 20, 30, 40, 50]
    let cy = [5.5, 3.1, 4.0, 1.2, 0.7]

    func assertRelative(_ got: Double, _ want: Double, _ tol: Double = 1e-9, _ what: String,
                        file: StaticString = #filePath, line: UInt = #line) {
        let err = want == 0 ? abs(got) : abs(got - want) / abs(want)
        XCTAssertLessThanOrEqual(err, tol, "\(what): got \(got), want \(want)", file: file, line: line)
    }

    func assertCorrelation(_ c: Correlation?, r: Double, p: Double, n: Int, _ what: String,
                           file: StaticString = #filePath, line: UInt = #line) {
        guard let c else { return XCTFail("\(what): nil", file: file, line: line) }
        XCTAssertEqual(c.n, n, what, file: file, line: line)
        XCTAssertEqual(c.r, r, accuracy: 1e-12, "\(what) r", file: file, line: line)
        assertRelative(c.p, p, 1e-9, "\(what) p", file: file, line: line)
    }

    // MARK: - Descriptive

    func testMeanVarianceStandardDeviation() {
        // numpy: np.mean(ax) = 4.925, np.var(ax, ddof=1) = 6.885, np.std(ax, ddof=1) = 2.623928352680385
        assertRelative(Statistics.mean(ax), 4.925, 1e-14, "mean")
        assertRelative(Statistics.variance(ax), 6.885, 1e-13, "variance")
        assertRelative(Statistics.standardDeviation(ax), 2.623928352680385, 1e-13, "std")
        XCTAssertTrue(Statistics.mean([]).isNaN)
        XCTAssertEqual(Statistics.variance([]), 0)
        XCTAssertEqual(Statistics.variance([3]), 0)
        XCTAssertEqual(Statistics.standardDeviation([3]), 0)
        XCTAssertEqual(Statistics.mean([0.1, 0.1, 0.1]), 0.1)  // exact on a constant sample
    }

    // MARK: - Correlation

    func testPearsonAgainstScipy() {
        // scipy.stats.pearsonr(x, y) -> (statistic, pvalue)
        assertCorrelation(Statistics.pearson(ax, ay), r: 0.9866777292314381, p: 5.852282608365745e-06, n: 8, "A")
        assertCorrelation(Statistics.pearson(bx, by), r: 0.3073125215676145, p: 0.38772484229764537, n: 10, "B")
        assertCorrelation(Statistics.pearson(cx, cy), r: -0.9166329746224408, p: 0.028531104271835313, n: 5, "C")
        // scipy.stats.pearsonr([1,2,3,4], [3,5,7,9]) -> (1.0, 0.0)
        XCTAssertEqual(Statistics.pearson([1, 2, 3, 4], [3, 5, 7, 9]), Correlation(r: 1, p: 0, n: 4))
    }

    func testSpearmanAgainstScipy() {
        // scipy.stats.spearmanr(x, y) -> (statistic, pvalue)
        assertCorrelation(Statistics.spearman(ax, ay), r: 0.9523809523809524, p: 0.000260400024387251, n: 8, "A")
        assertCorrelation(Statistics.spearman(bx, by), r: 0.42547404571870995, p: 0.22025108522647133, n: 10, "B (ties)")
        assertCorrelation(Statistics.spearman(cx, cy), r: -0.8999999999999998, p: 0.03738607346849874, n: 5, "C")
        // scipy.stats.spearmanr([1,2,3,4], [1,4,9,16]) -> (1.0, 0.0)
        XCTAssertEqual(Statistics.spearman([1, 2, 3, 4], [1, 4, 9, 16]), Correlation(r: 1, p: 0, n: 4))
    }

    func testCorrelationDegenerateInputIsNil() {
        XCTAssertNil(Statistics.pearson([], []))
        XCTAssertNil(Statistics.spearman([], []))
        XCTAssertNil(Statistics.pearson([1, 2], [2, 1]))  // n < 3
        XCTAssertNil(Statistics.pearson([1, 2, 3], [1, 2]))  // length mismatch
        XCTAssertNil(Statistics.pearson([0.1, 0.1, 0.1, 0.1], [1, 2, 3, 4]))  // constant x
        XCTAssertNil(Statistics.spearman([1, 2, 3, 4], [5, 5, 5, 5]))  // constant y
    }

    func testRanksAgainstRankdata() {
        // scipy.stats.rankdata(bx), rankdata(by)
        XCTAssertEqual(Statistics.ranks(bx), [1.0, 2.5, 2.5, 4.0, 6.0, 6.0, 6.0, 8.0, 9.0, 10.0])
        XCTAssertEqual(Statistics.ranks(by), [4.5, 1.5, 6.0, 1.5, 7.5, 10.0, 3.0, 9.0, 7.5, 4.5])
        // scipy.stats.rankdata([3.5, -1.0, 3.5, 2.0, 2.0, 2.0, 10.0, -1.0])
        XCTAssertEqual(Statistics.ranks([3.5, -1.0, 3.5, 2.0, 2.0, 2.0, 10.0, -1.0]),
                       [6.5, 1.5, 6.5, 4.0, 4.0, 4.0, 8.0, 1.5])
        XCTAssertEqual(Statistics.ranks([]), [])
    }

    // MARK: - Distributions

    func testIncompleteBetaAgainstBetainc() {
        // scipy.special.betainc(a, b, x) for each (x, a, b)
        let cases: [(x: Double, a: Double, b: Double, want: Double)] = [
            (0.3, 2.0, 3.0, 0.34829999999999994),
            (0.5, 0.5, 0.5, 0.5000000000000001),
            (0.99, 0.5, 50.0, 1.0),
            (0.01, 0.5, 50.0, 0.6826956021258024),
            (0.001, 50.0, 0.5, 7.9628280440758e-152),
            (0.999, 50.0, 0.5, 0.7523690199653766),
            (0.49, 500.0, 500.0, 0.2635756083565856),
            (0.2, 1.0, 1.0, 0.2),
            (1e-10, 0.1, 10.0, 0.13172835502875352),
            (0.9, 200.0, 5.0, 5.957241776097054e-06),
            (0.7, 3.5, 0.001, 0.0001922769420582058),
        ]
        for c in cases {
            assertRelative(Statistics.regularizedIncompleteBeta(x: c.x, a: c.a, b: c.b), c.want, 1e-9,
                           "I_\(c.x)(\(c.a), \(c.b))")
        }
        XCTAssertEqual(Statistics.regularizedIncompleteBeta(x: 0, a: 2, b: 3), 0)
        XCTAssertEqual(Statistics.regularizedIncompleteBeta(x: 1, a: 2, b: 3), 1)
        XCTAssertTrue(Statistics.regularizedIncompleteBeta(x: 0.5, a: 0, b: 3).isNaN)
        XCTAssertTrue(Statistics.regularizedIncompleteBeta(x: .nan, a: 1, b: 3).isNaN)
    }

    func testStudentTAgainstScipy() {
        // 2 * scipy.stats.t.sf(abs(t), df) for each (t, df)
        let cases: [(t: Double, df: Double, want: Double)] = [
            (2.0, 5.0, 0.10193947882985835),
            (-0.5, 3.0, 0.651447964848151),
            (10.0, 8.0, 8.488181527628489e-06),
            (0.0, 4.0, 1.0),
            (1.96, 1000.0, 0.050273184955748736),
            (3.3, 2.5, 0.05940212877944413),
            (40.0, 30.0, 1.3726045194406417e-27),
        ]
        for c in cases {
            assertRelative(Statistics.studentTTwoSidedP(t: c.t, degreesOfFreedom: c.df), c.want, 1e-9,
                           "t=\(c.t) df=\(c.df)")
        }
        XCTAssertEqual(Statistics.studentTTwoSidedP(t: .infinity, degreesOfFreedom: 3), 0)
        XCTAssertTrue(Statistics.studentTTwoSidedP(t: 1, degreesOfFreedom: 0).isNaN)
        XCTAssertTrue(Statistics.studentTTwoSidedP(t: .nan, degreesOfFreedom: 3).isNaN)
    }

    // MARK: - McNemar

    /// Per-example correctness bits with exactly b single-only and c mixture-only wins, plus a few
    /// examples both get right or both get wrong (which must not count).
    func outcomes(b: Int, c: Int) -> (single: [Bool], mixture: [Bool]) {
        let single = [Bool](repeating: true, count: b) + [Bool](repeating: false, count: c) + [true, false, true]
        let mixture = [Bool](repeating: false, count: b) + [Bool](repeating: true, count: c) + [true, false, true]
        return (single, mixture)
    }

    func testMcNemarAgainstBinomtest() {
        // scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue; (0, 0) has no discordant pairs -> 1
        let cases: [(b: Int, c: Int, want: Double)] = [
            (0, 0, 1.0),
            (1, 0, 1.0),
            (10, 2, 0.03857421875),
            (7, 7, 1.0),
            (5, 9, 0.4239501953125),
            (60, 0, 1.734723475976807e-18),
            (300, 250, 0.036578745549102676),
            (510, 450, 0.05682541232775861),  // largest direct-sum case here (b + c ≤ 1000)
            (600, 500, 0.0028195449914364284),  // log-space path from here on
            (20000, 19500, 0.012046830244306037),
            (50300, 49700, 0.058197353110190364),  // b + c = 100,000
        ]
        for k in cases {
            let o = outcomes(b: k.b, c: k.c)
            let result = Statistics.mcnemar(single: o.single, mixture: o.mixture)
            XCTAssertEqual(result.b, k.b)
            XCTAssertEqual(result.c, k.c)
            assertRelative(result.p, k.want, 1e-9, "McNemar b=\(k.b) c=\(k.c)")
        }
    }

    func testMcNemarHandWorked() {
        // b = 3, c = 0: P(X ≤ 0) for X ~ Binomial(3, 1/2) is (1/2)³ = 1/8, so p = 2 · 1/8 = 0.25.
        let o = outcomes(b: 3, c: 0)
        XCTAssertEqual(Statistics.mcnemar(single: o.single, mixture: o.mixture), McNemarResult(b: 3, c: 0, p: 0.25))
        XCTAssertEqual(Statistics.mcnemar(single: [], mixture: []), McNemarResult(b: 0, c: 0, p: 1))
    }

    func testMcNemarSignificantlyWorse() {
        let worse = outcomes(b: 10, c: 2)  // p = 0.0386
        XCTAssertTrue(Statistics.mcnemarSignificantlyWorse(single: worse.single, mixture: worse.mixture, alpha: 0.05))
        XCTAssertFalse(Statistics.mcnemarSignificantlyWorse(single: worse.single, mixture: worse.mixture, alpha: 0.01))
        let better = outcomes(b: 2, c: 10)  // same p, but the mixture wins
        XCTAssertFalse(Statistics.mcnemarSignificantlyWorse(single: better.single, mixture: better.mixture, alpha: 0.05))
        XCTAssertFalse(Statistics.mcnemarSignificantlyWorse(single: [], mixture: [], alpha: 0.05))
    }

    // MARK: - Bootstrap

    func testBootstrapMatchesNumpyReplay() {
        // A Python replay of the same draws (SplitMix64 written out, index = next() % n, resample by
        // resample) with np.percentile(means, [2.5, 97.5]) and np.percentile(means, [5, 95]).
        let i95 = Statistics.bootstrapMeanInterval(ax, confidence: 0.95, resamples: 2000, seed: 42)
        assertRelative(i95.lower, 3.1621875000000004, 1e-12, "lower 95%")
        assertRelative(i95.upper, 6.612812499999999, 1e-12, "upper 95%")
        let i90 = Statistics.bootstrapMeanInterval(ax, confidence: 0.90, resamples: 101, seed: 7)
        assertRelative(i90.lower, 3.7750000000000004, 1e-12, "lower 90%")
        assertRelative(i90.upper, 6.8125, 1e-12, "upper 90%")
    }

    func testBootstrapProperties() {
        var rng = SplitMix64(seed: 3)
        func sample(_ n: Int) -> [Double] { (0..<n).map { _ in Double(rng.next() >> 11) / Double(1 << 53) } }
        let small = sample(20), large = sample(500)

        let first = Statistics.bootstrapMeanInterval(small, resamples: 500, seed: 9)
        let again = Statistics.bootstrapMeanInterval(small, resamples: 500, seed: 9)
        XCTAssertEqual(first.lower, again.lower)
        XCTAssertEqual(first.upper, again.upper)
        let m = Statistics.mean(small)
        XCTAssertLessThan(first.lower, m)
        XCTAssertGreaterThan(first.upper, m)

        let narrow = Statistics.bootstrapMeanInterval(large, resamples: 500, seed: 9)
        XCTAssertLessThan(narrow.lower, Statistics.mean(large))
        XCTAssertGreaterThan(narrow.upper, Statistics.mean(large))
        XCTAssertLessThan(narrow.upper - narrow.lower, first.upper - first.lower)

        let constant = Statistics.bootstrapMeanInterval([Double](repeating: 0.1, count: 7))
        XCTAssertEqual(constant.lower, 0.1)
        XCTAssertEqual(constant.upper, 0.1)

        let one = Statistics.bootstrapMeanInterval([2.5])
        XCTAssertEqual(one.lower, 2.5)
        XCTAssertEqual(one.upper, 2.5)
        let none = Statistics.bootstrapMeanInterval([])
        XCTAssertTrue(none.lower.isNaN && none.upper.isNaN)
    }

    /// Worked by hand, with closed forms independent of the incomplete beta function.
    /// Pearson on x = (1, 2, 3), y = (1, 2, 4): Σdxdy = 3, Σdx² = 2, Σdy² = 42/9, so
    /// r = 3/√(2·42/9); with n − 2 = 1 degree of freedom t is Cauchy: p = 1 − (2/π)·atan|t|.
    /// Spearman on x = (1, 2, 3, 4), y = (1, 3, 2, 4): Σd² = 2, ρ = 1 − 6·2/(4·15) = 0.8; with 2 degrees
    /// of freedom p = 1 − |t|/√(t² + 2) = 1 − √(t²/(t² + 2)) = 1 − ρ = 0.2 exactly.
    func testCorrelationsWorkedByHand() throws {
        let p = try XCTUnwrap(Statistics.pearson([1, 2, 3], [1, 2, 4]))
        let r = 3 / (2 * 42.0 / 9).squareRoot()
        XCTAssertEqual(p.r, r, accuracy: 1e-14)
        let t = r * (1 / (1 - r * r)).squareRoot()
        XCTAssertEqual(p.p, 1 - 2 / Double.pi * atan(t), accuracy: 1e-12)
        let s = try XCTUnwrap(Statistics.spearman([1, 2, 3, 4], [1, 3, 2, 4]))
        XCTAssertEqual(s.r, 0.8, accuracy: 1e-14)
        XCTAssertEqual(s.p, 0.2, accuracy: 1e-12)
        XCTAssertEqual(s.n, 4)
    }
}
