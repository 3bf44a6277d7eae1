import Adapters
import Datasets
import Foundation
@testable import Sweep
import Tensor
import XCTest

func fakeArtifacts(_ domains: [String], method: String = "pfeiffer") -> ArtifactHashes {
    var adapters: [String: [String: String]] = [:]
    var tests: [String: String] = [:]
    for d in domains {
        adapters[d] = ["adapter_config.json": sha256Hex(Data("config \(d)".utf8)),
                       "adapter.safetensors": sha256Hex(Data("weights \(d) \(method)".utf8))]
        tests[d] = sha256Hex(Data("test split \(d)".utf8))
    }
    return ArtifactHashes(baseModel: sha256Hex(Data("base".utf8)), adapters: adapters, testSplits: tests)
}

func makePlan(_ domains: [String], sizes: [Int]? = nil, conditions: [SweepCondition] = [.clean, .fgsm],
              shardSize: Int = 4, parameters: [String: Double] = [:]) throws -> SweepPlan {
    let config = SweepConfig(baseModel: "models/base", domains: domains, parameters: parameters, conditions: conditions,
                             shardSize: shardSize, sizes: sizes)
    return try SweepPlan(config: config, artifacts: fakeArtifacts(domains))
}

final class PlanTests: XCTestCase {
    func testThreeDomainsGiveTwelveMixtures() throws {
        let plan = try makePlan(["a", "b", "c"])
        XCTAssertEqual(plan.mixtureCount, 12)
        XCTAssertEqual(plan.itemCount, 24)
        let mixtures = plan.targets.flatMap { plan.mixtures(for: $0) }
        XCTAssertEqual(mixtures.count, 12)
        XCTAssertEqual(Set(mixtures).count, 12)
        XCTAssertTrue(mixtures.allSatisfy { $0.members.contains($0.target) && $0.members == $0.members.sorted() })
        XCTAssertEqual(plan.mixtures(for: "b").map(\.members), [["b"], ["a", "b"], ["b", "c"], ["a", "b", "c"]])
        XCTAssertEqual(plan.mixtures(for: "x"), [])
        let items = plan.allItems()
        XCTAssertEqual(items.count, 24)
        XCTAssertEqual(Set(items.map(\.key)).count, 24, "keys are unique")
    }

    func testThirteenDomainsCountWithoutMaterialising() throws {
        XCTAssertEqual(SweepPlan.mixtureCount(domains: 13, sizes: Array(1...13)), 53_248)
        let names = (1...13).map { String(format: "d%02d", $0) }
        let plan = try makePlan(names)
        XCTAssertEqual(plan.mixtureCount, 53_248)
        XCTAssertEqual(plan.itemCount, 106_496)
        XCTAssertEqual(plan.mixtures(for: "d05").count, 4096)  // one target only
        let restricted = try makePlan(names, sizes: [1, 13])
        XCTAssertEqual(restricted.mixtureCount, 13 * 2)
        XCTAssertEqual(restricted.mixtures(for: "d01").map(\.k), [1, 13])
    }

    func testSizesRestrictThePlan() throws {
        let plan = try makePlan(["a", "b", "c", "d"], sizes: [2])
        XCTAssertEqual(plan.mixtureCount, 4 * 3)
        XCTAssertTrue(plan.allItems().allSatisfy { $0.k == 2 })
        XCTAssertThrowsError(try makePlan(["a", "b"], sizes: [3]))
    }

    func testKeysStableAndIndependentOfDomainOrder() throws {
        let p1 = try makePlan(["a", "b", "c"])
        let p2 = try makePlan(["c", "a", "b"])
        XCTAssertEqual(p1.allItems(), p2.allItems())
        XCTAssertEqual(p1.hash, p2.hash)
        // The key is a pure function of the plan facts: a fixed value guards against accidental change.
        let key = WorkKey.make(target: "a", members: ["b", "a"], condition: .clean, strategy: "average", parameters: [:])
        XCTAssertEqual(key, WorkKey.make(target: "a", members: ["a", "b"], condition: .clean, strategy: "average", parameters: [:]))
        XCTAssertEqual(WorkKey.canonical(target: "a", members: ["b", "a"], condition: .clean, strategy: "average",
                                         parameters: ["z": 1, "lambda": 0.5]),
                       "adaptermix-work-v1|target=a|members=a,b|condition=clean|strategy=average|params=lambda=0.5,z=1.0")
        XCTAssertEqual(key, sha256Hex(Data("adaptermix-work-v1|target=a|members=a,b|condition=clean|strategy=average|params=".utf8)))
        XCTAssertEqual(key.count, 64)
        XCTAssertNotEqual(key, WorkKey.make(target: "b", members: ["a", "b"], condition: .clean, strategy: "average", parameters: [:]))
        XCTAssertNotEqual(key, WorkKey.make(target: "a", members: ["a", "b"], condition: .fgsm, strategy: "average", parameters: [:]))
        XCTAssertNotEqual(key, WorkKey.make(target: "a", members: ["a", "b"], condition: .clean, strategy: "ties", parameters: [:]))
        XCTAssertNotEqual(key, WorkKey.make(target: "a", members: ["a", "b"], condition: .clean, strategy: "average", parameters: ["lambda": 1]))
    }

    func testPlanHashCoversConfigAndArtifacts() throws {
        let domains = ["a", "b", "c"]
        let base = SweepConfig(baseModel: "m", domains: domains)
        let arts = fakeArtifacts(domains)
        let h = try SweepPlan(config: base, artifacts: arts).hash
        XCTAssertEqual(h, try SweepPlan(config: base, artifacts: arts).hash)
        var changed: [SweepConfig] = []
        var c = base; c.seed = 7; changed.append(c)
        c = base; c.batchSize = 8; changed.append(c)
        c = base; c.testCap = 100; changed.append(c)
        c = base; c.testCaps = ["a": 5]; changed.append(c)
        c = base; c.parameters = ["lambda": 0.5]; changed.append(c)
        c = base; c.strategy = .ties; changed.append(c)
        c = base; c.sizes = [1, 2]; changed.append(c)
        c = base; c.conditions = [.clean]; changed.append(c)
        c = base; c.adapterMethod = .lora; changed.append(c)
        c = base; c.baseModel = "other"; changed.append(c)
        c = base; c.fgsmEpsilon = 0.02; changed.append(c)
        c = base; c.maxLength = 64; changed.append(c)
        c = base; c.datasets = "my-domains.yaml"; changed.append(c)
        c = base; c.trainConfig = "configs/train-report.yaml"; changed.append(c)
        for cfg in changed { XCTAssertNotEqual(try SweepPlan(config: cfg, artifacts: arts).hash, h, "\(cfg)") }
        var a2 = arts; a2.baseModel = sha256Hex(Data("other base".utf8))
        XCTAssertNotEqual(try SweepPlan(config: base, artifacts: a2).hash, h)
        var a3 = arts; a3.adapters["b"]!["adapter.safetensors"] = sha256Hex(Data("retrained".utf8))
        XCTAssertNotEqual(try SweepPlan(config: base, artifacts: a3).hash, h)
        var a4 = arts; a4.testSplits["c"] = sha256Hex(Data("another split".utf8))
        XCTAssertNotEqual(try SweepPlan(config: base, artifacts: a4).hash, h)
        var a5 = arts; a5.evaluator = "noop"
        XCTAssertNotEqual(try SweepPlan(config: base, artifacts: a5).hash, h)
    }

    func testArtifactsCanonicalTextAndJSON() throws {
        let arts = ArtifactHashes(baseModel: "b0", adapters: ["y": ["w": "h2", "c": "h1"], "x": ["w": "h3"]],
                                  testSplits: ["y": "t2", "x": "t1"])
        XCTAssertEqual(arts.evaluator, "mixture")
        XCTAssertEqual(arts.canonical, """
            base_model/model.safetensors b0
            adapter/x/w h3
            adapter/y/c h1
            adapter/y/w h2
            evaluator mixture
            test/x t1
            test/y t2
            """)
        let data = try JSONEncoder().encode(arts)
        XCTAssertEqual(try JSONDecoder().decode(ArtifactHashes.self, from: data), arts)
        // JSON from before the evaluator and test splits were recorded still decodes.
        let old = try JSONDecoder().decode(ArtifactHashes.self, from: Data(#"{"baseModel": "b0", "adapters": {"x": {"w": "h3"}}}"#.utf8))
        XCTAssertEqual(old, ArtifactHashes(baseModel: "b0", adapters: ["x": ["w": "h3"]]))

        let noop = ArtifactHashes.noop(domains: ["b", "a"])
        XCTAssertEqual(noop.evaluator, "noop")
        XCTAssertEqual(noop.baseModel, "none")
        XCTAssertEqual(noop.testSplits, [:])
        XCTAssertTrue(noop.adapters.values.allSatisfy(\.isEmpty))
        XCTAssertEqual(noop.canonical, "base_model/model.safetensors none\nevaluator noop")
        XCTAssertEqual(noop, ArtifactHashes.noop(domains: ["a", "b"]))
    }

    func testTestSplitHashIsUnambiguous() {
        let a = Example(id: "1", text: "good film", label: "pos")
        let b = Example(id: "2", text: "dull\tfilm\n\"x\"", textPair: "", label: "neg")
        let h = ArtifactHashes.testSplitHash([a, b], labels: ["neg", "pos"])
        XCTAssertEqual(h.count, 64)
        XCTAssertEqual(h, ArtifactHashes.testSplitHash([a, b], labels: ["neg", "pos"]))
        var variants: [String] = []
        variants.append(ArtifactHashes.testSplitHash([b, a], labels: ["neg", "pos"]))         // order
        variants.append(ArtifactHashes.testSplitHash([a, b], labels: ["neg", "pos", "x"]))    // labels
        variants.append(ArtifactHashes.testSplitHash([a], labels: ["neg", "pos"]))            // an example fewer
        var b2 = b; b2.textPair = nil                                                           // absent ≠ empty
        variants.append(ArtifactHashes.testSplitHash([a, b2], labels: ["neg", "pos"]))
        var a2 = a; a2.textPair = "good film"
        variants.append(ArtifactHashes.testSplitHash([a2, b], labels: ["neg", "pos"]))
        var a3 = a; a3.label = "neg"
        variants.append(ArtifactHashes.testSplitHash([a3, b], labels: ["neg", "pos"]))
        var a4 = a; a4.id = "1 "
        variants.append(ArtifactHashes.testSplitHash([a4, b], labels: ["neg", "pos"]))
        // Fields cannot run into each other: a tab moved from one field to the next changes the hash.
        let c1 = Example(id: "1\t", text: "x", label: "pos"), c2 = Example(id: "1", text: "\tx", label: "pos")
        variants.append(ArtifactHashes.testSplitHash([c1], labels: ["pos"]))
        variants.append(ArtifactHashes.testSplitHash([c2], labels: ["pos"]))
        XCTAssertEqual(Set(variants + [h]).count, variants.count + 1)
        XCTAssertEqual(jsonStringLiteral("a\"b\\c\n\u{1}é"), #""a\"b\\c\n\u0001é""#)
    }

    func testShardsGroupOneTargetDeterministically() throws {
        let plan = try makePlan(["b", "a", "c"], shardSize: 3)
        let shards = plan.shards()
        XCTAssertEqual(shards.map(\.index), Array(0..<shards.count))
        XCTAssertEqual(shards.flatMap(\.items), plan.allItems(), "shards cover every item once, in plan order")
        for s in shards {
            XCTAssertLessThanOrEqual(s.items.count, 3)
            XCTAssertTrue(s.items.allSatisfy { $0.target == s.target })
        }
        XCTAssertEqual(shards.map(\.target), ["a", "a", "a", "b", "b", "b", "c", "c", "c"])
        XCTAssertEqual(shards, try makePlan(["c", "b", "a"], shardSize: 3).shards())
    }

    /// With token estimates, shards are sized by cost and handed out costliest first: a long-text
    /// target's FGSM items before a short one's clean items; every item still exactly once.
    func testCostOrderedShards() throws {
        var plan = try makePlan(["b", "a", "c"], shardSize: 3)
        plan.tokenEstimates = ["a": 10, "b": 100, "c": 20]
        let shards = plan.shards()
        XCTAssertEqual(shards.map(\.index), Array(0..<shards.count))
        XCTAssertEqual(Set(shards.flatMap(\.items).map(\.key)), Set(plan.allItems().map(\.key)))
        XCTAssertEqual(shards.flatMap(\.items).count, plan.allItems().count)
        let costs = shards.map { $0.items.reduce(0) { $0 + plan.itemCost($1) } }
        XCTAssertEqual(costs, costs.sorted(by: >), "costliest first")
        XCTAssertEqual(shards.first?.target, "b", "the long-text target's shards come first")
        for s in shards {
            XCTAssertLessThanOrEqual(s.items.count, 3)
            XCTAssertTrue(s.items.allSatisfy { $0.target == s.target })
        }
        // By hand: an FGSM item costs 3 × examples × tokens, a clean one examples × tokens.
        let item = plan.allItems().first { $0.target == "b" && $0.condition == .fgsm }!
        XCTAssertEqual(plan.itemCost(item), 3 * Double(plan.config.testCap(for: "b") ?? 1000) * 100)
        var again = try makePlan(["c", "a", "b"], shardSize: 3)
        again.tokenEstimates = plan.tokenEstimates
        XCTAssertEqual(again.shards(), shards, "deterministic")
    }

    func testArtifactHashesFromFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sweep-arts-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        try fm.createDirectory(at: dir.appendingPathComponent("model"), withIntermediateDirectories: true)
        try Data("weights".utf8).write(to: dir.appendingPathComponent("model/model.safetensors"))
        for d in ["x", "y"] {
            let f = dir.appendingPathComponent("adapters/\(d)-pfeiffer")
            try fm.createDirectory(at: f, withIntermediateDirectories: true)
            try Data("adapter \(d)".utf8).write(to: f.appendingPathComponent("adapter.safetensors"))
        }
        // Two user-declared domains of 30 reviews each.
        for d in ["x", "y"] {
            let rows = (0..<30).map { "\"\(d) review \($0)\",\($0 % 3 == 0 ? "neg" : "pos")" }
            try ("review,stars\n" + rows.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("\(d).csv"), atomically: true, encoding: .utf8)
        }
        let catalogFile = dir.appendingPathComponent("domains.yaml")
        try """
            domains:
              - {name: x, format: csv, train: x.csv, text: review, label: stars}
              - {name: y, format: csv, train: y.csv, text: review, label: stars}
            """.write(to: catalogFile, atomically: true, encoding: .utf8)
        let catalog = try DomainCatalog(assets: dir, userFile: catalogFile)
        var config = SweepConfig(baseModel: dir.appendingPathComponent("model").path, domains: ["y", "x"],
                                 adapterDir: dir.appendingPathComponent("adapters").path, testCaps: ["y": 2], seed: 5)
        try config.checkArtifactsExist()
        let arts = try ArtifactHashes.compute(for: config, catalog: catalog)
        XCTAssertEqual(arts.baseModel, sha256Hex(Data("weights".utf8)))
        XCTAssertEqual(arts.adapters["x"], ["adapter.safetensors": sha256Hex(Data("adapter x".utf8))])
        XCTAssertEqual(arts.evaluator, "mixture")
        for d in ["x", "y"] {
            let split = try catalog.load(d, options: SplitOptions(seed: 5, maxTest: config.testCap(for: d)))
            XCTAssertEqual(split.test.count, d == "y" ? 2 : 3)
            XCTAssertEqual(arts.testSplits[d], ArtifactHashes.testSplitHash(split.test, labels: split.labels))
        }
        XCTAssertNotEqual(arts.testSplits["x"], arts.testSplits["y"])
        config.seed = 6
        XCTAssertNotEqual(try ArtifactHashes.compute(for: config, catalog: catalog).testSplits["x"], arts.testSplits["x"],
                          "another seed draws another test split")
        var missing = config; missing.domains.append("z")
        XCTAssertThrowsError(try missing.checkArtifactsExist(configFile: "c.yaml")) { e in
            XCTAssertEqual((e as? SweepConfigError)?.key, "adapters.dir")
        }
    }
}

final class ConfigTests: XCTestCase {
    let good = """
        base_model: models/base
        domains: [b, a, c]
        adapters: {method: lora, dir: out/adapters}
        mixing: {strategy: ties, parameters: {density: 0.2, lambda: 1}}
        conditions: [clean]
        test_cap: 100
        test_caps: {a: 50}
        batch_size: 16
        shard_size: 4
        seed: 7
        sizes: [3, 1]
        """

    func testParsesEveryKey() throws {
        let c = try SweepConfig.parse(yaml: good, file: "s.yaml")
        XCTAssertEqual(c.baseModel, "models/base")
        XCTAssertEqual(c.domains, ["b", "a", "c"])
        XCTAssertEqual(c.adapterMethod, .lora)
        XCTAssertEqual(c.adapterFolder(for: "a"), "out/adapters/a-lora")
        XCTAssertEqual(c.baseModelWeights, "models/base/model.safetensors")
        XCTAssertEqual(c.strategy, .ties)
        XCTAssertEqual(c.parameters, ["density": 0.2, "lambda": 1])
        XCTAssertEqual(c.conditions, [.clean])
        XCTAssertEqual(c.testCap(for: "a"), 50)
        XCTAssertEqual(c.testCap(for: "b"), 100)
        XCTAssertEqual(c.batchSize, 16)
        XCTAssertEqual(c.shardSize, 4)
        XCTAssertEqual(c.seed, 7)
        XCTAssertEqual(c.sizes, [1, 3])
    }

    func testDefaults() throws {
        let c = try SweepConfig.parse(yaml: "base_model: m\ndomains: [a, b, c, d]\nadapters: {method: pfeiffer, dir: ad}\n")
        XCTAssertEqual(c.sizes, [1, 2, 3, 4])
        XCTAssertEqual(c.conditions, [.clean, .fgsm])
        XCTAssertEqual(c.strategy, .average)
        XCTAssertNil(c.testCap(for: "a"))
    }

    func testDemoConfig() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../configs/demo-sweep.yaml").path
        let c = try SweepConfig.load(path: path)
        XCTAssertEqual(c.domains.count, 4)
        let plan = try SweepPlan(config: c, artifacts: fakeArtifacts(c.domains))
        XCTAssertEqual(plan.mixtureCount, 32)
        XCTAssertEqual(plan.itemCount, 64)
    }

    func assertError(_ yaml: String, key: String, contains: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SweepConfig.parse(yaml: yaml, file: "bad.yaml"), file: file, line: line) { e in
            guard let err = e as? SweepConfigError else { return XCTFail("\(e)", file: file, line: line) }
            XCTAssertEqual(err.file, "bad.yaml", file: file, line: line)
            XCTAssertEqual(err.key, key, "\(err)", file: file, line: line)
            XCTAssertTrue(err.description.contains(contains), "\(err)", file: file, line: line)
            XCTAssertTrue(err.description.hasPrefix("bad.yaml: \(key): "), "\(err)", file: file, line: line)
        }
    }

    func testErrors() {
        let head = "base_model: m\nadapters: {method: pfeiffer, dir: ad}\n"
        assertError(head + "domains: [a, b]\nbogus: 1\n", key: "bogus", contains: "unknown key")
        assertError(head + "domains: [a, b]\nmixing: {strategy: average, lamda: 1}\n", key: "mixing.lamda", contains: "unknown key")
        assertError("base_model: m\ndomains: [a]\nadapters: {method: pfeiffer, dir: ad, extra: 1}\n", key: "adapters.extra", contains: "unknown key")
        assertError(head, key: "domains", contains: "missing")
        assertError(head + "domains: []\n", key: "domains", contains: "no domains")
        assertError(head + "domains: [a, a]\n", key: "domains[1]", contains: "twice")
        assertError("domains: [a]\nadapters: {method: pfeiffer, dir: ad}\n", key: "base_model", contains: "missing")
        assertError("base_model: m\ndomains: [a]\n", key: "adapters", contains: "missing")
        assertError("base_model: m\ndomains: [a]\nadapters: {method: prefix, dir: ad}\n", key: "adapters.method", contains: "unknown method")
        assertError(head + "domains: [a, b]\nsizes: [0]\n", key: "sizes[0]", contains: "out of range")
        assertError(head + "domains: [a, b]\nsizes: [1, 3]\n", key: "sizes[1]", contains: "out of range 1...2")
        assertError(head + "domains: [a, b]\nsizes: []\n", key: "sizes", contains: "non-empty")
        assertError(head + "domains: [a, b]\ntest_caps: {c: 10}\n", key: "test_caps.c", contains: "not one of the sweep's domains")
        assertError(head + "domains: [a, b]\ntest_caps: {a: 0}\n", key: "test_caps.a", contains: "at least 1")
        assertError(head + "domains: [a, b]\nconditions: [clean, deepwordbug]\n", key: "conditions[1]", contains: "unknown condition")
        assertError(head + "domains: [a, b]\ntextfooler: {cap: 0}\n", key: "textfooler.cap", contains: "at least 1")
        assertError(head + "domains: [a, b]\ntextfooler: {budget: 10}\n", key: "textfooler.budget", contains: "unknown key")
        assertError(head + "domains: [a, b]\ntextfooler: {caps: {c: 3}}\n", key: "textfooler.caps.c", contains: "not one of the sweep's domains")
        assertError(head + "domains: [a, b]\nmixing: {strategy: soup}\n", key: "mixing.strategy", contains: "unknown strategy")
        assertError(head + "domains: [a, b]\nmixing: {parameters: {lambda: high}}\n", key: "mixing.parameters.lambda", contains: "number")
        assertError(head + "domains: [a, b]\nbatch_size: zero\n", key: "batch_size", contains: "integer")
        assertError(head + "domains: [a, b]\nshard_size: 0\n", key: "shard_size", contains: "at least 1")
        assertError("- a\n- b\n", key: "(file)", contains: "mapping")
        let c = SweepConfig(baseModel: "m", domains: ["a", "zz", "b"])
        XCTAssertNoThrow(try c.checkDomains(known: ["a", "b", "zz"]))
        XCTAssertThrowsError(try c.checkDomains(known: ["a", "b"], configFile: "s.yaml")) { e in
            XCTAssertEqual("\(e)", "s.yaml: domains[1]: unknown domain 'zz' (known: a, b)")
        }
        XCTAssertThrowsError(try SweepConfig.load(path: "/nonexistent/sweep.yaml")) { e in
            XCTAssertEqual((e as? SweepConfigError)?.file, "/nonexistent/sweep.yaml")
        }
        assertError(head + "domains: [a, b]\nfgsm_epsilon: -0.1\n", key: "fgsm_epsilon", contains: "at least 0")
        assertError(head + "domains: [a, b]\nfgsm_epsilon: .nan\n", key: "fgsm_epsilon", contains: "finite")
        assertError(head + "domains: [a, b]\nmax_length: 1\n", key: "max_length", contains: "at least 2")
        assertError(head + "domains: [a, b]\nseed: \"-3\"\n", key: "seed", contains: "integer")
        assertError(head + "domains: [a, b]\ndatasets: 3\n", key: "datasets", contains: "string")
        assertError("base_model: m\ndomains: [a]\nadapters: {method: pfeiffer, dir: ad, train: [x]}\n", key: "adapters.train", contains: "string")
    }

    func testNewKeysAndDefaults() throws {
        let c = try SweepConfig.parse(yaml: """
            base_model: m
            domains: [a, b]
            datasets: my-domains.yaml
            adapters: {method: pfeiffer, dir: ad, train: configs/train-report.yaml}
            fgsm_epsilon: 0.05
            max_length: 64
            """)
        XCTAssertEqual(c.fgsmEpsilon, 0.05)
        XCTAssertEqual(c.maxLength, 64)
        XCTAssertEqual(c.datasets, "my-domains.yaml")
        XCTAssertEqual(c.trainConfig, "configs/train-report.yaml")
        let d = try SweepConfig.parse(yaml: "base_model: m\ndomains: [a]\nadapters: {method: pfeiffer, dir: ad, train: null}\ndatasets: null\ntest_cap: null\n")
        XCTAssertEqual(d.fgsmEpsilon, 0.01)
        XCTAssertEqual(d.maxLength, 128)
        XCTAssertNil(d.datasets)
        XCTAssertNil(d.trainConfig)
        XCTAssertNil(d.testCap)
        XCTAssertEqual(d, SweepConfig(baseModel: "m", domains: ["a"], adapterDir: "ad"))
    }

    /// Workers rebuild the config from the canonical JSON: it parses back to the same config.
    func testCanonicalJSONRoundTrips() throws {
        var configs = [
            SweepConfig(baseModel: "models/base", domains: ["a"]),
            SweepConfig(baseModel: "/abs/path with space/m", domains: ["bbc-news", "sms_spam", "x.y"], adapterMethod: .lora,
                        adapterDir: "out/ad\"apters", strategy: .ties, parameters: ["density": 0.1 + 0.2, "lambda": 1e-7],
                        conditions: [.fgsm], testCap: 300, testCaps: ["sms_spam": 7], batchSize: 5, shardSize: 9,
                        seed: UInt64.max, sizes: [1, 3], fgsmEpsilon: 0.1 + 0.2, maxLength: 2, datasets: "d/é.yaml",
                        trainConfig: "configs/train-report.yaml"),
            SweepConfig(baseModel: "m", domains: ["a", "b"], strategy: .dareTies, parameters: ["p": 0.3, "seed": 12, "lambda": 2],
                        seed: 0, fgsmEpsilon: 0),
            SweepConfig(baseModel: "m", domains: ["a", "b", "c"], strategy: .sparse, parameters: ["prune_layers": 2, "sparsity": 0.75],
                        testCap: nil, sizes: [2]),
            try SweepConfig.parse(yaml: good),
        ]
        configs.append(try SweepConfig.load(path: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../configs/demo-sweep.yaml").path))
        for c in configs {
            let json = c.canonicalJSON()
            var sorted = c
            sorted.domains.sort()
            sorted.conditions.sort()
            XCTAssertEqual(try SweepConfig.parse(yaml: json, file: "canonical"), sorted, json)
            XCTAssertEqual(try SweepConfig.parse(yaml: json).canonicalJSON(), json)
        }
    }

    func testMixingParametersPerStrategy() throws {
        let head = "base_model: m\nadapters: {method: pfeiffer, dir: ad}\ndomains: [a, b]\n"
        assertError(head + "mixing: {strategy: average, parameters: {lambda: 1}}\n", key: "mixing.parameters.lambda",
                    contains: "not a parameter of strategy average (known: none)")
        assertError(head + "mixing: {strategy: ties, parameters: {p: 0.5}}\n", key: "mixing.parameters.p",
                    contains: "(known: density, lambda)")
        assertError(head + "mixing: {strategy: dare, parameters: {density: 0.5}}\n", key: "mixing.parameters.density",
                    contains: "(known: lambda, p, seed)")
        assertError(head + "mixing: {strategy: sparse, parameters: {prune_layers: 1.5}}\n", key: "mixing.parameters.prune_layers",
                    contains: "whole number")
        assertError(head + "mixing: {strategy: dare, parameters: {p: 1}}\n", key: "mixing.parameters.p", contains: "[0, 1)")
        assertError(head + "mixing: {strategy: ties, parameters: {density: 0}}\n", key: "mixing.parameters.density", contains: "(0, 1]")
        assertError(head + "mixing: {strategy: sparse, parameters: {sparsity: 2}}\n", key: "mixing.parameters.sparsity", contains: "[0, 1]")
        assertError(head + "mixing: {strategy: task-arithmetic, parameters: {lambda: .inf}}\n", key: "mixing.parameters.lambda", contains: "finite")
        assertError(head + "mixing: {strategy: weighted}\n", key: "mixing.strategy", contains: "weight per member")
        for greedy in ["greedy-min", "greedy-target", "greedy-max"] {
            assertError(head + "mixing: {strategy: \(greedy), parameters: {l: 2}}\n", key: "mixing.strategy", contains: "later experiments")
        }

        let dare = try SweepConfig.parse(yaml: head + "mixing: {strategy: dare-ties, parameters: {p: 0.3, seed: 9, lambda: 0.5}}\n")
        let o = try dare.mixOptions(threads: 3)
        XCTAssertEqual(o.strategy, .dareTies)
        XCTAssertEqual(o.dropRate, 0.3)
        XCTAssertEqual(o.seed, 9)
        XCTAssertEqual(o.lambda, 0.5)
        XCTAssertEqual(o.threads, 3)
        XCTAssertNil(o.weights)
        let ties = try SweepConfig.parse(yaml: head + "mixing: {strategy: ties, parameters: {density: 0.4}}\n").mixOptions(threads: 1)
        XCTAssertEqual(ties.density, 0.4)
        XCTAssertEqual(ties.lambda, 1, "the library's default when not given")
        let sparse = try SweepConfig.parse(yaml: head + "mixing: {strategy: sparse, parameters: {prune_layers: 2, sparsity: 0.5}}\n")
            .mixOptions(threads: 1)
        XCTAssertEqual(sparse.pruneLayers, 2)
        XCTAssertEqual(sparse.sparsity, 0.5)
        XCTAssertEqual(try SweepConfig(baseModel: "m", domains: ["a"]).mixOptions(threads: 0).threads, 1)
        // A config built in code is checked when the options are made.
        XCTAssertThrowsError(try SweepConfig(baseModel: "m", domains: ["a"], strategy: .greedyMin, parameters: ["l": 1]).mixOptions(threads: 1))
        XCTAssertThrowsError(try SweepConfig(baseModel: "m", domains: ["a"], parameters: ["lambda": 1]).mixOptions(threads: 1))
    }
}

final class JournalTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sweep-journal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    var path: String { dir.appendingPathComponent("journal.sqlite").path }

    func result(_ item: WorkItem, seed: Int, worker: String = "w1", attempt: Int = 1) -> ItemResult {
        var rng = SplitMix64(seed: UInt64(seed) &+ item.key.utf8.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        let bits = (0..<37).map { _ in rng.next() % 3 != 0 }
        return ItemResult(key: item.key, correctness: bits, meanFSD: item.k > 1 ? 0.25 : nil,
                          weightsChangingDirection: item.k > 1 ? 0.1 : nil, worker: worker, attempt: attempt, duration: 0.5)
    }

    func testCreateAndReopen() throws {
        let plan = try makePlan(["a", "b", "c"])
        let j = try Journal.create(path: path, plan: plan, sweepID: "s1")
        XCTAssertEqual(try j.journalMode(), "wal")
        XCTAssertEqual(j.planHash, plan.hash)
        XCTAssertEqual(try j.counts(), JournalCounts(total: 24, pending: 24))
        XCTAssertEqual(try j.pendingItems().map(\.key), plan.allItems().map(\.key))
        XCTAssertEqual(try j.configJSON(), plan.config.canonicalJSON())
        try j.close()

        let again = try Journal.create(path: path, plan: plan)  // reopening the same plan
        XCTAssertEqual(again.sweepID, "s1")
        XCTAssertEqual(try again.counts().total, 24)
        try again.close()
        let opened = try Journal.open(path: path, planHash: plan.hash)
        XCTAssertEqual(opened.sweepID, "s1")
        try opened.close()
    }

    func testPlanHashMismatchNamesBothHashes() throws {
        let plan = try makePlan(["a", "b", "c"])
        try Journal.create(path: path, plan: plan).close()
        let other = try makePlan(["a", "b", "c"], parameters: ["lambda": 2])
        XCTAssertThrowsError(try Journal.create(path: path, plan: other)) { e in
            XCTAssertEqual(e as? JournalError, .planHashMismatch(path: path, journal: plan.hash, plan: other.hash))
            XCTAssertTrue("\(e)".contains(plan.hash) && "\(e)".contains(other.hash))
        }
        XCTAssertThrowsError(try Journal.open(path: path, planHash: other.hash))
        XCTAssertThrowsError(try Journal.open(path: dir.appendingPathComponent("none.sqlite").path))
    }

    func testRecordIsIdempotent() throws {
        let plan = try makePlan(["a", "b", "c"])
        let j = try Journal.create(path: path, plan: plan)
        let items = plan.allItems()
        let first = items.prefix(10).map { result($0, seed: 1) }
        // A batch that repeats a key within itself: the first is kept.
        var batch = first
        batch.append(result(items[0], seed: 99, worker: "w2", attempt: 2))
        let o1 = try j.record(results: batch)
        XCTAssertEqual(o1.recorded, 10)
        XCTAssertEqual(o1.duplicates, 1)
        XCTAssertEqual(o1.newlyRecorded, first.map(\.key))
        // A late result from a worker presumed dead: dropped and counted.
        let late = items.prefix(3).map { result($0, seed: 5, worker: "w3", attempt: 2) }
        let unknown = ItemResult(key: String(repeating: "0", count: 64), correctness: [true], worker: "w", attempt: 1, duration: 0)
        let o2 = try j.record(results: late + [unknown] + [result(items[10], seed: 1)])
        XCTAssertEqual(o2.recorded, 1)
        XCTAssertEqual(o2.duplicates, 3)
        XCTAssertEqual(o2.unknown, 1)
        let counts = try j.counts()
        XCTAssertEqual(counts.done, 11)
        XCTAssertEqual(counts.pending, 13)
        XCTAssertEqual(counts.duplicatesDropped, 4)
        XCTAssertEqual(try j.results().count, 11)
        let stored = try XCTUnwrap(try j.result(forKey: items[0].key))
        XCTAssertEqual(stored.result, first[0], "the first result is the one kept")
        XCTAssertEqual(stored.result.bits.values.count, 37)
        XCTAssertEqual(try j.pendingItems().count, 13)
        XCTAssertFalse(try j.pendingItems().contains { $0.key == items[0].key })
    }

    func testStatesFailedAndRunning() throws {
        let plan = try makePlan(["a", "b"])
        let j = try Journal.create(path: path, plan: plan)
        let items = plan.allItems()
        try j.markRunning(keys: [items[0].key, items[1].key])
        try j.markRunning(keys: [items[0].key])
        XCTAssertEqual(try j.counts().running, 2)
        XCTAssertEqual(try j.allItems().first { $0.key == items[0].key }?.attempts, 2)
        XCTAssertEqual(try j.pendingItems().count, items.count, "running items are still pending until recorded")
        try j.markFailed(key: items[0].key, reason: "worker lost 3 times")
        let failed = try XCTUnwrap(try j.allItems().first { $0.key == items[0].key })
        XCTAssertEqual(failed.state, .failed)
        XCTAssertEqual(failed.reason, "worker lost 3 times")
        XCTAssertEqual(try j.counts().failed, 1)
        XCTAssertThrowsError(try j.markFailed(key: "nope", reason: "x"))
        try j.record(results: [result(items[1], seed: 1)])
        try j.markFailed(key: items[1].key, reason: "too late")
        XCTAssertEqual(try j.allItems().first { $0.key == items[1].key }?.state, .done, "a recorded item stays done")
    }

    func testCrashSafetyReopenGivesSameRows() throws {
        let plan = try makePlan(["a", "b", "c", "d"])
        let items = plan.allItems()
        var j: Journal? = try Journal.create(path: path, plan: plan)
        try j!.record(results: items.prefix(20).map { result($0, seed: 3) })
        try j!.markFailed(key: items[30].key, reason: "r")
        let before = (try j!.allItems(), try j!.results(), try j!.counts())
        // No close: the process "dies" with the pool still open; a second process opens the file.
        let second = try Journal.open(path: path, planHash: plan.hash)
        XCTAssertEqual(try second.allItems(), before.0)
        XCTAssertEqual(try second.results(), before.1)
        XCTAssertEqual(try second.counts(), before.2)
        try second.close()
        try j!.close()
        j = nil
        let reopened = try Journal.create(path: path, plan: plan)
        XCTAssertEqual(try reopened.allItems(), before.0)
        XCTAssertEqual(try reopened.results(), before.1)
        XCTAssertEqual(try reopened.counts(), before.2)
        // Resume: recording the rest ends with exactly the rows of an uninterrupted run.
        try reopened.record(results: items.map { result($0, seed: 3) })
        XCTAssertEqual(try reopened.counts().done, items.count, "the failed item, once recorded, is done")
        XCTAssertEqual(try reopened.results().count, items.count)
    }
}

final class AggregationTests: XCTestCase {
    func testWelfordMatchesTwoPass() {
        var rng = SplitMix64(seed: 11)
        var w = Welford()
        var xs: [Double] = []
        for _ in 0..<1000 {
            let x = Double(rng.next() % 10_000) / 10_000
            xs.append(x)
            w.add(x)
        }
        XCTAssertTrue(w.stats!.agrees(with: AccuracyStats(values: xs)!))
        let s = AccuracyStats(values: [0.5, 0.7])!
        XCTAssertEqual(s.mean, 0.6, accuracy: 1e-12)
        XCTAssertEqual(s.variance, 0.01, accuracy: 1e-12)  // population
        XCTAssertEqual(s.sampleVariance, 0.02, accuracy: 1e-12)
        XCTAssertEqual(s.std, 0.1, accuracy: 1e-12)
    }

    func testIncrementalEqualsRecomputedFromJournal() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sweep-agg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let plan = try makePlan(["a", "b", "c", "d", "e"])
        let journal = try Journal.create(path: dir.appendingPathComponent("j.sqlite").path, plan: plan)
        var rng = SplitMix64(seed: 2024)
        var items = plan.allItems()
        // Random arrival order, in random batches, with duplicates mixed in.
        for i in stride(from: items.count - 1, to: 0, by: -1) { items.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        let byKey = Dictionary(uniqueKeysWithValues: items.map { ($0.key, $0) })
        var agg = IncrementalAggregator()
        var start = 0
        while start < items.count {
            let end = min(items.count, start + 1 + Int(rng.next() % 17))
            var batch: [ItemResult] = items[start..<end].map { item in
                let n = 20 + Int(rng.next() % 50)
                return ItemResult(key: item.key, correctness: (0..<n).map { _ in rng.next() % 4 != 0 }, worker: "w", attempt: 1, duration: 0)
            }
            if start > 0 { batch.append(ItemResult(key: items[start - 1].key, correctness: [false], worker: "late", attempt: 2, duration: 0)) }
            let outcome = try journal.record(results: batch)
            let firstByKey = Dictionary(batch.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
            for key in outcome.newlyRecorded { agg.add(firstByKey[key]!, for: byKey[key]!) }
            start = end
        }
        let incremental = agg.table
        let recomputed = try AggregateTable(journal: journal)
        XCTAssertEqual(incremental.cells.count, 5 * 5 * 2)
        XCTAssertTrue(incremental.agrees(with: recomputed))
        for key in recomputed.sortedKeys {
            XCTAssertEqual(recomputed.cells[key]!.count, binomial(4, key.k - 1))
        }
        for cond in [SweepCondition.clean, .fgsm] {  // the plan's conditions
            let a1 = try XCTUnwrap(incremental.averageOverTargets(k: 1, condition: cond))
            let a5 = try XCTUnwrap(recomputed.averageOverTargets(k: 5, condition: cond))
            let d = try XCTUnwrap(incremental.drop(condition: cond))
            XCTAssertEqual(d.from, 1)
            XCTAssertEqual(d.to, 5)
            XCTAssertEqual(d.drop, a1 - a5, accuracy: 1e-12)
        }
    }
}


final class JournalScaleTests: XCTestCase {
    /// The full 13-domain plan (106,496 items, both conditions) through the journal: created in one
    /// transaction, every item recorded in batches of 256 with 1,000 correctness bits each.
    /// About 14 s in a debug build on 2 busy cores, so it runs only with SWEEP_SCALE=1.
    func testThirteenDomainPlanThroughTheJournal() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["SWEEP_SCALE"] == "1", "set SWEEP_SCALE=1 to run")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sweep-scale-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let plan = try makePlan((1...13).map { String(format: "d%02d", $0) })
        var t0 = Date()
        let journal = try Journal.create(path: dir.appendingPathComponent("j.sqlite").path, plan: plan)
        let created = Date().timeIntervalSince(t0)
        let items = try journal.pendingItems()
        XCTAssertEqual(items.count, 106_496)
        let bits = CorrectnessBits((0..<1000).map { $0 % 3 != 0 })
        let correct = bits.correctCount
        XCTAssertEqual(correct, 666)
        t0 = Date()
        var recorded = 0
        for start in stride(from: 0, to: items.count, by: 256) {
            let batch = items[start..<min(items.count, start + 256)].map {
                ItemResult(key: $0.key, n: bits.count, correct: correct, bits: bits, worker: "w", attempt: 1, duration: 0)
            }
            recorded += try journal.record(results: batch).recorded
        }
        let recordTime = Date().timeIntervalSince(t0)
        XCTAssertEqual(recorded, items.count)
        XCTAssertEqual(try journal.counts().done, items.count)
        print(String(format: "journal scale: create %.2f s, record %.2f s (%.0f items/s)", created, recordTime, Double(items.count) / recordTime))
    }
}
