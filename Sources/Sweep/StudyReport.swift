import Foundation
import Report

/// A report file that could not be written.
public struct ReportError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}

/// `adaptermix report`: the study's tables and figures from a sweep journal — a self-contained
/// `index.html` (inline SVG, no scripts, fonts or links outside the folder) and one CSV file per
/// table, next to it. Every number comes from the journal's recorded results (and the FSD matrix
/// recorded with the plan); nothing is re-evaluated.
public struct StudyReport {
    /// What the report wrote.
    public struct Written: Sendable, Equatable {
        public var page: URL
        public var csvFiles: [String]
        public var figures: Int
    }

    public static let significance = 0.05

    let results: [StoredResult]
    let fsd: FSDTable?
    let similarity: SimilarityTable?
    let topics: TopicSummary?
    let config: SweepConfig?
    let journalPath: String
    let planHash: String
    let totalItems: Int

    public init(journal: Journal) throws {
        results = try journal.results()
        fsd = try journal.fsdTable()
        similarity = try journal.similarityTable()
        topics = try journal.topicSummary()
        config = try? SweepConfig.parse(yaml: try journal.configJSON(), file: journal.path)
        journalPath = journal.path
        planHash = journal.planHash
        totalItems = try journal.allItems().count
    }

    // MARK: - Tables

    /// One cell of "accuracy against k": the exhaustive mixtures of one target, size and condition.
    public struct SizeRow: Sendable, Equatable {
        public var target: String
        public var condition: SweepCondition
        public var k: Int
        public var stats: AccuracyStats
        public var ciLower: Double
        public var ciUpper: Double
        /// Mixtures significantly worse than the target's single adapter (McNemar, p < 0.05, on the
        /// same examples); nil at k = 1 or without the single adapter's bits.
        public var significantlyWorse: Int?
    }

    var targets: [String] { Array(Set(results.map(\.target))).sorted() }
    var conditions: [SweepCondition] { Array(Set(results.map(\.condition))).sorted() }
    func exhaustive(_ target: String, _ condition: SweepCondition) -> [StoredResult] {
        results.filter { $0.experiment == .exhaustive && $0.target == target && $0.condition == condition }
    }
    func single(_ target: String, _ condition: SweepCondition) -> StoredResult? {
        exhaustive(target, condition).first { $0.k == 1 }
    }

    public func sizeRows() -> [SizeRow] {
        var rows: [SizeRow] = []
        for t in targets {
            for c in conditions {
                let all = exhaustive(t, c)
                let alone = single(t, c)
                for k in Set(all.map(\.k)).sorted() {
                    let cell = all.filter { $0.k == k }
                    let acc = cell.map(\.result.accuracy)
                    guard let stats = AccuracyStats(values: acc) else { continue }
                    let ci = Statistics.bootstrapMeanInterval(acc, seed: 42)
                    var worse: Int?
                    if k > 1, let alone {
                        let base = alone.result.bits.values
                        worse = cell.filter { r in
                            r.result.n == alone.result.n
                                && Statistics.mcnemarSignificantlyWorse(single: base, mixture: r.result.bits.values, alpha: Self.significance)
                        }.count
                    }
                    rows.append(SizeRow(target: t, condition: c, k: k, stats: stats, ciLower: ci.lower, ciUpper: ci.upper, significantlyWorse: worse))
                }
            }
        }
        return rows
    }

    /// Table 1: the mean accuracy at k = 1 and at the largest k, per target and condition.
    public struct DropRow: Sendable, Equatable {
        public var target: String
        public var condition: SweepCondition
        public var single: Double
        public var largestK: Int
        public var atLargest: Double
        public var drop: Double { single - atLargest }
    }

    public func dropRows(_ sizes: [SizeRow]) -> [DropRow] {
        var out: [DropRow] = []
        for t in targets {
            for c in conditions {
                let rows = sizes.filter { $0.target == t && $0.condition == c }
                guard let one = rows.first(where: { $0.k == 1 }), let last = rows.max(by: { $0.k < $1.k }), last.k > 1 else { continue }
                out.append(DropRow(target: t, condition: c, single: one.stats.mean, largestK: last.k, atLargest: last.stats.mean))
            }
        }
        return out
    }

    /// FSD against accuracy over the exhaustive mixtures of a target with k = 2 or k > 2.
    public struct CorrelationRow: Sendable, Equatable {
        public var target: String
        public var condition: SweepCondition
        /// "k=2" or "k>2".
        public var subset: String
        public var n: Int
        public var pearson: Correlation?
        public var spearman: Correlation?
    }

    func fsdPoints(_ t: String, _ c: SweepCondition, pairs: Bool) -> [(fsd: Double, accuracy: Double)] {
        exhaustive(t, c).filter { pairs ? $0.k == 2 : $0.k > 2 }.compactMap { r in r.result.meanFSD.map { ($0, r.result.accuracy) } }
    }

    public func correlationRows() -> [CorrelationRow] {
        var out: [CorrelationRow] = []
        for t in targets {
            for c in conditions {
                for (subset, pairs) in [("k=2", true), ("k>2", false)] {
                    let pts = fsdPoints(t, c, pairs: pairs)
                    guard !pts.isEmpty else { continue }
                    out.append(CorrelationRow(target: t, condition: c, subset: subset, n: pts.count,
                                              pearson: Statistics.pearson(pts.map(\.fsd), pts.map(\.accuracy)),
                                              spearman: Statistics.spearman(pts.map(\.fsd), pts.map(\.accuracy))))
                }
            }
        }
        return out
    }

    /// Greedy FSD mixing at size l against the exhaustive mixtures' range at the same size.
    public struct GreedyRow: Sendable, Equatable {
        public var target: String
        public var condition: SweepCondition
        public var l: Int
        public var minimising: Double?
        public var maximising: Double?
        public var lower: Double?
        public var mean: Double?
        public var upper: Double?
    }

    public func greedyRows(_ sizes: [SizeRow]) -> [GreedyRow] {
        var out: [GreedyRow] = []
        for t in targets {
            for c in conditions {
                let g = results.filter { ($0.experiment == .greedyMin || $0.experiment == .greedyMax) && $0.target == t && $0.condition == c }
                guard !g.isEmpty else { continue }
                for l in Set(g.map(\.k)).sorted() {
                    let bound = sizes.first { $0.target == t && $0.condition == c && $0.k == l }
                    out.append(GreedyRow(target: t, condition: c, l: l,
                                         minimising: g.first { $0.experiment == .greedyMin && $0.k == l }?.result.accuracy,
                                         maximising: g.first { $0.experiment == .greedyMax && $0.k == l }?.result.accuracy,
                                         lower: bound?.stats.min, mean: bound?.stats.mean, upper: bound?.stats.max))
                }
            }
        }
        return out
    }

    /// A single adapter pruned to a sparsity (sparsity 0: the dense adapter, from the exhaustive k = 1).
    public struct PruningRow: Sendable, Equatable {
        public var target: String
        public var condition: SweepCondition
        public var sparsity: Double
        public var accuracy: Double
    }

    public func pruningRows() -> [PruningRow] {
        var out: [PruningRow] = []
        for t in targets {
            for c in conditions {
                let p = results.filter { $0.experiment == .prune && $0.target == t && $0.condition == c }
                guard !p.isEmpty else { continue }
                if let dense = single(t, c) { out.append(PruningRow(target: t, condition: c, sparsity: 0, accuracy: dense.result.accuracy)) }
                for r in p.sorted(by: { ($0.parameters["sparsity"] ?? 0) < ($1.parameters["sparsity"] ?? 0) }) {
                    out.append(PruningRow(target: t, condition: c, sparsity: r.parameters["sparsity"] ?? .nan, accuracy: r.result.accuracy))
                }
            }
        }
        return out
    }

    /// Another way of mixing (sparse mixing at a sparsity, TIES, DARE) at size k against the dense
    /// average over the same mixtures and over all mixtures of that size.
    public struct MergeRow: Sendable, Equatable {
        public var target: String
        public var condition: SweepCondition
        /// "sparse-0.8", "ties", "dare".
        public var method: String
        public var k: Int
        public var mixtures: Int
        public var mean: Double
        public var min: Double
        public var max: Double
        /// The averaged mixtures of the same members (where the exhaustive sweep has them).
        public var averageSameMixtures: Double?
        public var denseLower: Double?
        public var denseMean: Double?
        public var denseUpper: Double?
    }

    public func mergeRows(_ sizes: [SizeRow]) -> [MergeRow] {
        var out: [MergeRow] = []
        for t in targets {
            for c in conditions {
                let dense = exhaustive(t, c)
                let byMembers = Dictionary(dense.map { ($0.members, $0.result.accuracy) }, uniquingKeysWith: { a, _ in a })
                let others = results.filter { [.sparse, .ties, .dare].contains($0.experiment) && $0.target == t && $0.condition == c }
                let methods = Dictionary(grouping: others) { r -> String in
                    r.experiment == .sparse ? "sparse-\(Self.number(r.parameters["sparsity"] ?? .nan))" : r.experiment.rawValue
                }
                for m in methods.keys.sorted() {
                    for k in Set(methods[m]!.map(\.k)).sorted() {
                        let cell = methods[m]!.filter { $0.k == k }
                        let acc = cell.map(\.result.accuracy)
                        let same = cell.compactMap { byMembers[$0.members] }
                        let bound = sizes.first { $0.target == t && $0.condition == c && $0.k == k }
                        out.append(MergeRow(target: t, condition: c, method: m, k: k, mixtures: cell.count,
                                            mean: acc.reduce(0, +) / Double(acc.count), min: acc.min()!, max: acc.max()!,
                                            averageSameMixtures: same.count == cell.count ? same.reduce(0, +) / Double(same.count) : nil,
                                            denseLower: bound?.stats.min, denseMean: bound?.stats.mean, denseUpper: bound?.stats.max))
                    }
                }
            }
        }
        return out
    }

    // MARK: - Writing

    /// Numbers in tables and CSV files: up to 6 significant digits, no exponent for ordinary values.
    static func number(_ x: Double?) -> String {
        guard let x, x.isFinite else { return "" }
        if x == x.rounded() && abs(x) < 1e15 { return String(Int(x)) }
        var s = String(format: "%.6g", x)
        if s.contains("e") { s = String(format: "%.6f", x) }
        return s
    }

    static func csv(_ header: [String], _ rows: [[String]]) -> String {
        func cell(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        return ([header] + rows).map { $0.map(cell).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }

    static let conditionLabel: [SweepCondition: String] = [.clean: "clean", .fgsm: "FGSM", .textfooler: "TextFooler"]

    /// Writes `index.html` and the CSV files into `directory` (created if missing).
    public func write(to directory: URL) throws -> Written {
        let fm = FileManager.default
        do { try fm.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw ReportError(path: directory.path, reason: "cannot create the report folder (\(error.localizedDescription)) — choose another --out")
        }
        var files: [String: String] = [:]
        var page = HTMLPage(title: "AdapterMix study report")
        var figures = 0
        func fig(_ svg: String, _ caption: String) { page.figure(svg, caption: caption); figures += 1 }
        let sizes = sizeRows()
        let f = Self.number

        // Summary.
        let domains = config?.sortedDomains ?? targets
        page.paragraph("Journal \(journalPath) (plan \(planHash.prefix(16))…): \(results.count) of \(totalItems) work items recorded; "
                       + "\(domains.count) domains (\(domains.joined(separator: ", "))); adapters: \(config?.adapterMethod.rawValue ?? "?") on \(config.map { ($0.baseModel as NSString).lastPathComponent } ?? "?"); "
                       + "conditions: \(conditions.map { Self.conditionLabel[$0]! }.joined(separator: ", ")). Accuracy is the fraction of a target's test examples classified correctly"
                       + (config.map { " (test split capped at \($0.testCap.map(String.init) ?? "all") examples; FGSM ε = \(f($0.fgsmEpsilon)) on the embeddings; TextFooler on the first \($0.textfooler.cap) examples)" } ?? "") + ".")
        if results.count < totalItems {
            page.paragraph("The sweep is not finished: figures show what is recorded so far.")
        }

        // 1. Accuracy against k (Fig. 3).
        page.heading("Accuracy against mixture size")
        page.paragraph("Every mixture that contains the target's adapter, averaged (AdapterSoup): per mixture size k the mean accuracy (line), ±1 standard deviation (band) and the range from the worst to the best mixture (light band), as in the study's Fig. 3.")
        for t in targets {
            var series: [Series] = [], bands: [Band] = []
            for (i, c) in conditions.enumerated() {
                let rows = sizes.filter { $0.target == t && $0.condition == c }
                guard !rows.isEmpty else { continue }
                let xs = rows.map { Double($0.k) }
                series.append(Series(name: "\(Self.conditionLabel[c]!) mean", xs: xs, ys: rows.map(\.stats.mean), colorIndex: i))
                bands.append(Band(name: "\(Self.conditionLabel[c]!) ±1 std", xs: xs, lower: rows.map { $0.stats.mean - $0.stats.std },
                                  upper: rows.map { $0.stats.mean + $0.stats.std }, colorIndex: i, opacity: 0.22))
                bands.append(Band(name: "\(Self.conditionLabel[c]!) min–max", xs: xs, lower: rows.map(\.stats.min), upper: rows.map(\.stats.max),
                                  colorIndex: i, opacity: 0.08))
            }
            fig(LineChart(title: "\(t): accuracy against mixture size", xLabel: "mixture size k (adapters averaged)",
                          yLabel: "accuracy (fraction correct)", series: series, bands: bands, yRange: 0...1, integerX: true).svg(),
                "Target \(t). Lines: mean over the mixtures of each size; bands: ±1 std and min–max.")
        }
        let sizeHeader = ["target", "condition", "k", "mixtures", "mean", "std", "min", "max", "ci95_low", "ci95_high", "significantly_worse", "significantly_worse_share"]
        let sizeCSV = sizes.map { r in
            [r.target, r.condition.rawValue, String(r.k), String(r.stats.count), f(r.stats.mean), f(r.stats.std), f(r.stats.min), f(r.stats.max),
             f(r.ciLower), f(r.ciUpper), r.significantlyWorse.map(String.init) ?? "",
             r.significantlyWorse.map { f(Double($0) / Double(r.stats.count)) } ?? ""]
        }
        files["accuracy_by_size.csv"] = Self.csv(sizeHeader, sizeCSV)
        page.table(header: ["target", "condition", "k", "mixtures", "mean", "std", "min", "max", "95% CI of the mean"],
                   rows: sizes.map { r in [r.target, Self.conditionLabel[r.condition]!, String(r.k), String(r.stats.count), Self.fixed(r.stats.mean),
                                           Self.fixed(r.stats.std), Self.fixed(r.stats.min), Self.fixed(r.stats.max),
                                           "\(Self.fixed(r.ciLower)) – \(Self.fixed(r.ciUpper))"] },
                   caption: "Accuracy per target, condition and mixture size (bootstrap 95% interval of the mean over mixtures, 2,000 resamples).")
        page.link(to: "accuracy_by_size.csv", text: "accuracy_by_size.csv")

        // 2. The drop (Table 1).
        let drops = dropRows(sizes)
        page.heading("Drop from one adapter to all")
        if drops.isEmpty {
            page.paragraph("No target has results at k = 1 and at a larger k yet.")
        } else {
            var rows = drops.map { [$0.target, Self.conditionLabel[$0.condition]!, Self.fixed($0.single), String($0.largestK), Self.fixed($0.atLargest), Self.fixed($0.drop)] }
            var csvRows = drops.map { [$0.target, $0.condition.rawValue, f($0.single), String($0.largestK), f($0.atLargest), f($0.drop)] }
            for c in conditions {
                let d = drops.filter { $0.condition == c }
                guard !d.isEmpty else { continue }
                let avg = { (xs: [Double]) in xs.reduce(0, +) / Double(xs.count) }
                rows.append(["average", Self.conditionLabel[c]!, Self.fixed(avg(d.map(\.single))), "", Self.fixed(avg(d.map(\.atLargest))), Self.fixed(avg(d.map(\.drop)))])
                csvRows.append(["average", c.rawValue, f(avg(d.map(\.single))), "", f(avg(d.map(\.atLargest))), f(avg(d.map(\.drop)))])
            }
            page.table(header: ["target", "condition", "k = 1", "largest k", "mean at largest k", "drop"], rows: rows,
                       caption: "Mean accuracy of the single adapter and of the mixtures of the largest size, and the drop (the study's Table 1).")
            files["drop.csv"] = Self.csv(["target", "condition", "k1_mean", "largest_k", "largest_k_mean", "drop"], csvRows)
            page.link(to: "drop.csv", text: "drop.csv")
        }

        // 3. FSD heatmap (Fig. 4).
        page.heading("Fraction of sign difference")
        if let fsd {
            // The diagonal (0 by definition) is left empty so the colours span the pairs' range.
            fig(Heatmap(title: "FSD between the domains' adapters", rowLabels: fsd.domains, columnLabels: fsd.domains,
                        values: fsd.offDiagonal, digits: 3, rowTitle: "adapter", columnTitle: "adapter").svg(),
                "The fraction of adapter weights whose signs differ between two domains' adapters (the study's Fig. 4); the diagonal is 0.")
            var rows: [[String]] = []
            for (i, a) in fsd.domains.enumerated() { for (j, b) in fsd.domains.enumerated() { rows.append([a, b, f(fsd.matrix[i][j])]) } }
            files["fsd.csv"] = Self.csv(["a", "b", "fsd"], rows)
            page.link(to: "fsd.csv", text: "fsd.csv")
        } else {
            page.paragraph("This journal records no FSD matrix (made by an older AdapterMix, or with the no-op evaluator).")
        }

        // 4. FSD against accuracy (Figs. 5, 6).
        let corr = correlationRows()
        page.heading("FSD against accuracy")
        if corr.isEmpty {
            page.paragraph("No mixture with two or more adapters has a recorded mean FSD yet.")
        } else {
            page.paragraph("Each point is one mixture: its members' mean pairwise FSD against the target's accuracy; pairs (k = 2, the study's Fig. 5) and larger mixtures (k > 2, Fig. 6) apart, with Pearson's r and Spearman's ρ and their two-sided p-values (t approximation).")
            for t in targets {
                for c in conditions {
                    let groups = [("k = 2", true), ("k > 2", false)].compactMap { name, pairs -> ScatterGroup? in
                        let p = fsdPoints(t, c, pairs: pairs)
                        return p.isEmpty ? nil : ScatterGroup(name: name, xs: p.map(\.fsd), ys: p.map(\.accuracy))
                    }
                    guard !groups.isEmpty else { continue }
                    let notes = corr.filter { $0.target == t && $0.condition == c }.map { r in
                        "\(r.subset) (n = \(r.n)): " + (r.pearson.map { "Pearson r = \(Self.fixed($0.r, 3)) (p = \(Self.pValue($0.p)))" } ?? "Pearson: n/a")
                            + ", " + (r.spearman.map { "Spearman ρ = \(Self.fixed($0.r, 3)) (p = \(Self.pValue($0.p)))" } ?? "Spearman: n/a")
                    }
                    fig(ScatterChart(title: "\(t), \(Self.conditionLabel[c]!): FSD against accuracy", xLabel: "mean pairwise FSD of the mixture (fraction of weights)",
                                     yLabel: "accuracy (fraction correct)", groups: groups, fit: true, subtitle: notes).svg(),
                        "Target \(t), \(Self.conditionLabel[c]!). Lines: least-squares fits.")
                }
            }
            files["fsd_accuracy.csv"] = Self.csv(["target", "condition", "k", "members", "mean_fsd", "accuracy"],
                results.filter { $0.experiment == .exhaustive && $0.k >= 2 && $0.result.meanFSD != nil }.map {
                    [$0.target, $0.condition.rawValue, String($0.k), $0.members.joined(separator: "+"), f($0.result.meanFSD), f($0.result.accuracy)]
                })
            files["correlations.csv"] = Self.csv(["target", "condition", "subset", "n", "pearson_r", "pearson_p", "spearman_rho", "spearman_p"],
                corr.map { [$0.target, $0.condition.rawValue, $0.subset, String($0.n), f($0.pearson?.r), f($0.pearson?.p), f($0.spearman?.r), f($0.spearman?.p)] })
            page.table(header: ["target", "condition", "mixtures", "n", "Pearson r", "p", "Spearman ρ", "p"],
                       rows: corr.map { [$0.target, Self.conditionLabel[$0.condition]!, $0.subset, String($0.n), $0.pearson.map { Self.fixed($0.r, 3) } ?? "–",
                                         $0.pearson.map { Self.pValue($0.p) } ?? "–", $0.spearman.map { Self.fixed($0.r, 3) } ?? "–", $0.spearman.map { Self.pValue($0.p) } ?? "–"] },
                       caption: "Correlation of mean FSD with accuracy.")
            page.link(to: "correlations.csv", text: "correlations.csv")
            page.link(to: "fsd_accuracy.csv", text: "fsd_accuracy.csv")
        }

        // 5. Greedy mixing (Fig. 7).
        let greedy = greedyRows(sizes)
        page.heading("Greedy FSD mixing against the bounds")
        if greedy.isEmpty {
            page.paragraph("Not in this sweep's plan (experiments.greedy in the sweep config).")
        } else {
            page.paragraph("For each size l: the target with the l − 1 adapters of smallest FSD to it (minimising) and of largest FSD (maximising), averaged, against the best and worst of all mixtures of that size (the empirical bounds, the study's Fig. 7).")
            for t in targets {
                for c in conditions {
                    let rows = greedy.filter { $0.target == t && $0.condition == c }
                    guard !rows.isEmpty else { continue }
                    let xs = rows.map { Double($0.l) }
                    let withBounds = rows.filter { $0.lower != nil && $0.upper != nil }
                    fig(LineChart(title: "\(t), \(Self.conditionLabel[c]!): greedy FSD mixing", xLabel: "adapters mixed l", yLabel: "accuracy (fraction correct)",
                                  series: [Series(name: "greedy, minimising FSD", xs: xs, ys: rows.map { $0.minimising ?? .nan }, colorIndex: 0),
                                           Series(name: "greedy, maximising FSD", xs: xs, ys: rows.map { $0.maximising ?? .nan }, colorIndex: 1),
                                           Series(name: "mean of all mixtures", xs: withBounds.map { Double($0.l) }, ys: withBounds.map { $0.mean! }, colorIndex: 2, showMarkers: false, dashed: true)],
                                  bands: [Band(name: "empirical bounds (worst–best mixture)", xs: withBounds.map { Double($0.l) }, lower: withBounds.map { $0.lower! },
                                               upper: withBounds.map { $0.upper! }, colorIndex: 2, opacity: 0.15)],
                                  integerX: true).svg(),
                        "Target \(t), \(Self.conditionLabel[c]!).")
                }
            }
            files["greedy.csv"] = Self.csv(["target", "condition", "l", "greedy_min", "greedy_max", "lower_bound", "mean", "upper_bound"],
                greedy.map { [$0.target, $0.condition.rawValue, String($0.l), f($0.minimising), f($0.maximising), f($0.lower), f($0.mean), f($0.upper)] })
            page.link(to: "greedy.csv", text: "greedy.csv")
        }

        // 6. Pruning and sparse mixing (Fig. 8).
        let pruning = pruningRows()
        let merges = mergeRows(sizes)
        page.heading("Pruning and sparse mixing")
        if pruning.isEmpty {
            page.paragraph("Single-adapter pruning is not in this sweep's plan (experiments.pruning).")
        } else {
            for c in conditions {
                let series = targets.enumerated().compactMap { i, t -> Series? in
                    let rows = pruning.filter { $0.target == t && $0.condition == c }
                    return rows.isEmpty ? nil : Series(name: t, xs: rows.map { 100 * $0.sparsity }, ys: rows.map(\.accuracy), colorIndex: i)
                }
                guard !series.isEmpty else { continue }
                fig(LineChart(title: "Magnitude-pruned single adapters, \(Self.conditionLabel[c]!)", xLabel: "sparsity (% of adapter weights zeroed)",
                              yLabel: "accuracy (fraction correct)", series: series, yRange: 0...1).svg(),
                    "Each target's own adapter, its whole body pruned by magnitude (0% = the dense adapter).")
            }
            files["pruning.csv"] = Self.csv(["target", "condition", "sparsity", "accuracy"],
                                            pruning.map { [$0.target, $0.condition.rawValue, f($0.sparsity), f($0.accuracy)] })
            page.link(to: "pruning.csv", text: "pruning.csv")
        }
        let sparse = merges.filter { $0.method.hasPrefix("sparse-") }
        if !sparse.isEmpty {
            page.paragraph("Sparse mixing (the study's Alg. 4): each member's most conflicting layer pruned by magnitude, then averaged — per size k against the dense mixtures' mean and range.")
            figures += mergeFigures(&page, sparse, title: "sparse mixing")
        }

        // 7. TIES and DARE.
        let resolving = merges.filter { !$0.method.hasPrefix("sparse-") }
        page.heading("Merges that resolve sign conflicts")
        if resolving.isEmpty && sparse.isEmpty {
            page.paragraph("Not in this sweep's plan (experiments.sparse, experiments.ties, experiments.dare).")
        } else if !resolving.isEmpty {
            page.paragraph("TIES (trim, elect sign, disjoint mean) and DARE (drop and rescale, then the mean) on the same mixtures, per size k, against plain averaging.")
            figures += mergeFigures(&page, resolving, title: "TIES and DARE")
        }
        if !merges.isEmpty {
            files["merges.csv"] = Self.csv(["target", "condition", "method", "k", "mixtures", "mean", "min", "max", "average_same_mixtures", "dense_min", "dense_mean", "dense_max"],
                merges.map { [$0.target, $0.condition.rawValue, $0.method, String($0.k), String($0.mixtures), f($0.mean), f($0.min), f($0.max),
                              f($0.averageSameMixtures), f($0.denseLower), f($0.denseMean), f($0.denseUpper)] })
            page.table(header: ["target", "condition", "method", "k", "mixtures", "mean", "averaging, same mixtures", "averaging, all of size k"],
                       rows: merges.map { [$0.target, Self.conditionLabel[$0.condition]!, $0.method, String($0.k), String($0.mixtures), Self.fixed($0.mean),
                                           $0.averageSameMixtures.map { Self.fixed($0) } ?? "–", $0.denseMean.map { Self.fixed($0) } ?? "–"] },
                       caption: "Other ways of mixing against plain averaging.")
            page.link(to: "merges.csv", text: "merges.csv")
        }

        // 8. Domain similarity and AdapterSoup's selection (the study's Section 3.1, Fig. 2).
        figures += similaritySection(&page, &files, sizes)

        // 9. Significantly worse than the single adapter.
        page.heading("Mixtures significantly worse than the single adapter")
        let tested = sizes.filter { $0.significantlyWorse != nil }
        if tested.isEmpty {
            page.paragraph("No mixture and single adapter with bits on the same examples yet.")
        } else {
            page.paragraph("Per target and size: the share of mixtures whose per-example answers are significantly worse than the target's own adapter on the same examples (exact McNemar test, two-sided p < \(f(Self.significance)), more examples lost than won).")
            for c in conditions {
                let ks = Array(Set(tested.filter { $0.condition == c }.map(\.k))).sorted()
                guard !ks.isEmpty else { continue }
                let bars = targets.compactMap { t -> BarSeries? in
                    let vals = ks.map { k -> Double in
                        guard let r = tested.first(where: { $0.target == t && $0.condition == c && $0.k == k }) else { return .nan }
                        return Double(r.significantlyWorse!) / Double(r.stats.count)
                    }
                    return vals.allSatisfy(\.isNaN) ? nil : BarSeries(name: t, values: vals)
                }
                fig(BarChart(title: "Share of mixtures significantly worse than the single adapter, \(Self.conditionLabel[c]!)", xLabel: "mixture size k",
                             yLabel: "share of mixtures (fraction)", categories: ks.map { "k = \($0)" }, series: bars, yRange: 0...1).svg(),
                    "McNemar's exact test per mixture against the target's own adapter, p < \(f(Self.significance)).")
            }
        }

        // Files.
        page.heading("Files")
        page.paragraph("Every table above as CSV (columns in docs/formats.md), next to this page:")
        for name in files.keys.sorted() { page.link(to: name, text: name) }

        for (name, text) in files {
            try Self.writeFile(text, to: directory.appendingPathComponent(name))
        }
        let pageURL = directory.appendingPathComponent("index.html")
        try Self.writeFile(page.render(), to: pageURL)
        return Written(page: pageURL, csvFiles: files.keys.sorted(), figures: figures)
    }

    /// Similarity-selected against FSD-selected (greedy, minimising) mixtures at size l.
    public struct SelectionRow: Sendable, Equatable {
        public var target: String
        public var condition: SweepCondition
        public var l: Int
        public var bySimilarity: Double?
        public var byFSD: Double?
        public var lower: Double?
        public var upper: Double?
    }

    public func selectionRows(_ sizes: [SizeRow]) -> [SelectionRow] {
        var out: [SelectionRow] = []
        for t in targets {
            for c in conditions {
                let sim = results.filter { $0.experiment == .similarity && $0.target == t && $0.condition == c }
                guard !sim.isEmpty else { continue }
                let greedy = results.filter { $0.experiment == .greedyMin && $0.target == t && $0.condition == c }
                for l in Set(sim.map(\.k)).sorted() {
                    let bound = sizes.first { $0.target == t && $0.condition == c && $0.k == l }
                    out.append(SelectionRow(target: t, condition: c, l: l, bySimilarity: sim.first { $0.k == l }?.result.accuracy,
                                            byFSD: greedy.first { $0.k == l }?.result.accuracy, lower: bound?.stats.min, upper: bound?.stats.max))
                }
            }
        }
        return out
    }

    /// Similarity against FSD over domain pairs (a < b), as Spearman's ρ and Pearson's r.
    public func similarityAgainstFSD() -> (pairs: Int, spearman: Correlation?, pearson: Correlation?)? {
        guard let similarity, let fsd else { return nil }
        var xs: [Double] = [], ys: [Double] = []
        for (i, a) in similarity.domains.enumerated() {
            for b in similarity.domains[(i + 1)...] {
                if let x = similarity.value(a, b), let y = fsd.value(a, b), x.isFinite, y.isFinite { xs.append(x); ys.append(y) }
            }
        }
        return (xs.count, Statistics.spearman(xs, ys), Statistics.pearson(xs, ys))
    }

    func similaritySection(_ page: inout HTMLPage, _ files: inout [String: String], _ sizes: [SizeRow]) -> Int {
        page.heading("Domain similarity and AdapterSoup's selection")
        guard let similarity else {
            page.paragraph("Not in this sweep's plan (experiments.similarity in the sweep config).")
            return 0
        }
        var figures = 0
        let f = Self.number
        page.paragraph("The cosine similarity of the domains' sentence-embedding centroids (a seeded sample of training documents per domain, embedded by all-MiniLM-L6-v2, mean-pooled and normalised — it stands in for the Universal Sentence Encoder the study used). AdapterSoup chooses the adapters to average by this similarity; the study argues that domains alike in language need not share weight signs, so that choice can be sub-optimal. Measured here:")
        page.figure(Heatmap(title: "Sentence-embedding centroid similarity between the domains", rowLabels: similarity.domains,
                            columnLabels: similarity.domains, values: similarity.offDiagonal, digits: 3, rowTitle: "domain", columnTitle: "domain").svg(),
                    caption: "Cosine similarity of the domains' centroids (the diagonal is 1).")
        figures += 1
        var rows: [[String]] = []
        for (i, a) in similarity.domains.enumerated() { for (j, b) in similarity.domains.enumerated() { rows.append([a, b, f(similarity.matrix[i][j])]) } }
        files["similarity.csv"] = Self.csv(["a", "b", "cosine"], rows)

        // Claim 1: similarity and FSD over the pairs.
        if let r = similarityAgainstFSD(), let rho = r.spearman {
            let negative = rho.r < 0 && rho.p < Self.significance
            page.paragraph("Similar domains and sign agreement: over the \(r.pairs) domain pairs, Spearman's ρ between centroid similarity and FSD is \(Self.fixed(rho.r, 3)) (p = \(Self.pValue(rho.p)))"
                           + (r.pearson.map { ", Pearson's r \(Self.fixed($0.r, 3)) (p = \(Self.pValue($0.p)))" } ?? "") + ". "
                           + (negative ? "More similar domains have significantly fewer sign conflicts here: the claim that similar domains need not agree in sign did not hold on these domains."
                                       : "More similar domains do not have significantly fewer sign conflicts here: the claim that similar domains need not agree in sign held on these domains."))
            files["similarity_fsd.csv"] = Self.csv(["pairs", "spearman_rho", "spearman_p", "pearson_r", "pearson_p"],
                                                   [[String(r.pairs), f(rho.r), f(rho.p), f(r.pearson?.r), f(r.pearson?.p)]])
        } else {
            page.paragraph("Similar domains and sign agreement: too few domain pairs (or no FSD matrix) for a correlation.")
        }

        // Claim 2: selection by similarity against selection by FSD.
        let sel = selectionRows(sizes)
        if !sel.isEmpty {
            for t in targets {
                for c in conditions {
                    let r = sel.filter { $0.target == t && $0.condition == c }
                    guard !r.isEmpty else { continue }
                    let xs = r.map { Double($0.l) }
                    let bounded = r.filter { $0.lower != nil && $0.upper != nil }
                    page.figure(LineChart(title: "\(t), \(Self.conditionLabel[c]!): select by similarity or by FSD", xLabel: "adapters mixed l",
                                          yLabel: "accuracy (fraction correct)",
                                          // FSD drawn first and similarity dashed on top: when both choose the same mixture, both stay visible.
                                          series: [Series(name: "select by FSD (greedy, minimising)", xs: xs, ys: r.map { $0.byFSD ?? .nan }, colorIndex: 0),
                                                   Series(name: "select by similarity (AdapterSoup)", xs: xs, ys: r.map { $0.bySimilarity ?? .nan }, colorIndex: 3, dashed: true)],
                                          bands: [Band(name: "empirical bounds (worst–best mixture)", xs: bounded.map { Double($0.l) }, lower: bounded.map { $0.lower! },
                                                       upper: bounded.map { $0.upper! }, colorIndex: 2, opacity: 0.15)],
                                          integerX: true).svg(),
                                caption: "Target \(t), \(Self.conditionLabel[c]!).")
                    figures += 1
                }
            }
            files["selection.csv"] = Self.csv(["target", "condition", "l", "by_similarity", "by_fsd", "lower_bound", "upper_bound"],
                sel.map { [$0.target, $0.condition.rawValue, String($0.l), f($0.bySimilarity), f($0.byFSD), f($0.lower), f($0.upper)] })
            let paired = sel.filter { $0.bySimilarity != nil && $0.byFSD != nil && $0.condition == .clean }
            if !paired.isEmpty {
                let diff = paired.map { $0.byFSD! - $0.bySimilarity! }
                let wins = diff.filter { $0 > 0 }.count, losses = diff.filter { $0 < 0 }.count
                let mean = diff.reduce(0, +) / Double(diff.count)
                page.paragraph("Selection, clean accuracy over \(paired.count) (target, l) pairs with both: selecting by FSD minus selecting by similarity is \(Self.fixed(mean, 4)) on average (FSD better in \(wins), similarity better in \(losses), equal in \(paired.count - wins - losses)). "
                               + (mean > 0 ? "Choosing by similarity was sub-optimal against choosing by FSD here: the claim held on these domains."
                                           : "Choosing by similarity was not worse than choosing by FSD here: the claim did not hold on these domains."))
            }
            page.link(to: "selection.csv", text: "selection.csv")
        }
        page.link(to: "similarity.csv", text: "similarity.csv")

        // Topics (the study's Fig. 2 and Tables 4–16).
        if let topics, !topics.unionTopics.isEmpty {
            page.heading("Topics of the domains", level: 3)
            page.paragraph("LDA (collapsed Gibbs sampling, 10 topics, 200 sweeps, seeded) over the same sample of documents: stop-words and words seen fewer than 5 times removed. First over all the domains' documents together, with each domain's mixture of those topics, then per domain.")
            let domains = topics.unionMixtures.keys.sorted()
            let k = topics.unionTopics.count
            page.figure(Heatmap(title: "Each domain's mixture of the shared topics", rowLabels: domains, columnLabels: (1...k).map { "topic \($0)" },
                                values: domains.map { topics.unionMixtures[$0]! }, digits: 2, rowTitle: "domain", columnTitle: "topic (LDA over all domains)").svg(),
                        caption: "Share of each domain's words assigned to each topic of the model over all the domains' documents (the study's Fig. 2).")
            figures += 1
            page.table(header: ["topic", "top words"], rows: topics.unionTopics.enumerated().map { [String($0.offset + 1), $0.element.joined(separator: " ")] },
                       caption: "Topics over all the domains' documents.")
            for p in topics.perDomain {
                page.table(header: ["topic", "share", "top words"],
                           rows: p.topics.enumerated().map { [String($0.offset + 1), $0.offset < p.mixture.count ? Self.fixed(p.mixture[$0.offset], 3) : "–", $0.element.joined(separator: " ")] },
                           caption: "Topics of \(p.domain) (its own model).")
            }
            var rows: [[String]] = []
            for (i, w) in topics.unionTopics.enumerated() { rows.append(["*", String(i + 1), w.joined(separator: " ")]) }
            for p in topics.perDomain { for (i, w) in p.topics.enumerated() { rows.append([p.domain, String(i + 1), w.joined(separator: " ")]) } }
            files["topics.csv"] = Self.csv(["model", "topic", "top_words"], rows)
            var mix: [[String]] = []
            for d in domains { for (i, w) in topics.unionMixtures[d]!.enumerated() { mix.append(["*", d, String(i + 1), f(w)]) } }
            for p in topics.perDomain { for (i, w) in p.mixture.enumerated() { mix.append([p.domain, p.domain, String(i + 1), f(w)]) } }
            files["topic_mixtures.csv"] = Self.csv(["model", "domain", "topic", "weight"], mix)
            page.link(to: "topics.csv", text: "topics.csv")
            page.link(to: "topic_mixtures.csv", text: "topic_mixtures.csv")
        }
        return figures
    }

    /// One chart per target and condition: each method's mean per k against the dense mixtures' band.
    func mergeFigures(_ page: inout HTMLPage, _ rows: [MergeRow], title: String) -> Int {
        var n = 0
        for t in targets {
            for c in conditions {
                let mine = rows.filter { $0.target == t && $0.condition == c }
                guard !mine.isEmpty else { continue }
                let methods = Array(Set(mine.map(\.method))).sorted()
                var series = methods.enumerated().map { i, m -> Series in
                    let r = mine.filter { $0.method == m }.sorted { $0.k < $1.k }
                    return Series(name: m, xs: r.map { Double($0.k) }, ys: r.map(\.mean), colorIndex: i + 1)
                }
                let ks = Array(Set(mine.map(\.k))).sorted()
                let dense = ks.compactMap { k in mine.first { $0.k == k && $0.denseMean != nil } }
                series.append(Series(name: "averaging (all mixtures of size k)", xs: dense.map { Double($0.k) }, ys: dense.map { $0.denseMean! },
                                     colorIndex: 0, showMarkers: false, dashed: true))
                let band = Band(name: "averaging, worst–best mixture", xs: dense.map { Double($0.k) }, lower: dense.map { $0.denseLower! },
                                upper: dense.map { $0.denseUpper! }, colorIndex: 0, opacity: 0.12)
                page.figure(LineChart(title: "\(t), \(Self.conditionLabel[c]!): \(title)", xLabel: "mixture size k", yLabel: "accuracy (fraction correct)",
                                      series: series, bands: [band], integerX: true).svg(),
                            caption: "Target \(t), \(Self.conditionLabel[c]!): mean accuracy over the mixtures of each size.")
                n += 1
            }
        }
        return n
    }

    static func fixed(_ x: Double, _ digits: Int = 4) -> String { x.isFinite ? String(format: "%.\(digits)f", x) : "–" }

    static func pValue(_ p: Double) -> String {
        guard p.isFinite else { return "–" }
        return p < 1e-4 ? String(format: "%.1e", p) : String(format: "%.4f", p)
    }

    static func writeFile(_ text: String, to url: URL) throws {
        do { try text.write(to: url, atomically: true, encoding: .utf8) } catch {
            throw ReportError(path: url.path, reason: "cannot write (\(error.localizedDescription)) — check the folder's permissions and free space")
        }
    }
}
