import Foundation
import Tensor

/// A correlation coefficient with its two-sided p-value and the number of pairs it was computed on.
public struct Correlation: Sendable, Equatable {
    /// The coefficient, in [-1, 1].
    public let r: Double
    /// Two-sided p-value of the null hypothesis r = 0 (t approximation, n − 2 degrees of freedom).
    public let p: Double
    /// Number of (x, y) pairs.
    public let n: Int

    /// Creates a correlation record; no checks, the fields are taken as given.
    public init(r: Double, p: Double, n: Int) {
        self.r = r
        self.p = p
        self.n = n
    }
}

/// The outcome of McNemar's exact test on two classifiers scored on the same examples.
public struct McNemarResult: Sendable, Equatable {
    /// Examples the single adapter gets right and the mixture gets wrong.
    public let b: Int
    /// Examples the mixture gets right and the single adapter gets wrong.
    public let c: Int
    /// Exact two-sided binomial p-value of b vs c under Binomial(b + c, 1/2); 1 when b + c = 0.
    public let p: Double

    /// Creates a result record; no checks, the fields are taken as given.
    public init(b: Int, c: Int, p: Double) {
        self.b = b
        self.c = c
        self.p = p
    }
}

/// Descriptive statistics, correlations and significance tests for the study report.
///
/// Everything is in Double and free of global state, so all functions are safe to call from any
/// thread. Empty or degenerate input never traps: it yields nil or NaN as each function says.
/// Reference semantics follow scipy.stats / numpy (named per function); the tests pin them.
public enum Statistics {
    // MARK: - Descriptive

    /// Arithmetic mean; NaN for an empty sample.
    ///
    /// Computed as x₀ + Σ(xᵢ − x₀)/n, so a constant sample gives back exactly its value.
    public static func mean(_ x: [Double]) -> Double {
        guard let shift = x.first else { return .nan }
        var sum = 0.0
        for v in x { sum += v - shift }
        return shift + sum / Double(x.count)
    }

    /// Sample variance with n − 1 in the denominator (numpy `var(ddof=1)`); 0 when n < 2.
    public static func variance(_ x: [Double]) -> Double {
        guard x.count >= 2 else { return 0 }
        let m = mean(x)
        var ss = 0.0
        for v in x { ss += (v - m) * (v - m) }
        return ss / Double(x.count - 1)
    }

    /// Sample standard deviation, the square root of `variance` (n − 1); 0 when n < 2.
    public static func standardDeviation(_ x: [Double]) -> Double {
        variance(x).squareRoot()
    }

    // MARK: - Correlation

    /// Pearson's product-moment correlation with a two-sided p-value (as scipy.stats.pearsonr).
    ///
    /// The p-value comes from t = r·√((n−2)/(1−r²)) with n − 2 degrees of freedom, and is 0 when
    /// |r| = 1 exactly. Returns nil when the samples differ in length, n < 3, or either side is
    /// constant (r undefined).
    public static func pearson(_ x: [Double], _ y: [Double]) -> Correlation? {
        let n = x.count
        guard n == y.count, n >= 3, !isConstant(x), !isConstant(y) else { return nil }
        let mx = mean(x), my = mean(y)
        var sxx = 0.0, syy = 0.0, sxy = 0.0
        for i in 0..<n {
            let dx = x[i] - mx, dy = y[i] - my
            sxx += dx * dx
            syy += dy * dy
            sxy += dx * dy
        }
        guard sxx > 0, syy > 0 else { return nil }
        let r = min(1, max(-1, sxy / (sxx * syy).squareRoot()))
        return Correlation(r: r, p: correlationP(r: r, n: n), n: n)
    }

    /// Spearman's rank correlation with a two-sided p-value (as scipy.stats.spearmanr).
    ///
    /// Pearson's r on average ranks (ties share the mean of their ranks); the p-value uses the same
    /// t approximation with n − 2 degrees of freedom as scipy. Nil in the same cases as `pearson`.
    public static func spearman(_ x: [Double], _ y: [Double]) -> Correlation? {
        guard x.count == y.count else { return nil }
        return pearson(ranks(x), ranks(y))
    }

    /// 1-based average ranks (scipy.stats.rankdata, method "average"); empty for empty input.
    ///
    /// Tied values all receive the mean of the ranks they span. NaNs rank after every number, each
    /// on its own.
    public static func ranks(_ x: [Double]) -> [Double] {
        let order = x.indices.sorted { i, j in
            let a = x[i], b = x[j]
            if a.isNaN { return false }
            if b.isNaN { return true }
            return a < b || (a == b && i < j)
        }
        var result = [Double](repeating: 0, count: x.count)
        var start = 0
        while start < order.count {
            var end = start + 1
            while end < order.count, x[order[end]] == x[order[start]] { end += 1 }
            // Positions start..<end hold ranks start+1 ... end; their mean is (start + 1 + end) / 2.
            let rank = Double(start + 1 + end) / 2
            for k in start..<end { result[order[k]] = rank }
            start = end
        }
        return result
    }

    // MARK: - Distributions

    /// Two-sided p-value of Student's t: P(|T| ≥ |t|) with `degreesOfFreedom` (may be fractional).
    ///
    /// p = I_{ν/(ν+t²)}(ν/2, 1/2), the regularized incomplete beta function. NaN when t is NaN or
    /// ν ≤ 0; 0 for infinite t.
    public static func studentTTwoSidedP(t: Double, degreesOfFreedom: Double) -> Double {
        let df = degreesOfFreedom
        guard !t.isNaN, !df.isNaN, df > 0 else { return .nan }
        if t.isInfinite { return 0 }
        let t2 = t * t
        // Both x and 1 − x are formed directly, so neither loses digits to cancellation.
        let x = df / (df + t2), xc = t2 / (df + t2)
        return min(1, max(0, incompleteBeta(x: x, complement: xc, a: df / 2, b: 0.5)))
    }

    /// The regularized incomplete beta function I_x(a, b) (scipy.special.betainc).
    ///
    /// 0 for x ≤ 0, 1 for x ≥ 1; NaN when a or b is not positive or any argument is NaN.
    /// Evaluated with the continued fraction for I_x(a, b) by the modified Lentz method, on
    /// whichever of x or 1 − x converges fast (Numerical Recipes §6.4 / DLMF 8.17.22).
    public static func regularizedIncompleteBeta(x: Double, a: Double, b: Double) -> Double {
        incompleteBeta(x: x, complement: 1 - x, a: a, b: b)
    }

    // MARK: - Significance of paired classifiers

    /// McNemar's exact test between a single classifier and a mixture on the same examples.
    ///
    /// `single[i]` and `mixture[i]` say whether each got example i right. The p-value is the exact
    /// two-sided binomial test, min(1, 2·P(X ≤ min(b, c))) with X ~ Binomial(b + c, 1/2), summed in
    /// log space so b + c in the hundreds of thousands is fine. Both arrays must have equal length
    /// (a programming error otherwise); empty input gives b = c = 0, p = 1.
    public static func mcnemar(single: [Bool], mixture: [Bool]) -> McNemarResult {
        precondition(single.count == mixture.count,
                     "mcnemar: \(single.count) single vs \(mixture.count) mixture outcomes; score both on the same examples")
        var b = 0, c = 0
        for (s, m) in zip(single, mixture) {
            if s && !m { b += 1 }
            if m && !s { c += 1 }
        }
        return McNemarResult(b: b, c: c, p: binomialTwoSidedHalfP(k: min(b, c), n: b + c))
    }

    /// Whether the mixture is significantly worse than the single classifier: b > c and p < alpha.
    public static func mcnemarSignificantlyWorse(single: [Bool], mixture: [Bool], alpha: Double) -> Bool {
        let result = mcnemar(single: single, mixture: mixture)
        return result.b > result.c && result.p < alpha
    }

    // MARK: - Bootstrap

    /// Percentile-bootstrap confidence interval for the mean of `x`.
    ///
    /// Draws `resamples` samples of size n with replacement from a `SplitMix64(seed:)`, index by
    /// index as `Int(next() % UInt64(n))` (resample by resample), and takes the (1 ∓ confidence)/2
    /// percentiles of their means with numpy's default linear interpolation between order statistics.
    /// Deterministic for a seed. (nan, nan) for an empty sample, an unusable `confidence` (outside
    /// (0, 1)) or `resamples` < 1; (x₀, x₀) for a single value.
    public static func bootstrapMeanInterval(
        _ x: [Double], confidence: Double = 0.95, resamples: Int = 2000, seed: UInt64 = 42
    ) -> (lower: Double, upper: Double) {
        let n = x.count
        guard n > 0, resamples >= 1, confidence > 0, confidence < 1 else { return (.nan, .nan) }
        if n == 1 { return (x[0], x[0]) }
        // Means are taken about x₀ (as in `mean`), so a constant sample yields exactly that constant.
        let shift = x[0]
        let deviations = x.map { $0 - shift }
        var rng = SplitMix64(seed: seed)
        var means = [Double](repeating: 0, count: resamples)
        for r in 0..<resamples {
            var sum = 0.0
            for _ in 0..<n { sum += deviations[Int(rng.next() % UInt64(n))] }
            means[r] = shift + sum / Double(n)
        }
        means.sort()
        let tail = (1 - confidence) / 2
        return (percentile(sorted: means, fraction: tail), percentile(sorted: means, fraction: 1 - tail))
    }

    // MARK: - Private helpers

    private static func isConstant(_ x: [Double]) -> Bool {
        guard let first = x.first else { return true }
        return x.allSatisfy { $0 == first }
    }

    /// Two-sided p-value of a correlation r over n pairs via Student's t with n − 2 degrees of freedom.
    private static func correlationP(r: Double, n: Int) -> Double {
        if abs(r) >= 1 { return 0 }
        let df = Double(n - 2)
        let t = r * (df / ((1 - r) * (1 + r))).squareRoot()
        return studentTTwoSidedP(t: t, degreesOfFreedom: df)
    }

    /// I_x(a, b) given both x and xc = 1 − x, so callers that know 1 − x exactly keep its digits.
    private static func incompleteBeta(x: Double, complement xc: Double, a: Double, b: Double) -> Double {
        guard !x.isNaN, !xc.isNaN, !a.isNaN, !b.isNaN, a > 0, b > 0 else { return .nan }
        if x <= 0 { return 0 }
        if xc <= 0 || x >= 1 { return 1 }
        // Prefactor xᵃ (1−x)ᵇ / (a·B(a, b)), in logs so large a, b do not overflow.
        let logBeta: Double = lgamma(a) + lgamma(b) - lgamma(a + b)
        let logFront: Double = a * log(x) + b * log(xc) - logBeta
        if x < (a + 1) / (a + b + 2) {
            return exp(logFront) * betaContinuedFraction(x: x, a: a, b: b) / a
        }
        // Symmetry I_x(a, b) = 1 − I_{1−x}(b, a); the fraction converges fast on this side.
        return 1 - exp(logFront) * betaContinuedFraction(x: xc, a: b, b: a) / b
    }

    /// The continued fraction 1/(1+ d₁/(1+ d₂/(1+ …))) of I_x(a, b) (DLMF 8.17.22), by modified Lentz.
    ///
    /// d₂ₘ₊₁ = −(a+m)(a+b+m)x / ((a+2m)(a+2m+1)), d₂ₘ = m(b−m)x / ((a+2m−1)(a+2m)).
    private static func betaContinuedFraction(x: Double, a: Double, b: Double) -> Double {
        let tiny = 1e-300, epsilon = 1e-16, maxTerms = 100_000
        // Lentz: f = b₀ + a₁/(b₁ + a₂/(b₂ + …)) with b₀ = 0 handled by starting from the first level.
        var cTerm = 1.0
        var dTerm = 1 - (a + b) * x / (a + 1)
        if abs(dTerm) < tiny { dTerm = tiny }
        dTerm = 1 / dTerm
        var f = dTerm
        for m in 1...maxTerms {
            let mm = Double(m)
            // Even step: d₂ₘ.
            let even = mm * (b - mm) * x / ((a + 2 * mm - 1) * (a + 2 * mm))
            dTerm = 1 + even * dTerm
            if abs(dTerm) < tiny { dTerm = tiny }
            cTerm = 1 + even / cTerm
            if abs(cTerm) < tiny { cTerm = tiny }
            dTerm = 1 / dTerm
            f *= dTerm * cTerm
            // Odd step: d₂ₘ₊₁.
            let odd = -(a + mm) * (a + b + mm) * x / ((a + 2 * mm) * (a + 2 * mm + 1))
            dTerm = 1 + odd * dTerm
            if abs(dTerm) < tiny { dTerm = tiny }
            cTerm = 1 + odd / cTerm
            if abs(cTerm) < tiny { cTerm = tiny }
            dTerm = 1 / dTerm
            let delta = dTerm * cTerm
            f *= delta
            if abs(delta - 1) < epsilon { break }
        }
        return f
    }

    /// min(1, 2·P(X ≤ k)) for X ~ Binomial(n, 1/2), with k ≤ n/2; 1 when n = 0.
    ///
    /// Up to `directLimit` trials the pmf is walked upward from the exact pmf(0) = 2⁻ⁿ (a normal
    /// Double), so small cases such as b = 3, c = 0 come out exact. Beyond that the pmf is summed
    /// downward from k as a ratio to pmf(k) (each step multiplies by i/(n−i+1) ≤ 1), so only
    /// log pmf(k) needs lgamma and nothing underflows before the final exp.
    private static func binomialTwoSidedHalfP(k: Int, n: Int) -> Double {
        let directLimit = 1000  // 2⁻¹⁰⁰⁰ ≈ 9e-302 is still a normal Double
        guard n > 0 else { return 1 }
        if 2 * k >= n { return 1 }
        if n <= directLimit {
            var term = Double(sign: .plus, exponent: -n, significand: 1)
            var sum = term
            for i in 0..<k {
                term *= Double(n - i) / Double(i + 1)
                sum += term
            }
            return min(1, 2 * sum)
        }
        let nD = Double(n), kD = Double(k)
        let logChoose: Double = lgamma(nD + 1) - lgamma(kD + 1) - lgamma(nD - kD + 1)
        let ln2: Double = log(2.0)
        let logPmfK = logChoose - nD * ln2
        var sum = 1.0, term = 1.0
        var i = k
        while i > 0 {
            term *= Double(i) / Double(n - i + 1)
            sum += term
            if term < sum * 1e-17 { break }
            i -= 1
        }
        return min(1, 2 * exp(logPmfK + log(sum)))
    }

    /// numpy's default percentile ("linear"): position h = (N − 1)·q between order statistics.
    private static func percentile(sorted v: [Double], fraction q: Double) -> Double {
        let h = Double(v.count - 1) * q
        let lo = Int(h.rounded(.down))
        let hi = min(lo + 1, v.count - 1)
        let t = h - Double(lo)
        let a = v[lo], b = v[hi]
        // Interpolate from the nearer end (as numpy does), so equal neighbours give exactly their value.
        return t < 0.5 ? a + (b - a) * t : b - (b - a) * (1 - t)
    }
}
