import Foundation
@testable import Sweep
import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif

/// The report from a journal made by a test plan whose results are set by hand: every CSV is
/// checked against numbers worked out here from the same results, every SVG parses as XML with
/// the expected series, and the page references nothing outside its folder.
final class StudyReportTests: XCTestCase {
    let fsd = FSDTable(domains: ["a", "b", "c"], matrix: [[0, 0.2, 0.4], [0.2, 0, 0.3], [0.4, 0.3, 0]])
    let n = 20
    let similarity = SimilarityTable(domains: ["a", "b", "c"], matrix: [[1, 0.5, 0.9], [0.5, 1, 0.6], [0.9, 0.6, 1]])

    /// Bits with `wrong` errors at the end.
    func bits(wrong: Int) -> [Bool] { (0..<n).map { $0 < n - wrong } }

    /// Errors per item, by hand: single adapters none; a's pairs 10 (a+b) and 1 (a+c); a+b+c 5;
    /// other targets' mixtures k − 1; FGSM twice the clean errors; experiments 3 + k.
    func wrong(_ item: WorkItem) -> Int {
        var w: Int
        switch (item.experiment, item.target, item.members) {
        case (.exhaustive, _, let m) where m.count == 1: w = 0
        case (.exhaustive, "a", ["a", "b"]): w = 10
        case (.exhaustive, "a", ["a", "c"]): w = 1
        case (.exhaustive, "a", _): w = 5
        case (.exhaustive, _, let m): w = m.count - 1
        default: w = 3 + item.k
        }
        return item.condition == .fgsm ? min(n, 2 * w) : w
    }

    func meanFSD(_ members: [String]) -> Double? {
        guard members.count > 1 else { return nil }
        var s = 0.0, c = 0
        for i in 0..<members.count { for j in (i + 1)..<members.count { s += fsd.value(members[i], members[j])!; c += 1 } }
        return s / Double(c)
    }

    func makeJournal() throws -> (Journal, SweepPlan, String) {
        var config = SweepConfig(baseModel: "m", domains: ["c", "a", "b"], conditions: [.clean, .fgsm], testCap: 20)
        config = config.with(experiments: ExperimentSettings(blocks: ["greedy": ExperimentSpec(), "pruning": ExperimentSpec(sparsities: [0.5, 0.9]),
                                                                      "ties": ExperimentSpec(parameters: ["density": 0.2]),
                                                                      "similarity": ExperimentSpec(parameters: ["sample": 10])]))
        let arts = ArtifactHashes(baseModel: sha256Hex(Data("m".utf8)), adapters: Dictionary(uniqueKeysWithValues: config.domains.map { ($0, ["x": sha256Hex(Data($0.utf8))]) }))
        // Similarity to a: c 0.9, b 0.5 — so selecting by similarity picks a+c at l = 2 (the FSD-maximising pair).
        var plan = try SweepPlan(config: config, artifacts: arts, fsd: fsd, similarity: similarity)
        plan.topics = TopicSummary(perDomain: [.init(domain: "a", topics: [["goal", "match"], ["stock", "bank"]], mixture: [0.7, 0.3])],
                                   unionTopics: [["goal", "match"], ["stock", "bank"]], unionMixtures: ["a": [0.7, 0.3], "b": [0.2, 0.8], "c": [0.5, 0.5]])
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID().uuidString).sqlite").path
        let journal = try Journal.create(path: path, plan: plan)
        let results = plan.allItems().map { item in
            let b = bits(wrong: wrong(item))
            return ItemResult(key: item.key, n: n, correct: b.filter { $0 }.count, bits: CorrectnessBits(b), meanFSD: meanFSD(item.members),
                              weightsChangingDirection: nil, worker: "w", attempt: 1, duration: 0.01)
        }
        try journal.commit(running: [], results: results, failed: [])
        return (journal, plan, path)
    }

    func readCSV(_ url: URL) throws -> [[String: String]] {
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        return lines.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(lines[0], $0)) }
    }

    func testCSVFilesMatchTheJournalAndTheFiguresParse() throws {
        let (journal, plan, path) = try makeJournal()
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let written = try StudyReport(journal: journal).write(to: out)
        XCTAssertEqual(Set(written.csvFiles), ["accuracy_by_size.csv", "drop.csv", "fsd.csv", "fsd_accuracy.csv", "correlations.csv", "greedy.csv", "pruning.csv",
                                               "merges.csv", "similarity.csv", "similarity_fsd.csv", "selection.csv", "topics.csv", "topic_mixtures.csv"])
        // Selection for a, clean, l = 2: by similarity a+c, by FSD a+b — both experiment items with 3 + 2 errors: 0.75 each.
        let selection = try readCSV(out.appendingPathComponent("selection.csv"))
        let s2 = selection.first { $0["target"] == "a" && $0["condition"] == "clean" && $0["l"] == "2" }!
        XCTAssertEqual(Double(s2["by_similarity"]!), 0.75)
        XCTAssertEqual(Double(s2["by_fsd"]!), 0.75)
        // Similarity against FSD over the three pairs: (0.5, 0.2), (0.9, 0.4), (0.6, 0.3) — ranks agree, ρ = 1.
        let sf = try readCSV(out.appendingPathComponent("similarity_fsd.csv"))
        XCTAssertEqual(Double(sf[0]["spearman_rho"]!), 1)
        XCTAssertEqual(sf[0]["pairs"], "3")

        // Accuracy by size, target a, clean: k = 1 → 1.0; k = 2 → 0.5 and 0.95; k = 3 → 0.75.
        let sizes = try readCSV(out.appendingPathComponent("accuracy_by_size.csv"))
        func row(_ t: String, _ c: String, _ k: Int) -> [String: String] { sizes.first { $0["target"] == t && $0["condition"] == c && $0["k"] == String(k) }! }
        XCTAssertEqual(Double(row("a", "clean", 1)["mean"]!), 1)
        XCTAssertEqual(Double(row("a", "clean", 2)["mean"]!)!, 0.725, accuracy: 1e-12)
        XCTAssertEqual(Double(row("a", "clean", 2)["std"]!)!, 0.225, accuracy: 1e-12)  // population std of {0.5, 0.95}
        XCTAssertEqual(Double(row("a", "clean", 2)["min"]!), 0.5)
        XCTAssertEqual(Double(row("a", "clean", 2)["max"]!), 0.95)
        XCTAssertEqual(Double(row("a", "clean", 3)["mean"]!), 0.75)
        // McNemar against the single adapter (all right): 10 lost, 0 won → p = 2·2^−10 < 0.05 (worse);
        // 1 lost → p = 1; 5 lost → p = 2·2^−5 = 0.0625 (not significant).
        XCTAssertEqual(row("a", "clean", 2)["significantly_worse"], "1")
        XCTAssertEqual(Double(row("a", "clean", 2)["significantly_worse_share"]!), 0.5)
        XCTAssertEqual(row("a", "clean", 3)["significantly_worse"], "0")
        XCTAssertEqual(row("a", "clean", 1)["significantly_worse"], "")
        // Every exhaustive cell agrees with the journal's own aggregates.
        let table = try AggregateTable(journal: journal)
        XCTAssertEqual(sizes.count, table.cells.count)
        for r in sizes {
            let cell = table.cells[AggregateKey(target: r["target"]!, k: Int(r["k"]!)!, condition: SweepCondition(rawValue: r["condition"]!)!)]!
            XCTAssertEqual(Double(r["mean"]!)!, cell.mean, accuracy: 1e-5)
            XCTAssertEqual(Double(r["min"]!)!, cell.min, accuracy: 1e-9)
            XCTAssertEqual(Double(r["max"]!)!, cell.max, accuracy: 1e-9)
            XCTAssertEqual(Int(r["mixtures"]!)!, cell.count)
            XCTAssertLessThanOrEqual(Double(r["ci95_low"]!)!, cell.mean + 1e-9)
            XCTAssertGreaterThanOrEqual(Double(r["ci95_high"]!)!, cell.mean - 1e-9)
        }

        // The drop: a, clean, 1.0 → 0.75.
        let drops = try readCSV(out.appendingPathComponent("drop.csv"))
        let aClean = drops.first { $0["target"] == "a" && $0["condition"] == "clean" }!
        XCTAssertEqual(Double(aClean["drop"]!), 0.25)
        XCTAssertEqual(aClean["largest_k"], "3")
        // b and c clean: 1.0 → 0.9 (2 errors of 20): average drop (0.25 + 0.1 + 0.1) / 3.
        let avg = drops.first { $0["target"] == "average" && $0["condition"] == "clean" }!
        XCTAssertEqual(Double(avg["drop"]!)!, 0.15, accuracy: 1e-6)

        // FSD matrix as recorded.
        let fsdRows = try readCSV(out.appendingPathComponent("fsd.csv"))
        XCTAssertEqual(fsdRows.count, 9)
        XCTAssertEqual(Double(fsdRows.first { $0["a"] == "a" && $0["b"] == "c" }!["fsd"]!), 0.4)

        // Greedy for a: min l = 2 is a+b (FSD 0.2), max l = 2 is a+c; experiment items have 3 + l errors.
        let greedy = try readCSV(out.appendingPathComponent("greedy.csv"))
        let g2 = greedy.first { $0["target"] == "a" && $0["condition"] == "clean" && $0["l"] == "2" }!
        XCTAssertEqual(Double(g2["greedy_min"]!), 0.75)
        XCTAssertEqual(Double(g2["greedy_max"]!), 0.75)
        XCTAssertEqual(Double(g2["lower_bound"]!), 0.5)
        XCTAssertEqual(Double(g2["upper_bound"]!), 0.95)
        XCTAssertEqual(plan.items(for: "a").filter { $0.experiment == .greedyMin }.map(\.members), [["a", "b"], ["a", "b", "c"]])

        // Pruning: the dense adapter at sparsity 0, then 0.5 and 0.9 (4 errors each: 0.8).
        let pruning = try readCSV(out.appendingPathComponent("pruning.csv")).filter { $0["target"] == "b" }
        XCTAssertEqual(pruning.map { $0["sparsity"]! }, ["0", "0.5", "0.9"])
        XCTAssertEqual(pruning.map { Double($0["accuracy"]!)! }, [1, 0.8, 0.8])

        // TIES on a's pairs (5 errors: 0.75) against averaging the same pairs (0.725).
        let merges = try readCSV(out.appendingPathComponent("merges.csv"))
        let ties = merges.first { $0["target"] == "a" && $0["method"] == "ties" && $0["k"] == "2" }!
        XCTAssertEqual(Double(ties["mean"]!), 0.75)
        XCTAssertEqual(Double(ties["average_same_mixtures"]!)!, 0.725, accuracy: 1e-12)

        // Correlations: a, clean, k = 2 has two points: n/a (needs 3).
        let corr = try readCSV(out.appendingPathComponent("correlations.csv"))
        XCTAssertEqual(corr.first { $0["target"] == "a" && $0["condition"] == "clean" && $0["subset"] == "k=2" }?["pearson_r"], "")

        // The page: self-contained, every figure well-formed with its series.
        let html = try String(contentsOf: written.page, encoding: .utf8)
        XCTAssertFalse(html.contains("<script"))
        XCTAssertFalse(html.contains("url("))
        XCTAssertFalse(html.contains("@import"))
        XCTAssertFalse(html.replacingOccurrences(of: "xmlns=\"http://www.w3.org/2000/svg\"", with: "").contains("http"))
        var names = Set<String>()
        var svgs = 0
        var rest = Substring(html)
        while let start = rest.range(of: "<svg"), let end = rest.range(of: "</svg>", range: start.upperBound..<rest.endIndex) {
            // Nested <svg> (clipping) ends with its own </svg>: take the outermost block.
            var block = rest[start.lowerBound..<end.upperBound]
            var close = end
            while block.components(separatedBy: "<svg").count - 1 > block.components(separatedBy: "</svg>").count - 1,
                  let next = rest.range(of: "</svg>", range: close.upperBound..<rest.endIndex) {
                close = next
                block = rest[start.lowerBound..<next.upperBound]
            }
            let collector = SeriesCollector()
            let parser = XMLParser(data: Data(block.utf8))
            parser.delegate = collector
            XCTAssertTrue(parser.parse(), "an SVG does not parse: \(parser.parserError.map { "\($0)" } ?? "")")
            names.formUnion(collector.series)
            svgs += 1
            rest = rest[close.upperBound...]
        }
        XCTAssertEqual(svgs, written.figures)
        XCTAssertTrue(html.contains("held on these domains") || html.contains("did not hold on these domains"), "the claim's verdicts are written out")
        XCTAssertTrue(html.contains("goal match"), "the topic tables are on the page")
        for expected in ["clean mean", "FGSM mean", "clean ±1 std", "clean min–max", "greedy, minimising FSD", "greedy, maximising FSD",
                         "empirical bounds (worst–best mixture)", "k = 2", "k > 2", "ties", "a", "b", "c",
                         "select by similarity (AdapterSoup)", "select by FSD (greedy, minimising)"] {
            XCTAssertTrue(names.contains(expected), "no series \(expected) in \(names.sorted())")
        }
    }
}

/// Collects `data-series` attributes.
final class SeriesCollector: NSObject, XMLParserDelegate {
    var series: Set<String> = []
    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName qName: String?,
                attributes attributeDict: [String: String] = [:]) {
        if let s = attributeDict["data-series"] { series.insert(s) }
    }
}
