import Adapters
import Datasets
import Encoder
import Foundation
@testable import Sweep
import XCTest

/// The study's experiments as work items: the config block, the plan's items (checked by hand on
/// small cases), and the evaluator's adapters against `Mixing` called directly.
final class ExperimentTests: XCTestCase {
    let yaml = """
        base_model: models/m
        domains: [d, a, c, b]
        adapters: {method: pfeiffer, dir: out/adapters}
        conditions: [clean, fgsm]
        experiments:
          greedy: {conditions: [clean]}
          pruning: {sparsities: [0.5, 1.0]}
          sparse: {sparsities: [0.9], layers: 1, mixtures_per_size: 2}
          ties: {density: 0.3}
          dare: {p: 0.4, seed: 7, conditions: [clean, fgsm]}
        """

    /// FSD to "a": b 0.1, c 0.3, d 0.2 (symmetric; the rest made up).
    let fsd = FSDTable(domains: ["a", "b", "c", "d"], matrix: [
        [0, 0.1, 0.3, 0.2],
        [0.1, 0, 0.25, 0.15],
        [0.3, 0.25, 0, 0.05],
        [0.2, 0.15, 0.05, 0],
    ])

    func testTheBlockParsesRoundTripsAndChangesThePlanHashOnlyWhenSet() throws {
        let c = try SweepConfig.parse(yaml: yaml)
        XCTAssertEqual(c.experiments.blocks["pruning"]?.sparsities, [0.5, 1.0])
        XCTAssertEqual(c.experiments.blocks["sparse"]?.parameters["prune_layers"], 1)
        XCTAssertEqual(c.experiments.blocks["ties"]?.parameters["density"], 0.3)
        XCTAssertEqual(c.experiments.blocks["dare"]?.parameters, ["p": 0.4, "seed": 7])
        XCTAssertEqual(c.experiments.blocks["dare"]?.conditions, [.clean, .fgsm])
        XCTAssertEqual(c.experiments.blocks["greedy"]?.conditions, [.clean])
        XCTAssertEqual(try SweepConfig.parse(yaml: c.canonicalJSON()).canonicalJSON(), c.canonicalJSON())
        XCTAssertEqual(try SweepConfig.parse(yaml: c.canonicalJSON()).experiments, c.experiments)
        // Without the block, the canonical JSON (so the plan hash of existing journals) has no trace of it.
        let plain = try SweepConfig.parse(yaml: "base_model: m\ndomains: [a, b]\nadapters: {method: pfeiffer, dir: x}\n")
        XCTAssertFalse(plain.canonicalJSON().contains("experiments"))
        XCTAssertTrue(plain.experiments.isDefault)
        // Mistakes are named.
        for (bad, key) in [("experiments: {greedy: {l: 3}}", "experiments.greedy.l"), ("experiments: {pruning: {sparsities: [1.5]}}", "experiments.pruning.sparsities[0]"),
                           ("experiments: {bagging: true}", "experiments.bagging"), ("experiments: {ties: {density: 0}}", "experiments.ties.density")] {
            XCTAssertThrowsError(try SweepConfig.parse(yaml: "base_model: m\ndomains: [a, b]\nadapters: {method: pfeiffer, dir: x}\n" + bad)) { e in
                XCTAssertEqual((e as? SweepConfigError)?.key, key, "\(e)")
            }
        }
    }

    func testPlanItemsWorkedByHand() throws {
        let c = try SweepConfig.parse(yaml: yaml)
        let arts = ArtifactHashes(baseModel: sha256Hex(Data("m".utf8)), adapters: Dictionary(uniqueKeysWithValues: c.domains.map { ($0, ["x": sha256Hex(Data($0.utf8))]) }))
        XCTAssertThrowsError(try SweepPlan(config: c, artifacts: arts), "greedy needs the FSD matrix")
        let plan = try SweepPlan(config: c, artifacts: arts, fsd: fsd)
        let items = plan.items(for: "a")
        func of(_ e: Experiment) -> [WorkItem] { items.filter { $0.experiment == e } }
        // Exhaustive: 2^3 mixtures × 2 conditions.
        XCTAssertEqual(of(.exhaustive).count, 16)
        // Greedy, clean only, l = 2, 3, 4: by FSD to a, ascending b (0.1), d (0.2), c (0.3).
        XCTAssertEqual(of(.greedyMin).map(\.members), [["a", "b"], ["a", "b", "d"], ["a", "b", "c", "d"]])
        XCTAssertEqual(of(.greedyMax).map(\.members), [["a", "c"], ["a", "c", "d"], ["a", "b", "c", "d"]])
        XCTAssertEqual(of(.greedyMin).map { $0.recipe!.parameters["l"]! }, [2, 3, 4])
        // Pruning: the target alone at each sparsity, clean.
        XCTAssertEqual(of(.prune).map(\.members), [["a"], ["a"]])
        XCTAssertEqual(of(.prune).map { $0.recipe!.parameters["sparsity"]! }, [0.5, 1.0])
        // Sparse: at most 2 mixtures per size (3 of size 2, 3 of size 3, 1 of size 4 → 2 + 2 + 1).
        XCTAssertEqual(of(.sparse).count, 5)
        XCTAssertEqual(Dictionary(grouping: of(.sparse), by: \.k).mapValues(\.count), [2: 2, 3: 2, 4: 1])
        // TIES: every mixture of size ≥ 2 (7), clean; DARE: the same under two conditions (14).
        XCTAssertEqual(of(.ties).count, 7)
        XCTAssertEqual(of(.dare).count, 14)
        // Keys: all distinct, none equal to an exhaustive key (greedy's full mixture included).
        XCTAssertEqual(Set(items.map(\.key)).count, items.count)
        XCTAssertEqual(plan.itemCount, plan.allItems().count)
        XCTAssertEqual(plan.itemCount, 4 * items.count)
        // Deterministic: the same plan twice gives the same items.
        XCTAssertEqual(try SweepPlan(config: c, artifacts: arts, fsd: fsd).items(for: "a"), items)
    }

    func testJournalKeepsExperimentsApartAndStoresTheFSDMatrix() throws {
        let c = try SweepConfig.parse(yaml: yaml)
        let arts = ArtifactHashes(baseModel: sha256Hex(Data("m".utf8)), adapters: Dictionary(uniqueKeysWithValues: c.domains.map { ($0, ["x": sha256Hex(Data($0.utf8))]) }))
        let plan = try SweepPlan(config: c, artifacts: arts, fsd: fsd)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("exp-\(UUID().uuidString).sqlite").path
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        let journal = try Journal.create(path: path, plan: plan)
        XCTAssertEqual(try journal.fsdTable(), fsd)
        let stored = try journal.allItems()
        XCTAssertEqual(stored.count, plan.itemCount)
        let prune = try XCTUnwrap(stored.first { $0.experiment == .prune })
        XCTAssertEqual(prune.parameters, ["sparsity": 0.5])
        // One exhaustive result (all right) and one pruning result (all wrong): the aggregate sees only the first.
        let exhaustive = plan.items(for: "a").first { $0.experiment == .exhaustive && $0.k == 1 && $0.condition == .clean }!
        let results = [ItemResult(key: exhaustive.key, n: 2, correct: 2, bits: CorrectnessBits([true, true]), meanFSD: nil,
                                  weightsChangingDirection: nil, worker: "w", attempt: 1, duration: 0.1),
                       ItemResult(key: prune.key, n: 2, correct: 0, bits: CorrectnessBits([false, false]), meanFSD: nil,
                                  weightsChangingDirection: nil, worker: "w", attempt: 1, duration: 0.1)]
        try journal.commit(running: [], results: results, failed: [])
        let table = try AggregateTable(journal: journal)
        XCTAssertEqual(table.cells.count, 1)
        XCTAssertEqual(table.cells.values.first?.mean, 1)
        XCTAssertEqual(try journal.results(experiment: .prune).map(\.result.correct), [0])
        XCTAssertEqual(try journal.results().count, 2)
    }

    /// Every sweep config shipped in configs/ (and configs/study/) loads, and the big ones plan the
    /// items the comments in them promise.
    func testShippedSweepConfigsLoad() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../configs").standardizedFileURL
        var loaded = 0
        for dir in [root, root.appendingPathComponent("study")] {
            for name in try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() where name.hasSuffix(".yaml") && !name.hasPrefix("train") {
                let c = try SweepConfig.load(path: dir.appendingPathComponent(name).path)
                XCTAssertFalse(c.domains.isEmpty, name)
                loaded += 1
            }
        }
        XCTAssertGreaterThanOrEqual(loaded, 10)
        let demo = try SweepConfig.load(path: root.appendingPathComponent("demo.yaml").path)
        let fake = FSDTable(domains: demo.sortedDomains, matrix: demo.sortedDomains.map { a in demo.sortedDomains.map { $0 == a ? 0 : 0.3 } })
        let arts = ArtifactHashes(baseModel: sha256Hex(Data("m".utf8)), adapters: Dictionary(uniqueKeysWithValues: demo.domains.map { ($0, ["x": sha256Hex(Data($0.utf8))]) }))
        let plan = try SweepPlan(config: demo, artifacts: arts, fsd: fake,
                                 similarity: SimilarityTable(domains: fake.domains, matrix: fake.matrix.map { $0.map { 1 - $0 } }))
        // configs/demo.yaml's header: 96 exhaustive items, 164 of the study's experiments, 12 selected by similarity.
        XCTAssertEqual(plan.allItems().filter { $0.experiment == .exhaustive }.count, 96)
        XCTAssertEqual(plan.allItems().filter { $0.experiment != .exhaustive && $0.experiment != .similarity }.count, 164)
        XCTAssertEqual(plan.allItems().filter { $0.experiment == .similarity }.count, 12)
        let full = try SweepConfig.load(path: root.appendingPathComponent("full-13.yaml").path)
        XCTAssertEqual(full.domains.count, 13)
        XCTAssertEqual(SweepPlan.mixtureCount(domains: 13, sizes: full.sizes), 53_248)
    }

    /// AdapterSoup's selection as an experiment: the target, then the most similar domains; the
    /// similarity matrix and the topics go into the journal and come back unchanged.
    func testSimilaritySelectionItemsAndJournal() throws {
        let c = try SweepConfig.parse(yaml: "base_model: m\ndomains: [a, b, c, d]\nadapters: {method: pfeiffer, dir: x}\nconditions: [clean]\n"
                                      + "experiments: {similarity: {sample: 50}}\n")
        XCTAssertEqual(c.experiments.blocks["similarity"]?.parameters["sample"], 50)
        // Similarity to a: d 0.9, c 0.7, b 0.2.
        let sim = SimilarityTable(domains: ["a", "b", "c", "d"], matrix: [[1, 0.2, 0.7, 0.9], [0.2, 1, 0.3, 0.1], [0.7, 0.3, 1, 0.5], [0.9, 0.1, 0.5, 1]])
        let arts = ArtifactHashes(baseModel: sha256Hex(Data("m".utf8)), adapters: Dictionary(uniqueKeysWithValues: c.domains.map { ($0, ["x": sha256Hex(Data($0.utf8))]) }))
        XCTAssertThrowsError(try SweepPlan(config: c, artifacts: arts), "the similarity experiment needs the matrix")
        var plan = try SweepPlan(config: c, artifacts: arts, similarity: sim)
        XCTAssertEqual(plan.items(for: "a").filter { $0.experiment == .similarity }.map(\.members), [["a", "d"], ["a", "c", "d"], ["a", "b", "c", "d"]])
        XCTAssertEqual(plan.items(for: "b").filter { $0.experiment == .similarity }.first?.members, ["b", "c"])
        plan.topics = TopicSummary(perDomain: [.init(domain: "a", topics: [["x", "y"], ["z", "w"]], mixture: [0.25, 0.75])],
                                   unionTopics: [["p", "q"], ["r", "s"]], unionMixtures: ["a": [0.5, 0.5], "b": [0.1, 0.9]])
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sim-\(UUID().uuidString).sqlite").path
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        let journal = try Journal.create(path: path, plan: plan)
        XCTAssertEqual(try journal.similarityTable(), sim)
        XCTAssertEqual(try journal.topicSummary(), plan.topics)
        XCTAssertNil(try journal.fsdTable())
    }
}
