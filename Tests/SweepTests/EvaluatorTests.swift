import Adapters
import Attack
import Datasets
import Encoder
import Foundation
@testable import Sweep
import Tensor
import XCTest

/// The mixture evaluator on a real, tiny sweep: three packaged domains (one of text pairs) with random
/// adapters on the tiny RoBERTa, 24 test examples each, checked against an independent path built
/// from `Mixing.mix` and `AdaptedRunner` directly.
final class EvaluatorTests: XCTestCase {
    static let root: URL = {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" && !FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }()
    static let modelDirectory = root.appendingPathComponent("Tests/EncoderTests/Fixtures/tiny-roberta")
    static let assets = root.appendingPathComponent(".cache/assets")
    /// Three small domains with different label sets; privacy-qa is text pairs.
    static let domains = ["sms-spam", "privacy-qa", "nyt-editorials"]
    static let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sweep-eval-\(UUID().uuidString)")

    struct Fixture: Sendable {
        var pretrained: PretrainedEncoder
        var catalog: DomainCatalog
        /// Pfeiffer adapters under `dir/adapters`, average mixing, FGSM ε = 0.5 (so the attack flips predictions).
        var config: SweepConfig
        var artifacts: ArtifactHashes
    }

    /// Built once for the class: the adapters are saved to a temporary folder and hashed.
    static let shared: Result<Fixture, Error> = Result {
        guard FileManager.default.fileExists(atPath: assets.path) else {
            throw EvaluatorError("no assets folder at \(assets.path): run `make setup`")
        }
        let pretrained = try PretrainedEncoder(directory: modelDirectory)
        let baseSHA = try sha256(ofFile: modelDirectory.appendingPathComponent("model.safetensors"))
        let catalog = try DomainCatalog(assets: assets)
        let config = SweepConfig(baseModel: modelDirectory.path, domains: domains, adapterDir: dir.appendingPathComponent("adapters").path,
                                 testCap: 24, batchSize: 8, shardSize: 8, seed: 42, fgsmEpsilon: 0.5, maxLength: 32)
        for (i, d) in domains.enumerated() {
            let labels = try catalog.load(d, options: SplitOptions(seed: config.seed, maxTest: config.testCap(for: d))).labels
            let adapter = randomAdapter(labels: labels, encoder: pretrained.model.config, seed: UInt64(i + 1))
            try adapter.save(to: URL(fileURLWithPath: config.adapterFolder(for: d)), name: "sweep", encoder: pretrained.model.config,
                             modelName: "tiny-roberta", domain: d, baseModelSHA256: baseSHA, seed: UInt64(i + 1))
        }
        let artifacts = try ArtifactHashes.compute(for: config, catalog: catalog)
        return Fixture(pretrained: pretrained, catalog: catalog, config: config, artifacts: artifacts)
    }

    override class func tearDown() {
        try? FileManager.default.removeItem(at: dir)
        super.tearDown()
    }

    /// A fresh adapter has a zero up-projection: every parameter is drawn instead, so members differ.
    static func randomAdapter(labels: [String], encoder: EncoderConfig, seed: UInt64) -> Adapter {
        let a = Adapter.initialized(config: AdapterConfig(method: .pfeiffer, bottleneck: 8), encoder: encoder, labels: labels, seed: seed)
        var rng = SplitMix64(seed: seed &* 7919)
        for i in 0..<a.layout.count {
            let u = Float(rng.next() >> 40) / Float(1 << 24) - 0.5  // U(−0.5, 0.5)
            a.parameters.base[i] = i < a.layout.bodyCount ? 0.6 * u : 2 * u
        }
        return a
    }

    func fixture() throws -> Fixture { try Self.shared.get() }

    func plan(_ f: Fixture) throws -> SweepPlan { try SweepPlan(config: f.config, artifacts: f.artifacts) }

    // MARK: The independent path

    /// A domain's adapter, loaded as `adaptermix eval` would.
    func load(_ f: Fixture, _ domain: String) throws -> Adapter {
        try Adapter.load(from: URL(fileURLWithPath: f.config.adapterFolder(for: domain)), encoder: f.pretrained.model.config,
                         expectedBaseSHA256: nil).adapter
    }

    /// A target's capped test split, tokenised, with the true label indices.
    func tokenised(_ f: Fixture, _ target: String) throws -> (encodings: [Encoding], truth: [Int]) {
        let split = try f.catalog.load(target, options: SplitOptions(seed: f.config.seed, maxTest: f.config.testCap(for: target)))
        let test = split.test
        let pairs = test.contains { $0.textPair != nil } ? test.map { $0.textPair ?? "" } : nil
        return (try f.pretrained.encode(test.map(\.text), pairs: pairs, maxLength: f.config.maxLength),
                test.map { split.labels.firstIndex(of: $0.label)! })
    }

    /// Correctness bits of `adapter` on a tokenised split, straight through `AdaptedRunner`.
    func correctness(_ f: Fixture, _ adapter: Adapter, on split: (encodings: [Encoding], truth: [Int]),
                     condition: SweepCondition) throws -> [Bool] {
        let (encodings, truth) = split
        let model = try AdaptedEncoder(model: f.pretrained.model, adapter: adapter)
        let runner = AdaptedRunner(model: model, threads: 1, batchSize: f.config.batchSize, fixedBatches: true)
        let predictions = condition == .clean
            ? try runner.predict(encodings, padId: f.pretrained.tokenizer.padId)
            : try runner.predict(encodings, padId: f.pretrained.tokenizer.padId, labels: truth, fgsmEpsilon: Float(f.config.fgsmEpsilon))
        return zip(predictions, truth).map { $0.label == $1 }
    }

    func assertSame(_ a: [ItemOutcome], _ b: [ItemOutcome], _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, message, file: file, line: line)
        for (x, y) in zip(a, b) {
            var x = x, y = y
            x.seconds = 0; y.seconds = 0
            XCTAssertEqual(x, y, message, file: file, line: line)
        }
    }

    // MARK: Tests

    func testOutcomesMatchAnIndependentEvaluation() throws {
        let f = try fixture()
        let target = "privacy-qa"
        let items = try plan(f).items(for: target)
        XCTAssertEqual(items.count, 8, "4 mixtures × 2 conditions")
        let evaluator = try MixtureEvaluator(config: f.config, artifacts: f.artifacts, catalog: f.catalog, threads: 2)
        let (outcomes, timing) = evaluator.evaluate(target: target, items: items)
        XCTAssertEqual(outcomes.map(\.key), items.map(\.key))
        for o in outcomes { XCTAssertNil(o.error, o.error ?? "") }
        XCTAssertTrue(outcomes.allSatisfy { $0.correctness.count == 24 })
        XCTAssertEqual(timing.evaluate, outcomes.reduce(0) { $0 + $1.seconds }, accuracy: 1e-9)
        XCTAssertGreaterThan(timing.setup, 0)
        XCTAssertGreaterThan(timing.merge, 0)

        let targetAdapter = try load(f, target)
        XCTAssertTrue(try f.catalog.spec(target).isPair, "the target is a domain of text pairs")
        let split = try tokenised(f, target)
        XCTAssertGreaterThan(Set(outcomes.map(\.correctness)).count, 2, "the mixtures and conditions give different predictions")
        var attacked = false
        for (item, outcome) in zip(items, outcomes) {
            let adapter: Adapter
            if item.k == 1 {
                adapter = targetAdapter
                XCTAssertNil(outcome.meanFSD)
                XCTAssertEqual(outcome.weightsChangingDirection, 0, "the target alone flips nothing")
            } else {
                let members = try item.members.map { MixMember(name: $0, adapter: try load(f, $0)) }
                adapter = try Mixing.mix(target: MixMember(name: target, adapter: targetAdapter), members: members,
                                         options: MixOptions(strategy: .average)).adapter
                var sum = 0.0, pairs = 0
                for a in 0..<members.count {
                    for b in (a + 1)..<members.count {
                        sum += try Mixing.fsd([members[a], members[b]], threads: 1).matrix[0][1]
                        pairs += 1
                    }
                }
                XCTAssertEqual(try XCTUnwrap(outcome.meanFSD), sum / Double(pairs), accuracy: 1e-12, "\(item.members)")
                XCTAssertGreaterThan(outcome.meanFSD!, 0.3, "random bodies disagree in sign about half the time")
                XCTAssertGreaterThan(outcome.weightsChangingDirection ?? 0, 0.1, "the other members move the target's weights")
                XCTAssertEqual(try XCTUnwrap(outcome.weightsChangingDirection),
                               try XCTUnwrap(Mixing.weightsChangingDirection(target: targetAdapter, mixture: adapter)), "\(item.members)")
            }
            let expected = try correctness(f, adapter, on: split, condition: item.condition)
            XCTAssertEqual(outcome.correctness, expected, "\(item.members) \(item.condition)")
            if item.condition == .fgsm {
                let clean = outcomes[items.firstIndex { $0.mixture == item.mixture && $0.condition == .clean }!]
                // Two conditions of one mixture: one merge, the same figures; only the evaluation differs.
                XCTAssertNotEqual(clean.key, outcome.key)
                XCTAssertEqual(clean.meanFSD, outcome.meanFSD)
                XCTAssertEqual(clean.weightsChangingDirection, outcome.weightsChangingDirection)
                if clean.correctness != outcome.correctness { attacked = true }
            }
        }
        XCTAssertTrue(attacked, "FGSM with ε = 0.5 should change some prediction")
        // One item alone, after the shard (caches warm), gives the same outcome as within it.
        let last = items.count - 1
        assertSame(evaluator.evaluate(target: target, items: [items[last]]).outcomes, [outcomes[last]], "an item alone")
    }

    /// Experiment items (greedy, pruning, sparse, TIES, DARE) evaluate the adapter `Mixing` makes
    /// with the recipe's options, built here independently.
    func testExperimentItemsMatchMixingCalledDirectly() throws {
        let f = try fixture()
        let config = f.config.with(experiments: ExperimentSettings(blocks: [
            "greedy": ExperimentSpec(), "pruning": ExperimentSpec(sparsities: [0.7]),
            "sparse": ExperimentSpec(sparsities: [0.9], parameters: ["prune_layers": 1], mixturesPerSize: 1),
            "ties": ExperimentSpec(parameters: ["density": 0.3], mixturesPerSize: 1),
            "dare": ExperimentSpec(parameters: ["p": 0.4, "seed": 5], mixturesPerSize: 1),
        ]))
        let fsd = try DomainMatrix.signDifference(config: config, threads: 1)
        XCTAssertEqual(fsd.domains, config.sortedDomains)
        let target = "sms-spam"
        let items = try SweepPlan(config: config, artifacts: f.artifacts, fsd: fsd).items(for: target).filter { $0.experiment != .exhaustive }
        XCTAssertEqual(Set(items.map(\.experiment)), [.greedyMin, .greedyMax, .prune, .sparse, .ties, .dare])
        let evaluator = try MixtureEvaluator(config: config, artifacts: f.artifacts, catalog: f.catalog, threads: 1)
        let outcomes = evaluator.evaluate(target: target, items: items).outcomes
        let split = try tokenised(f, target)
        let targetAdapter = try load(f, target)
        for (item, outcome) in zip(items, outcomes) {
            XCTAssertNil(outcome.error, outcome.error ?? "")
            let members = try item.members.map { MixMember(name: $0, adapter: try load(f, $0)) }
            let p = item.recipe!.parameters
            let adapter: Adapter
            switch item.experiment {
            case .prune:
                adapter = try Mixing.prune(targetAdapter, sparsity: p["sparsity"]!, scope: .adapter).adapter
            case .greedyMin, .greedyMax, .similarity:
                adapter = try Mixing.mix(target: MixMember(name: target, adapter: targetAdapter), members: members, options: MixOptions(strategy: .average)).adapter
            case .sparse:
                var o = MixOptions(strategy: .sparse)
                o.sparsity = 0.9; o.pruneLayers = 1
                adapter = try Mixing.mix(target: MixMember(name: target, adapter: targetAdapter), members: members, options: o).adapter
            case .ties:
                var o = MixOptions(strategy: .ties)
                o.density = 0.3
                adapter = try Mixing.mix(target: MixMember(name: target, adapter: targetAdapter), members: members, options: o).adapter
            case .dare:
                var o = MixOptions(strategy: .dare)
                o.dropRate = 0.4; o.seed = 5; o.weights = Array(repeating: 1 / Double(members.count), count: members.count)
                adapter = try Mixing.mix(target: MixMember(name: target, adapter: targetAdapter), members: members, options: o).adapter
            case .exhaustive:
                continue
            }
            XCTAssertEqual(outcome.correctness, try correctness(f, adapter, on: split, condition: item.condition), "\(item.experiment) \(item.members)")
        }
        // Pruning all weights leaves the head on a bare encoder: a different classifier from the adapter's.
        let greedyAll = items.first { $0.experiment == .greedyMin && $0.k == 3 }!
        XCTAssertEqual(greedyAll.members, config.sortedDomains)
    }

    /// The shared prefix is a switch that changes no result: the same bits with it on and off.
    /// Every inference switch of the evaluator — shared prefix, the last layer on first tokens
    /// only, mixtures pooled — on against off: the same outcomes (correctness bits) for every item.
    func testInferenceSwitchesChangeNoOutcome() throws {
        let f = try fixture()
        let target = "privacy-qa"
        let items = try plan(f).items(for: target).filter { $0.condition == .clean }
        XCTAssertGreaterThan(Set(items.map(\.mixture)).count, 2)
        func evaluator(prefix: Bool, cls: Bool, pool: Int) throws -> MixtureEvaluator {
            let e = try MixtureEvaluator(config: f.config, artifacts: f.artifacts, catalog: f.catalog, threads: 2)
            e.sharePrefix = prefix
            e.clsOnly = cls
            e.mixturesPerPool = pool
            return e
        }
        let plain = try evaluator(prefix: false, cls: false, pool: 1).evaluate(target: target, items: items).outcomes
        for o in plain { XCTAssertNil(o.error, o.error ?? "") }
        for (prefix, cls, pool) in [(true, false, 1), (false, true, 1), (false, false, 8), (true, true, 3)] {
            let got = try evaluator(prefix: prefix, cls: cls, pool: pool).evaluate(target: target, items: items).outcomes
            assertSame(plain, got, "shared prefix \(prefix), first-token last layer \(cls), \(pool) mixtures per pool")
        }
    }

    func testThreadCountDoesNotChangeOutcomes() throws {
        let f = try fixture()
        var config = f.config
        config.strategy = .ties
        config.parameters = ["density": 0.5, "lambda": 0.8]
        let target = "sms-spam"
        // One item of each size, both conditions among them.
        let all = try SweepPlan(config: config, artifacts: f.artifacts).items(for: target)
        let items = [all.first { $0.k == 1 && $0.condition == .fgsm }!, all.first { $0.k == 2 && $0.condition == .clean }!,
                     all.first { $0.k == 3 && $0.condition == .fgsm }!]
        let one = try MixtureEvaluator(config: config, artifacts: f.artifacts, catalog: f.catalog, threads: 1)
        let two = try MixtureEvaluator(config: config, artifacts: f.artifacts, catalog: f.catalog, threads: 2)
        let a = one.evaluate(target: target, items: items).outcomes
        for o in a { XCTAssertNil(o.error, o.error ?? "") }
        assertSame(a, two.evaluate(target: target, items: items).outcomes, "1 vs 2 threads")
        // The strategy and its parameters reach the merge: TIES here is not the average.
        let members = try all.last!.members.map { MixMember(name: $0, adapter: try load(f, $0)) }
        let targetAdapter = try load(f, target)
        let average = try Mixing.mix(target: MixMember(name: target, adapter: targetAdapter), members: members, options: MixOptions(strategy: .average))
        var options = MixOptions(strategy: .ties)
        options.density = 0.5
        options.lambda = 0.8
        let ties = try Mixing.mix(target: MixMember(name: target, adapter: targetAdapter), members: members, options: options)
        XCTAssertEqual(a[2].weightsChangingDirection, ties.weightsChangingDirection)
        XCTAssertNotEqual(a[2].weightsChangingDirection, average.weightsChangingDirection)
    }

    /// The TextFooler condition: its bits equal an independent run of the attack on the same merged
    /// mixture, one per attacked example (the first `textfooler.cap`).
    func testTextFooLerConditionMatchesAnIndependentAttack() throws {
        let f = try fixture()
        guard FileManager.default.fileExists(atPath: GloVeVectors.packagedFile().path) else { throw XCTSkip("GloVe missing: run make setup") }
        var config = f.config
        config.conditions = [.clean, .textfooler]
        config.textfooler.cap = 2
        config.textfooler.sentenceModel = Self.modelDirectory.path  // the tiny model keeps the debug build fast
        XCTAssertEqual(try SweepConfig.parse(yaml: config.canonicalJSON()).textfooler, config.textfooler)
        let artifacts = try ArtifactHashes.compute(for: config, catalog: f.catalog)
        XCTAssertEqual(Set(artifacts.attackFiles.keys), ["glove", "sentence/model.safetensors", "sentence/config.json", "sentence/tokenizer.json"])
        let target = "sms-spam"
        let item = try SweepPlan(config: config, artifacts: artifacts).items(for: target).first { $0.k == 2 && $0.condition == .textfooler }!
        let out = try MixtureEvaluator(config: config, artifacts: artifacts, catalog: f.catalog, threads: 2)
            .evaluate(target: target, items: [item]).outcomes[0]
        XCTAssertNil(out.error, out.error ?? "")
        XCTAssertEqual(out.correctness.count, 2)

        // Independently: merge, victim, table, attack.
        let members = try item.members.map { MixMember(name: $0, adapter: try load(f, $0)) }
        let merged = try Mixing.mix(target: MixMember(name: target, adapter: try load(f, target)), members: members,
                                    options: MixOptions(strategy: .average)).adapter
        let splits = try f.catalog.load(target, options: SplitOptions(seed: 42, maxTest: 24))
        let examples = Array(splits.test.prefix(2))
        let victim = try AdapterVictim(pretrained: f.pretrained, adapter: merged, threads: 1, batchSize: 8, maxLength: 32)
        let table = SynonymTable(queries: examples.flatMap { WordSequence($0.text).words }, vectors: try GloVeVectors(contentsOf: GloVeVectors.packagedFile()))
        let similarity = EncoderSimilarity(pretrained: f.pretrained)
        let expected = try examples.map { e in
            try TextFooler().attack(AttackInput(text: e.text), label: splits.labels.firstIndex(of: e.label)!, victim: victim,
                                    synonyms: table, similarity: similarity).correctAfterAttack
        }
        XCTAssertEqual(out.correctness, expected)
    }

    func testDifferingArtifactsAreRefusedClearly() throws {
        let f = try fixture()
        func refusal(_ config: SweepConfig, _ artifacts: ArtifactHashes) -> String {
            do {
                _ = try MixtureEvaluator(config: config, artifacts: artifacts, catalog: f.catalog, threads: 1)
                return "no error"
            } catch { return "\(error)" }
        }
        let differs = "this worker's copy differs from the coordinator's"
        // Another base model hash in the plan.
        var arts = f.artifacts
        arts.baseModel = String(repeating: "ab", count: 32)
        var e = refusal(f.config, arts)
        for needle in [f.config.baseModelWeights, arts.baseModel, f.artifacts.baseModel, differs] {
            XCTAssertTrue(e.contains(needle), "\(needle) not in: \(e)")
        }
        // A tampered adapter file in this worker's copy.
        let copy = Self.dir.appendingPathComponent("tampered-\(UUID().uuidString.prefix(8))")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: f.config.adapterDir), to: copy)
        defer { try? FileManager.default.removeItem(at: copy) }
        var config = f.config
        config.adapterDir = copy.path
        let weights = URL(fileURLWithPath: config.adapterFolder(for: "nyt-editorials")).appendingPathComponent("adapter.safetensors")
        var bytes = try Data(contentsOf: weights)
        bytes[bytes.count - 3] ^= 0x01
        try bytes.write(to: weights)
        e = refusal(config, f.artifacts)
        let expected = f.artifacts.adapters["nyt-editorials"]!["adapter.safetensors"]!
        for needle in [weights.path, sha256Hex(bytes), expected, differs] {
            XCTAssertTrue(e.contains(needle), "\(needle) not in: \(e)")
        }
        // A file missing, and one the coordinator did not hash.
        try FileManager.default.removeItem(at: weights)
        XCTAssertTrue(refusal(config, f.artifacts).contains("\(weights.path): missing on this worker"))
        try Data("x".utf8).write(to: weights)
        let extra = URL(fileURLWithPath: config.adapterFolder(for: "sms-spam")).appendingPathComponent("notes.txt")
        try Data("notes".utf8).write(to: extra)
        config.domains = ["sms-spam"]
        XCTAssertTrue(refusal(config, f.artifacts).contains("\(extra.path): not in the coordinator's plan"))
        // A plan made for the no-op evaluator.
        XCTAssertTrue(refusal(f.config, .noop(domains: f.config.domains)).contains("noop evaluator"))

        // Another test split: every item of that target fails, naming the domain and both hashes.
        arts = f.artifacts
        arts.testSplits["sms-spam"] = String(repeating: "cd", count: 32)
        let evaluator = try MixtureEvaluator(config: f.config, artifacts: arts, catalog: f.catalog, threads: 1)
        let plan = try self.plan(f)
        let items = plan.items(for: "sms-spam")
        let (outcomes, _) = evaluator.evaluate(target: "sms-spam", items: items)
        XCTAssertEqual(outcomes.map(\.key), items.map(\.key))
        for o in outcomes {
            let message = try XCTUnwrap(o.error)
            XCTAssertTrue(o.correctness.isEmpty)
            for needle in ["sms-spam", f.artifacts.testSplits["sms-spam"]!, arts.testSplits["sms-spam"]!] {
                XCTAssertTrue(message.contains(needle), "\(needle) not in: \(message)")
            }
        }
        // Other targets are unaffected; an item of another target is refused on its own.
        let other = Array(plan.items(for: "nyt-editorials").prefix(1))
        XCTAssertNil(evaluator.evaluate(target: "nyt-editorials", items: other).outcomes.first?.error)
        let stray = evaluator.evaluate(target: "nyt-editorials", items: other + Array(plan.items(for: "privacy-qa").prefix(1))).outcomes
        XCTAssertNil(stray[0].error)
        XCTAssertTrue(stray[1].error?.contains("item of another target") == true, stray[1].error ?? "")
    }

    func testNoopEvaluatorIsDeterministicAndKeyed() throws {
        let plan = try makePlan(["a", "b", "c"])
        let items = plan.items(for: "b")
        let noop = NoopEvaluator(examples: 10)
        let (first, timing) = noop.evaluate(target: "b", items: items)
        XCTAssertEqual(timing, ShardTiming())
        XCTAssertEqual(first, noop.evaluate(target: "b", items: items).outcomes)
        XCTAssertEqual(first, Array(NoopEvaluator(examples: 10).evaluate(target: "b", items: items.reversed()).outcomes.reversed()))
        for (item, o) in zip(items, first) {
            XCTAssertEqual(o.key, item.key)
            XCTAssertEqual(o.correctness, NoopEvaluator.correctness(key: item.key, examples: 10))
            XCTAssertNil(o.error)
        }
        XCTAssertEqual(Set(first.map(\.correctness)).count, items.count, "each item's bits are its own")
        // Bit i is bit i % 4 of hex digit i / 4: "a5" = 1010 0101 → lowest bits first.
        XCTAssertEqual(NoopEvaluator.correctness(key: "a5", examples: 10),
                       [false, true, false, true, true, false, true, false, false, true])
    }
}
