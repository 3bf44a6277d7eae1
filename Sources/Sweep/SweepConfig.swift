import Adapters
import Foundation
import Yams

/// A configuration problem, reported before anything starts: the file, the key and what is wrong.
public struct SweepConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    public let file: String
    public let key: String
    public let message: String

    public init(file: String, key: String, message: String) {
        self.file = file
        self.key = key
        self.message = message
    }

    public var description: String { "\(file): \(key): \(message)" }
}

/// An evaluation condition of a work item.
public enum SweepCondition: String, Sendable, Codable, CaseIterable, Comparable {
    case clean
    case fgsm
    /// TextFooler (black-box synonym swaps) on the first `textfooler.cap` test examples.
    case textfooler

    public static func < (a: SweepCondition, b: SweepCondition) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// The `textfooler:` block of a sweep config.
public struct TextFoolerSettings: Sendable, Equatable {
    /// Examples attacked per target (the first ones of its capped test split): the attack costs
    /// hundreds of forward passes per example.
    public var cap: Int = 50
    public var caps: [String: Int] = [:]
    public var synonymThreshold: Double = 0.8
    public var similarityThreshold: Double = 0.84
    public var maxCandidates: Int = 50
    public var queryBudget: Int = 2000
    public var posFilter: Bool = false
    /// The sentence encoder's folder; nil = the packaged all-MiniLM-L6-v2.
    public var sentenceModel: String?

    public init() {}

    public func cap(for domain: String) -> Int { caps[domain] ?? cap }

    static let keys: Set<String> = ["cap", "caps", "synonym_threshold", "similarity_threshold", "max_candidates", "query_budget",
                                    "pos_filter", "sentence_model"]

    var canonical: [String: Any] {
        var c: [String: Any] = [:]
        for (k, v) in caps { c[k] = v }
        return ["cap": cap, "caps": c, "synonym_threshold": synonymThreshold.description,
                "similarity_threshold": similarityThreshold.description, "max_candidates": maxCandidates,
                "query_budget": queryBudget, "pos_filter": posFilter, "sentence_model": sentenceModel.map { $0 as Any } ?? NSNull()]
    }
}

/// A sweep configuration (YAML, see `configs/demo-sweep.yaml`).
///
/// ```yaml
/// base_model: models/all-MiniLM-L6-v2     # a folder holding model.safetensors
/// domains: [imdb, yelp, amazon, sst2]
/// datasets: my-domains.yaml               # optional: a user domain catalog (see DomainCatalog)
/// adapters:
///   method: pfeiffer
///   dir: out/adapters                     # one folder per domain: <dir>/<domain>-<method>
///   train: configs/train-report.yaml      # optional: the CLI trains the missing adapters with it
/// mixing: {strategy: ties, parameters: {density: 0.2, lambda: 1}}
/// conditions: [clean, fgsm]
/// fgsm_epsilon: 0.01                      # FGSM step on the embeddings
/// max_length: 128                         # tokens per example (truncated)
/// test_cap: 1000                          # default cap on each domain's test split
/// test_caps: {imdb: 500}                  # per-domain overrides
/// batch_size: 32
/// shard_size: 16
/// seed: 42
/// sizes: [1, 2, 4]                        # mixture sizes to run; all (1...n) when absent
/// ```
///
/// Mixing parameters by strategy (each optional, `Mixing.mix`'s defaults otherwise):
/// average: none; sparse: `prune_layers`, `sparsity`; task-arithmetic: `lambda`; ties: `density`,
/// `lambda`; dare and dare-ties: `p`, `seed`, `lambda`. The weighted and greedy strategies are refused:
/// they need per-member weights or a size l, which an exhaustive sweep over every subset does not have.
///
/// The canonical JSON (`canonicalJSON()`) is also valid input: workers rebuild the config from it, and
/// `parse(yaml: c.canonicalJSON())` gives `c` back with its domains and conditions sorted.
public struct SweepConfig: Sendable, Equatable {
    public var baseModel: String
    /// In the order written; everything derived from the plan is independent of this order.
    public var domains: [String]
    public var adapterMethod: AdapterMethod
    public var adapterDir: String
    public var strategy: MixStrategy
    /// Strategy parameters (e.g. `lambda`, `density`, `p`, `l`), by name.
    public var parameters: [String: Double]
    public var conditions: [SweepCondition]
    /// The cap applied to domains without their own entry in `testCaps`; nil = the whole test split.
    public var testCap: Int?
    public var testCaps: [String: Int]
    public var batchSize: Int
    public var shardSize: Int
    public var seed: UInt64
    /// The mixture sizes to run, ascending; 1...n by default.
    public var sizes: [Int]
    /// The FGSM step ε on the embeddings (the study's 0.01).
    public var fgsmEpsilon: Double
    /// Tokens per example after truncation.
    public var maxLength: Int
    /// A user domain catalog (YAML) to read domains from besides the built-in ones; nil = built-in only.
    public var datasets: String?
    /// A training config (e.g. `configs/train-report.yaml`) with which the CLI trains the adapters that
    /// are missing before the sweep starts; nil = every adapter must exist.
    public var trainConfig: String?
    /// The TextFooler condition's settings (docs/attacks.md).
    public var textfooler = TextFoolerSettings()
    /// The study's other experiments (greedy, pruning, sparse, TIES, DARE): Experiments.swift.
    public var experiments = ExperimentSettings()

    public init(baseModel: String, domains: [String], adapterMethod: AdapterMethod = .pfeiffer,
                adapterDir: String = "out/adapters", strategy: MixStrategy = .average,
                parameters: [String: Double] = [:], conditions: [SweepCondition] = [.clean, .fgsm],
                testCap: Int? = nil, testCaps: [String: Int] = [:], batchSize: Int = 32,
                shardSize: Int = 16, seed: UInt64 = 42, sizes: [Int]? = nil, fgsmEpsilon: Double = 0.01,
                maxLength: Int = 128, datasets: String? = nil, trainConfig: String? = nil) {
        self.baseModel = baseModel
        self.domains = domains
        self.adapterMethod = adapterMethod
        self.adapterDir = adapterDir
        self.strategy = strategy
        self.parameters = parameters
        self.conditions = conditions
        self.testCap = testCap
        self.testCaps = testCaps
        self.batchSize = batchSize
        self.shardSize = shardSize
        self.seed = seed
        self.sizes = sizes ?? Array(1...max(domains.count, 1))
        self.fgsmEpsilon = fgsmEpsilon
        self.maxLength = maxLength
        self.datasets = datasets
        self.trainConfig = trainConfig
    }

    /// The domains in canonical (sorted) order.
    public var sortedDomains: [String] { domains.sorted() }

    /// The test cap for one domain (nil = uncapped).
    public func testCap(for domain: String) -> Int? { testCaps[domain] ?? testCap }

    /// The adapter folder of one domain: `<dir>/<domain>-<method>`.
    public func adapterFolder(for domain: String) -> String {
        (adapterDir as NSString).appendingPathComponent("\(domain)-\(adapterMethod.rawValue)")
    }

    /// The base model's weights file.
    public var baseModelWeights: String { (baseModel as NSString).appendingPathComponent("model.safetensors") }

    /// The configuration in canonical JSON (sorted keys, sorted domains): what the plan hash and
    /// the journal record, and what workers parse back. Independent of the order domains are written in.
    /// Doubles and the seed are written as text (the shortest round-trip form, exact and stable).
    public func canonicalJSON() -> String {
        var caps: [String: Any] = [:]
        for (k, v) in testCaps { caps[k] = v }
        var params: [String: Any] = [:]
        for (k, v) in parameters { params[k] = v.description }
        var object: [String: Any] = [
            "base_model": baseModel,
            "domains": domains.sorted(),
            "datasets": datasets.map { $0 as Any } ?? NSNull(),
            "adapters": ["method": adapterMethod.rawValue, "dir": adapterDir, "train": trainConfig.map { $0 as Any } ?? NSNull()],
            "mixing": ["strategy": strategy.rawValue, "parameters": params],
            "conditions": conditions.sorted().map(\.rawValue),
            "fgsm_epsilon": fgsmEpsilon.description,
            "max_length": maxLength,
            "test_cap": testCap.map { $0 as Any } ?? NSNull(),
            "test_caps": caps,
            "batch_size": batchSize,
            "shard_size": shardSize,
            "seed": String(seed),
            "sizes": sizes.sorted(),
            "textfooler": textfooler.canonical,
        ]
        // Only when set: configs without experiments keep the plan hashes they had.
        if !experiments.isDefault { object["experiments"] = experiments.canonical }
        // Plain strings, numbers and containers always serialise.
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    // MARK: - Loading

    public static let knownKeys: Set<String> = [
        "base_model", "domains", "datasets", "adapters", "mixing", "conditions", "fgsm_epsilon", "max_length",
        "test_cap", "test_caps", "batch_size", "shard_size", "seed", "sizes", "textfooler", "experiments",
    ]

    /// Reads and validates a sweep config file.
    public static func load(path: String) throws -> SweepConfig {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw SweepConfigError(file: path, key: "(file)", message: "cannot read: \(error.localizedDescription)")
        }
        return try parse(yaml: text, file: path)
    }

    /// Parses and validates YAML text; `file` names the source in errors.
    public static func parse(yaml text: String, file: String = "<config>") throws -> SweepConfig {
        func fail(_ key: String, _ message: String) -> SweepConfigError {
            SweepConfigError(file: file, key: key, message: message)
        }
        let loaded: Any?
        do { loaded = try Yams.load(yaml: text) } catch {
            throw fail("(file)", "not valid YAML: \(error)")
        }
        guard let map = loaded as? [String: Any] else { throw fail("(file)", "expected a YAML mapping of sweep options") }
        for key in map.keys.sorted() where !knownKeys.contains(key) {
            throw fail(key, "unknown key (known: \(knownKeys.sorted().joined(separator: ", ")))")
        }

        func string(_ v: Any?, _ key: String) throws -> String {
            guard let s = v as? String, !s.isEmpty else { throw fail(key, "expected a non-empty string") }
            return s
        }
        func int(_ v: Any?, _ key: String, min lo: Int) throws -> Int {
            guard let i = v as? Int else { throw fail(key, "expected an integer") }
            guard i >= lo else { throw fail(key, "must be at least \(lo), got \(i)") }
            return i
        }
        /// A finite number; the canonical JSON writes doubles as text, so a numeric string is one too.
        func double(_ v: Any?, _ key: String) throws -> Double {
            var d: Double?
            if let x = v as? Double { d = x } else if let i = v as? Int { d = Double(i) } else if let s = v as? String { d = Double(s) }
            guard let d else { throw fail(key, "expected a number") }
            guard d.isFinite else { throw fail(key, "expected a finite number, got \(d)") }
            return d
        }
        func optionalString(_ v: Any?, _ key: String) throws -> String? {
            guard let v, !(v is NSNull) else { return nil }
            return try string(v, key)
        }
        func submap(_ v: Any?, _ key: String, allowed: Set<String>) throws -> [String: Any] {
            guard let m = v as? [String: Any] else { throw fail(key, "expected a mapping") }
            for k in m.keys.sorted() where !allowed.contains(k) {
                throw fail("\(key).\(k)", "unknown key (known: \(allowed.sorted().joined(separator: ", ")))")
            }
            return m
        }

        guard map["base_model"] != nil else { throw fail("base_model", "missing") }
        let baseModel = try string(map["base_model"], "base_model")

        guard let rawDomains = map["domains"] else { throw fail("domains", "missing") }
        guard let domainList = rawDomains as? [Any] else { throw fail("domains", "expected a list of domain names") }
        var domains: [String] = []
        for (i, d) in domainList.enumerated() {
            let name = try string(d, "domains[\(i)]")
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." }) else {
                throw fail("domains[\(i)]", "'\(name)' is not a plain domain name")
            }
            guard !domains.contains(name) else { throw fail("domains[\(i)]", "'\(name)' is listed twice") }
            domains.append(name)
        }
        guard !domains.isEmpty else { throw fail("domains", "no domains listed") }
        guard domains.count <= 30 else { throw fail("domains", "\(domains.count) domains: at most 30 are supported") }

        let datasets = try optionalString(map["datasets"], "datasets")

        guard map["adapters"] != nil else { throw fail("adapters", "missing") }
        let adapters = try submap(map["adapters"], "adapters", allowed: ["method", "dir", "train"])
        let methodName = try string(adapters["method"], "adapters.method")
        guard let method = AdapterMethod(rawValue: methodName) else {
            throw fail("adapters.method", "unknown method '\(methodName)' (known: \(AdapterMethod.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let adapterDir = try string(adapters["dir"], "adapters.dir")
        let trainConfig = try optionalString(adapters["train"], "adapters.train")

        var strategy = MixStrategy.average
        var parameters: [String: Double] = [:]
        if let m = map["mixing"] {
            let mixing = try submap(m, "mixing", allowed: ["strategy", "parameters"])
            if let s = mixing["strategy"] {
                let name = try string(s, "mixing.strategy")
                guard let st = MixStrategy(rawValue: name) else {
                    throw fail("mixing.strategy", "unknown strategy '\(name)' (known: \(MixStrategy.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                strategy = st
            }
            if let p = mixing["parameters"], !(p is NSNull) {
                guard let pm = p as? [String: Any] else { throw fail("mixing.parameters", "expected a mapping of name: number") }
                for k in pm.keys.sorted() { parameters[k] = try double(pm[k], "mixing.parameters.\(k)") }
            }
        }
        try checkMixing(strategy: strategy, parameters: parameters, file: file)

        func conditionList(_ c: Any?, _ key: String) throws -> [SweepCondition] {
            guard let list = c as? [Any], !list.isEmpty else { throw fail(key, "expected a non-empty list (clean, fgsm, textfooler)") }
            var out: [SweepCondition] = []
            for (i, v) in list.enumerated() {
                let name = try string(v, "\(key)[\(i)]")
                guard let cond = SweepCondition(rawValue: name) else {
                    throw fail("\(key)[\(i)]", "unknown condition '\(name)' (known: \(SweepCondition.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                guard !out.contains(cond) else { throw fail("\(key)[\(i)]", "'\(name)' is listed twice") }
                out.append(cond)
            }
            return out
        }
        var conditions: [SweepCondition] = [.clean, .fgsm]
        if let c = map["conditions"] { conditions = try conditionList(c, "conditions") }
        var experiments = ExperimentSettings()
        if let e = map["experiments"], !(e is NSNull) {
            experiments = try ExperimentSettings.parse(e, fail: fail, number: double, integer: { try int($0, $1, min: $2) },
                                                       conditionList: conditionList)
        }

        let fgsmEpsilon = try map["fgsm_epsilon"].map { try double($0, "fgsm_epsilon") } ?? 0.01
        guard fgsmEpsilon >= 0 else { throw fail("fgsm_epsilon", "must be at least 0, got \(fgsmEpsilon)") }
        let maxLength = try map["max_length"].map { try int($0, "max_length", min: 2) } ?? 128

        var textfooler = TextFoolerSettings()
        if let t = map["textfooler"], !(t is NSNull) {
            let m = try submap(t, "textfooler", allowed: TextFoolerSettings.keys)
            if let v = m["cap"] { textfooler.cap = try int(v, "textfooler.cap", min: 1) }
            if let v = m["caps"], !(v is NSNull) {
                guard let cm = v as? [String: Any] else { throw fail("textfooler.caps", "expected a mapping of domain: cap") }
                for k in cm.keys.sorted() {
                    guard domains.contains(k) else { throw fail("textfooler.caps.\(k)", "'\(k)' is not one of the sweep's domains") }
                    textfooler.caps[k] = try int(cm[k], "textfooler.caps.\(k)", min: 1)
                }
            }
            if let v = m["synonym_threshold"] {
                textfooler.synonymThreshold = try double(v, "textfooler.synonym_threshold")
                guard (-1...1).contains(textfooler.synonymThreshold) else { throw fail("textfooler.synonym_threshold", "must be a cosine in -1…1") }
            }
            if let v = m["similarity_threshold"] {
                textfooler.similarityThreshold = try double(v, "textfooler.similarity_threshold")
                guard (0...1).contains(textfooler.similarityThreshold) else { throw fail("textfooler.similarity_threshold", "must be in 0…1") }
            }
            if let v = m["max_candidates"] { textfooler.maxCandidates = try int(v, "textfooler.max_candidates", min: 1) }
            if let v = m["query_budget"] { textfooler.queryBudget = try int(v, "textfooler.query_budget", min: 1) }
            if let v = m["pos_filter"] {
                guard let b = v as? Bool else { throw fail("textfooler.pos_filter", "expected true or false") }
                textfooler.posFilter = b
            }
            if let v = m["sentence_model"], !(v is NSNull) { textfooler.sentenceModel = try string(v, "textfooler.sentence_model") }
        }

        let testCap = try map["test_cap"].flatMap { $0 is NSNull ? nil : try int($0, "test_cap", min: 1) }
        var testCaps: [String: Int] = [:]
        if let t = map["test_caps"] {
            guard let tm = t as? [String: Any] else { throw fail("test_caps", "expected a mapping of domain: cap") }
            for k in tm.keys.sorted() {
                guard domains.contains(k) else { throw fail("test_caps.\(k)", "'\(k)' is not one of the sweep's domains") }
                testCaps[k] = try int(tm[k], "test_caps.\(k)", min: 1)
            }
        }

        let batchSize = try map["batch_size"].map { try int($0, "batch_size", min: 1) } ?? 32
        let shardSize = try map["shard_size"].map { try int($0, "shard_size", min: 1) } ?? 16
        var seed: UInt64 = 42
        if let s = map["seed"] {
            // The canonical JSON writes the seed as a string of digits (all of UInt64).
            if let text = s as? String {
                guard !text.isEmpty, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let v = UInt64(text) else {
                    throw fail("seed", "expected an integer 0...\(UInt64.max), got '\(text)'")
                }
                seed = v
            } else {
                seed = UInt64(try int(s, "seed", min: 0))
            }
        }

        var sizes: [Int]? = nil
        if let s = map["sizes"], !(s is NSNull) {
            if let word = s as? String, word == "all" {
                sizes = nil
            } else {
                guard let list = s as? [Any], !list.isEmpty else { throw fail("sizes", "expected a non-empty list of mixture sizes, or 'all'") }
                var out: Set<Int> = []
                for (i, v) in list.enumerated() {
                    guard let k = v as? Int else { throw fail("sizes[\(i)]", "expected an integer") }
                    guard (1...domains.count).contains(k) else {
                        throw fail("sizes[\(i)]", "mixture size \(k) is out of range 1...\(domains.count) for \(domains.count) domains")
                    }
                    out.insert(k)
                }
                sizes = out.sorted()
            }
        }

        return SweepConfig(baseModel: baseModel, domains: domains, adapterMethod: method, adapterDir: adapterDir,
                           strategy: strategy, parameters: parameters, conditions: conditions, testCap: testCap,
                           testCaps: testCaps, batchSize: batchSize, shardSize: shardSize, seed: seed, sizes: sizes,
                           fgsmEpsilon: fgsmEpsilon, maxLength: maxLength, datasets: datasets, trainConfig: trainConfig)
            .with(textfooler: textfooler).with(experiments: experiments)
    }

    func with(textfooler: TextFoolerSettings) -> SweepConfig {
        var c = self
        c.textfooler = textfooler
        return c
    }

    public func with(experiments: ExperimentSettings) -> SweepConfig {
        var c = self
        c.experiments = experiments
        return c
    }

    /// Every condition the plan evaluates under: the exhaustive sweep's and the experiments'.
    public var allConditions: Set<SweepCondition> {
        (experiments.exhaustive ? Set(conditions) : []).union(experiments.conditions)
    }

    // MARK: - Mixing

    /// The parameters each strategy takes in a sweep; strategies absent here are refused.
    public static let mixingParameters: [MixStrategy: [String]] = [
        .average: [],
        .sparse: ["prune_layers", "sparsity"],
        .taskArithmetic: ["lambda"],
        .ties: ["density", "lambda"],
        .dare: ["lambda", "p", "seed"],
        .dareTies: ["lambda", "p", "seed"],
    ]

    /// Refuses strategies a sweep cannot run and parameters the strategy does not take, or values out of
    /// range (the first problem, by parameter name).
    static func checkMixing(strategy: MixStrategy, parameters: [String: Double], file: String) throws {
        func fail(_ key: String, _ message: String) -> SweepConfigError { SweepConfigError(file: file, key: key, message: message) }
        guard let known = mixingParameters[strategy] else {
            let usable = MixStrategy.allCases.filter { mixingParameters[$0] != nil }.map(\.rawValue).joined(separator: ", ")
            let why = strategy == .weighted ? "needs a weight per member" : "needs l, how many adapters to select"
            throw fail("mixing.strategy", "'\(strategy.rawValue)' \(why), which a sweep over every subset does not have — weighted and greedy mixing belong to later experiments; a sweep takes \(usable)")
        }
        for name in parameters.keys.sorted() {
            let key = "mixing.parameters.\(name)", v = parameters[name]!
            guard known.contains(name) else {
                let names = known.isEmpty ? "none" : known.joined(separator: ", ")
                throw fail(key, "'\(name)' is not a parameter of strategy \(strategy.rawValue) (known: \(names))")
            }
            guard v.isFinite else { throw fail(key, "expected a finite number, got \(v)") }
            switch name {
            case "prune_layers", "seed":
                guard v >= 0, v == v.rounded(), v <= 9_007_199_254_740_992 else { throw fail(key, "expected a whole number ≥ 0, got \(v)") }
            case "sparsity":
                guard (0...1).contains(v) else { throw fail(key, "must be in [0, 1], got \(v)") }
            case "density":
                guard v > 0, v <= 1 else { throw fail(key, "must be in (0, 1], got \(v)") }
            case "p":
                guard v >= 0, v < 1 else { throw fail(key, "must be in [0, 1), got \(v)") }
            default:
                break
            }
        }
    }

    /// The options `Mixing.mix` takes for this sweep's strategy and parameters (the library's defaults for
    /// parameters not given). Throws for a strategy or parameter a sweep does not take.
    public func mixOptions(threads: Int) throws -> MixOptions {
        try Self.checkMixing(strategy: strategy, parameters: parameters, file: "<config>")
        return MixOptions.from(strategy: strategy, parameters: parameters, threads: threads)
    }

    /// Checks every configured domain against the names the dataset catalog knows (built-in and
    /// user-declared); the first unknown one is reported under its `domains[i]` key.
    public func checkDomains(known: Set<String>, configFile: String = "<config>") throws {
        for (i, d) in domains.enumerated() where !known.contains(d) {
            throw SweepConfigError(file: configFile, key: "domains[\(i)]",
                                   message: "unknown domain '\(d)' (known: \(known.sorted().joined(separator: ", ")))")
        }
    }

    /// Checks that the base model's weights and every domain's adapter folder exist; the first
    /// missing one is reported (file = the config, key = what points at it).
    public func checkArtifactsExist(configFile: String = "<config>") throws {
        let fm = FileManager.default
        if !fm.fileExists(atPath: baseModelWeights) {
            throw SweepConfigError(file: configFile, key: "base_model", message: "\(baseModelWeights) does not exist")
        }
        for d in sortedDomains {
            var isDir: ObjCBool = false
            let folder = adapterFolder(for: d)
            if !fm.fileExists(atPath: folder, isDirectory: &isDir) || !isDir.boolValue {
                throw SweepConfigError(file: configFile, key: "adapters.dir",
                                       message: "no adapter folder for domain '\(d)': \(folder) is missing")
            }
        }
    }
}
