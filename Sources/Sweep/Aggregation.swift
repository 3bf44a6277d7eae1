import Foundation

/// The cell of the results table: one target, one mixture size, one condition.
public struct AggregateKey: Sendable, Hashable, Comparable, Codable {
    public let target: String
    public let k: Int
    public let condition: SweepCondition

    public init(target: String, k: Int, condition: SweepCondition) {
        self.target = target
        self.k = k
        self.condition = condition
    }

    public static func < (a: AggregateKey, b: AggregateKey) -> Bool {
        (a.target, a.k, a.condition.rawValue) < (b.target, b.k, b.condition.rawValue)
    }
}

/// Summary statistics of accuracy over the mixtures of one cell.
///
/// `variance` is the **population** variance (divide by count, numpy's default `ddof = 0`): the
/// study's std is taken over all mixtures of a size, the whole population rather than a sample of
/// it. `sampleVariance` (divide by count − 1) is given too.
public struct AccuracyStats: Sendable, Equatable, Codable {
    public var count: Int
    public var mean: Double
    public var variance: Double
    public var sampleVariance: Double
    public var min: Double
    public var max: Double
    public var std: Double { variance.squareRoot() }

    public init(count: Int, mean: Double, variance: Double, sampleVariance: Double, min: Double, max: Double) {
        self.count = count
        self.mean = mean
        self.variance = variance
        self.sampleVariance = sampleVariance
        self.min = min
        self.max = max
    }

    /// Two-pass statistics of a list (the recomputation path).
    public init?(values: [Double]) {
        guard !values.isEmpty else { return nil }
        let n = Double(values.count)
        let mean = values.reduce(0, +) / n
        let ss = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        self.init(count: values.count, mean: mean, variance: ss / n,
                  sampleVariance: values.count > 1 ? ss / (n - 1) : 0,
                  min: values.min()!, max: values.max()!)
    }

    /// Agreement within a relative/absolute tolerance (the two paths sum in different orders).
    public func agrees(with o: AccuracyStats, tolerance: Double = 1e-9) -> Bool {
        func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= tolerance * Swift.max(1, abs(a), abs(b)) }
        return count == o.count && close(mean, o.mean) && close(variance, o.variance)
            && close(sampleVariance, o.sampleVariance) && min == o.min && max == o.max
    }
}

/// Welford's online mean and variance, with min and max.
public struct Welford: Sendable, Equatable {
    public private(set) var count = 0
    public private(set) var mean = 0.0
    private var m2 = 0.0
    public private(set) var min = Double.infinity
    public private(set) var max = -Double.infinity

    public init() {}

    public mutating func add(_ x: Double) {
        count += 1
        let d = x - mean
        mean += d / Double(count)
        m2 += d * (x - mean)
        min = Swift.min(min, x)
        max = Swift.max(max, x)
    }

    public var stats: AccuracyStats? {
        guard count > 0 else { return nil }
        return AccuracyStats(count: count, mean: mean, variance: m2 / Double(count),
                             sampleVariance: count > 1 ? m2 / Double(count - 1) : 0, min: min, max: max)
    }
}

/// The sweep's results table: per (target, k, condition) statistics, the average over targets per
/// k, and the drop from k = 1 to k = n (the study's Table 1).
public struct AggregateTable: Sendable, Equatable {
    public let cells: [AggregateKey: AccuracyStats]

    public init(cells: [AggregateKey: AccuracyStats]) { self.cells = cells }

    /// Recomputes from recorded results (two-pass, independent of the incremental path).
    public init(results: [StoredResult]) {
        var values: [AggregateKey: [Double]] = [:]
        for r in results where r.experiment == .exhaustive {
            values[AggregateKey(target: r.target, k: r.k, condition: r.condition), default: []].append(r.result.accuracy)
        }
        cells = values.compactMapValues { AccuracyStats(values: $0) }
    }

    /// Recomputes from the journal (the exhaustive sweep's results).
    public init(journal: Journal) throws { self.init(results: try journal.results(experiment: .exhaustive)) }

    public var sortedKeys: [AggregateKey] { cells.keys.sorted() }

    /// The mean over targets of each target's mean accuracy at size k (targets with no result at k are skipped).
    public func averageOverTargets(k: Int, condition: SweepCondition) -> Double? {
        let means = cells.filter { $0.key.k == k && $0.key.condition == condition }.map(\.value.mean)
        return means.isEmpty ? nil : means.reduce(0, +) / Double(means.count)
    }

    /// Average over targets at k = 1 minus the average at the largest k present (k = n in a full sweep).
    public func drop(condition: SweepCondition) -> (from: Int, to: Int, drop: Double)? {
        let ks = Set(cells.keys.filter { $0.condition == condition }.map(\.k))
        guard let lo = ks.min(), let hi = ks.max(), lo == 1,
              let a = averageOverTargets(k: lo, condition: condition),
              let b = averageOverTargets(k: hi, condition: condition) else { return nil }
        return (lo, hi, a - b)
    }

    /// Cell-by-cell agreement with another table.
    public func agrees(with o: AggregateTable, tolerance: Double = 1e-9) -> Bool {
        guard Set(cells.keys) == Set(o.cells.keys) else { return false }
        return cells.allSatisfy { k, v in v.agrees(with: o.cells[k]!, tolerance: tolerance) }
    }
}

/// Maintains the table incrementally as results arrive (Welford per cell).
public struct IncrementalAggregator: Sendable {
    private var cells: [AggregateKey: Welford] = [:]

    public init() {}

    public mutating func add(target: String, k: Int, condition: SweepCondition, accuracy: Double) {
        cells[AggregateKey(target: target, k: k, condition: condition), default: Welford()].add(accuracy)
    }

    public mutating func add(_ r: StoredResult) {
        guard r.experiment == .exhaustive else { return }
        add(target: r.target, k: r.k, condition: r.condition, accuracy: r.result.accuracy)
    }

    /// Adds a newly recorded result for a planned item (call only for results the journal
    /// reported as newly recorded, so duplicates are never counted).
    public mutating func add(_ result: ItemResult, for item: WorkItem) {
        guard item.experiment == .exhaustive else { return }
        add(target: item.target, k: item.k, condition: item.condition, accuracy: result.accuracy)
    }

    public var table: AggregateTable { AggregateTable(cells: cells.compactMapValues(\.stats)) }
}
