import Attack
import Crypto
import Datasets
import Encoder
import Foundation

/// One mixture: the target and its members (the target included), members in sorted order.
public struct Mixture: Sendable, Hashable, Codable {
    public let target: String
    /// Sorted by name; always contains `target`.
    public let members: [String]
    public var k: Int { members.count }

    public init(target: String, members: [String]) {
        self.target = target
        self.members = Array(Set(members).union([target])).sorted()
    }
}

/// A unit of work: one mixture under one condition, made by one recipe, with its plan-derived key.
public struct WorkItem: Sendable, Hashable, Codable {
    public let mixture: Mixture
    public let condition: SweepCondition
    /// Derived from the plan only; see `WorkKey`.
    public let key: String
    /// How the adapter is made; nil = the exhaustive sweep's (the config's `mixing`).
    public let recipe: Recipe?

    public init(mixture: Mixture, condition: SweepCondition, key: String, recipe: Recipe? = nil) {
        self.mixture = mixture
        self.condition = condition
        self.key = key
        self.recipe = recipe
    }

    public var target: String { mixture.target }
    public var members: [String] { mixture.members }
    public var k: Int { mixture.k }
    public var experiment: Experiment { recipe?.experiment ?? .exhaustive }
}

/// Work keys: a SHA-256 hex digest of a canonical string built from the plan alone — the target,
/// the sorted members, the condition, the strategy and its parameters (sorted by name). Never
/// from timing, worker identity or the order domains are written in the config.
public enum WorkKey {
    /// The canonical text that is hashed, e.g.
    /// `adaptermix-work-v1|target=imdb|members=imdb,yelp|condition=clean|strategy=average|params=lambda=1.0`.
    /// Items of the other experiments (greedy, pruning, sparse, TIES, DARE) name theirs after the
    /// prefix: `adaptermix-work-v1|experiment=prune|target=…`.
    public static func canonical(target: String, members: [String], condition: SweepCondition,
                                 strategy: String, parameters: [String: Double], experiment: Experiment = .exhaustive) -> String {
        let m = Array(Set(members).union([target])).sorted().joined(separator: ",")
        let p = parameters.keys.sorted().map { "\($0)=\(parameters[$0]!.description)" }.joined(separator: ",")
        let e = experiment == .exhaustive ? "" : "|experiment=\(experiment.rawValue)"
        return "adaptermix-work-v1\(e)|target=\(target)|members=\(m)|condition=\(condition.rawValue)|strategy=\(strategy)|params=\(p)"
    }

    public static func make(target: String, members: [String], condition: SweepCondition,
                            strategy: String, parameters: [String: Double], experiment: Experiment = .exhaustive) -> String {
        sha256Hex(Data(canonical(target: target, members: members, condition: condition,
                                 strategy: strategy, parameters: parameters, experiment: experiment).utf8))
    }
}

/// SHA-256 of bytes as lower-case hex.
public func sha256Hex(_ data: Data) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(64)
    for byte in SHA256.hash(data: data) {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0f)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// The SHA-256 of every artifact the sweep reads, and which evaluator reads them. The plan function
/// takes them as input (tests pass fake ones); `ArtifactHashes.compute(for:catalog:)` hashes the real
/// files. Workers receive them as JSON and check their own copies against them before evaluating.
public struct ArtifactHashes: Sendable, Equatable, Codable {
    /// SHA-256 of the base model's model.safetensors.
    public var baseModel: String
    /// Per domain: file name within its adapter folder → SHA-256.
    public var adapters: [String: [String: String]]
    /// The evaluator the results come from: "mixture" (`MixtureEvaluator`) or "noop" (`NoopEvaluator`).
    public var evaluator: String
    /// Per domain: SHA-256 of its test split after the caps (`testSplitHash`).
    public var testSplits: [String: String]
    /// The base model's other files the encoder reads (`config.json`, `tokenizer.json`) → SHA-256.
    public var baseModelFiles: [String: String]
    /// With the TextFooler condition: `glove` and `sentence/<file>` (and `wordnet/<file>` with the
    /// POS filter) → SHA-256. Workers read these from their own packaged copies and check them.
    public var attackFiles: [String: String] = [:]

    /// The files of the base model folder a worker needs besides `model.safetensors`.
    public static let baseModelSideFiles = ["config.json", "tokenizer.json"]

    public init(baseModel: String, adapters: [String: [String: String]], evaluator: String = "mixture",
                testSplits: [String: String] = [:], baseModelFiles: [String: String] = [:]) {
        self.baseModel = baseModel
        self.adapters = adapters
        self.evaluator = evaluator
        self.testSplits = testSplits
        self.baseModelFiles = baseModelFiles
    }

    enum CodingKeys: String, CodingKey { case baseModel, adapters, evaluator, testSplits, baseModelFiles, attackFiles }

    /// Decodes JSON written before `evaluator` and `testSplits` existed too (as "mixture", none).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        baseModel = try c.decode(String.self, forKey: .baseModel)
        adapters = try c.decode([String: [String: String]].self, forKey: .adapters)
        evaluator = try c.decodeIfPresent(String.self, forKey: .evaluator) ?? "mixture"
        testSplits = try c.decodeIfPresent([String: String].self, forKey: .testSplits) ?? [:]
        baseModelFiles = try c.decodeIfPresent([String: String].self, forKey: .baseModelFiles) ?? [:]
        attackFiles = try c.decodeIfPresent([String: String].self, forKey: .attackFiles) ?? [:]
    }

    /// The artifacts of a sweep run with the no-op evaluator, which reads nothing: each domain with no
    /// adapter files, no test splits, base model "none".
    public static func noop(domains: [String]) -> ArtifactHashes {
        ArtifactHashes(baseModel: "none", adapters: Dictionary(domains.map { ($0, [:]) }, uniquingKeysWith: { a, _ in a }),
                       evaluator: "noop", testSplits: [:])
    }

    /// Canonical text: one line per artifact, sorted within each kind — the base model, the adapter
    /// files, the evaluator, the test splits.
    public var canonical: String {
        var lines = ["base_model/model.safetensors \(baseModel)"]
        for f in baseModelFiles.keys.sorted() { lines.append("base_model/\(f) \(baseModelFiles[f]!)") }
        for d in adapters.keys.sorted() {
            let files = adapters[d]!
            for f in files.keys.sorted() { lines.append("adapter/\(d)/\(f) \(files[f]!)") }
        }
        lines.append("evaluator \(evaluator)")
        for d in testSplits.keys.sorted() { lines.append("test/\(d) \(testSplits[d]!)") }
        for f in attackFiles.keys.sorted() { lines.append("attack/\(f) \(attackFiles[f]!)") }
        return lines.joined(separator: "\n")
    }

    /// Hashes the base model's weights, every regular file of each domain's adapter folder, and each
    /// domain's test split as the sweep reads it (the config's seed and that domain's test cap).
    public static func compute(for config: SweepConfig, catalog: DomainCatalog) throws -> ArtifactHashes {
        var adapters: [String: [String: String]] = [:]
        var tests: [String: String] = [:]
        for d in config.sortedDomains {
            adapters[d] = try hashFolder(config.adapterFolder(for: d))
            let splits = try catalog.load(d, options: SplitOptions(seed: config.seed, maxTest: config.testCap(for: d)))
            tests[d] = testSplitHash(splits.test, labels: splits.labels)
        }
        var side: [String: String] = [:]
        for f in baseModelSideFiles {
            let path = (config.baseModel as NSString).appendingPathComponent(f)
            if FileManager.default.fileExists(atPath: path) { side[f] = try hashFile(path) }
        }
        var out = ArtifactHashes(baseModel: try hashFile(config.baseModelWeights), adapters: adapters, evaluator: "mixture",
                                 testSplits: tests, baseModelFiles: side)
        if config.allConditions.contains(.textfooler) {
            for (name, path) in attackFilePaths(config) { out.attackFiles[name] = try hashFile(path) }
        }
        return out
    }

    /// Where the TextFooler resources are on this machine: the packaged GloVe file, the sentence
    /// encoder's files, and WordNet's index files when the POS filter is on.
    public static func attackFilePaths(_ config: SweepConfig) -> [String: String] {
        var out = ["glove": GloVeVectors.packagedFile().path]
        let sentence = config.textfooler.sentenceModel ?? PretrainedEncoder.defaultModelDirectory().path
        for f in ["model.safetensors"] + baseModelSideFiles { out["sentence/\(f)"] = (sentence as NSString).appendingPathComponent(f) }
        if config.textfooler.posFilter {
            for pos in ["noun", "verb", "adj", "adv"] {
                out["wordnet/index.\(pos)"] = WordNetPOS.packagedDirectory().appendingPathComponent("index.\(pos)").path
            }
        }
        return out
    }

    /// Every artifact a worker needs, by logical path: `model/<file>`, `adapters/<domain>/<file>`,
    /// `test/<domain>` (the canonical test split text) → SHA-256.
    public var manifest: [String: String] {
        guard evaluator != "noop" else { return [:] }
        var out = ["model/model.safetensors": baseModel]
        for (f, h) in baseModelFiles { out["model/\(f)"] = h }
        for (d, files) in adapters { for (f, h) in files { out["adapters/\(d)/\(f)"] = h } }
        for (d, h) in testSplits { out["test/\(d)"] = h }
        return out
    }

    /// SHA-256 of a file as lower-case hex.
    static func hashFile(_ path: String) throws -> String {
        try sha256Hex(Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe))
    }

    /// File name → SHA-256 for every regular file directly in `folder`.
    static func hashFolder(_ folder: String) throws -> [String: String] {
        let fm = FileManager.default
        var files: [String: String] = [:]
        for name in try fm.contentsOfDirectory(atPath: folder).sorted() {
            let path = (folder as NSString).appendingPathComponent(name)
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue { files[name] = try hashFile(path) }
        }
        return files
    }

    /// SHA-256 of a test split: its labels (in order), then each example's id, text, text pair and label,
    /// in order. Every field is written as a JSON string (absent pair: `null`, so absent ≠ empty) and
    /// fields are joined by tabs, one line each, so the text is unambiguous:
    /// ```
    /// adaptermix-test-split-v1
    /// labels\t"neg"\t"pos"
    /// "id-1"\t"a text"\tnull\t"pos"
    /// ```
    public static func testSplitHash(_ examples: [Example], labels: [String]) -> String {
        sha256Hex(Data(testSplitText(examples, labels: labels).utf8))
    }

    /// The canonical text `testSplitHash` hashes; workers without the datasets receive it as is.
    public static func testSplitText(_ examples: [Example], labels: [String]) -> String {
        var text = "adaptermix-test-split-v1\nlabels"
        for l in labels { text += "\t" + jsonStringLiteral(l) }
        text += "\n"
        for e in examples {
            let pair: String = e.textPair.map(jsonStringLiteral) ?? "null"
            text += jsonStringLiteral(e.id) + "\t" + jsonStringLiteral(e.text) + "\t" + pair + "\t" + jsonStringLiteral(e.label) + "\n"
        }
        return text
    }

    /// Reads `testSplitText` back: the labels and the examples.
    public static func parseTestSplit(_ text: String, source: String) throws -> (labels: [String], examples: [Example]) {
        func fail(_ line: Int, _ why: String) -> SweepConfigError {
            SweepConfigError(file: source, key: "line \(line)", message: why)
        }
        func field(_ raw: Substring, _ line: Int) throws -> String? {
            if raw == "null" { return nil }
            guard let v = try? JSONSerialization.jsonObject(with: Data(raw.utf8), options: [.fragmentsAllowed]) as? String else {
                throw fail(line, "not a JSON string: \(raw.prefix(40))")
            }
            return v
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        guard lines.count >= 2, lines[0] == "adaptermix-test-split-v1" else { throw fail(1, "not an AdapterMix test split (v1)") }
        let head = lines[1].split(separator: "\t", omittingEmptySubsequences: false)
        guard head.first == "labels" else { throw fail(2, "expected the labels line") }
        let labels = try head.dropFirst().map { try field($0, 2) ?? "" }
        var examples: [Example] = []
        for (i, line) in lines.dropFirst(2).enumerated() {
            let parts = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard parts.count == 4, let id = try field(parts[0], i + 3), let text = try field(parts[1], i + 3),
                  let label = try field(parts[3], i + 3) else { throw fail(i + 3, "expected id, text, pair and label") }
            examples.append(Example(id: id, text: text, textPair: try field(parts[2], i + 3), label: label))
        }
        return (labels, examples)
    }

}

/// A shard: consecutive work items of one target, dispatched together.
public struct Shard: Sendable, Equatable {
    public let index: Int
    public let target: String
    public let items: [WorkItem]
}

/// The sweep plan: every mixture {t} ∪ S for each target t and subset S of the other domains,
/// restricted to the configured sizes, times the conditions. Pure: a function of the config and
/// the artifact hashes. Items are enumerated lazily; nothing is materialised until asked.
public struct SweepPlan: Sendable {
    public let config: SweepConfig
    public let artifacts: ArtifactHashes
    /// SHA-256 over the canonical config JSON and every artifact hash.
    public let hash: String
    /// Targets in canonical (sorted) order.
    public let targets: [String]
    /// The adapters' pairwise FSD (needed when the config asks for greedy FSD mixing; recorded in
    /// the journal for the report). Derived from the adapter files, which `artifacts` hashes.
    public let fsd: FSDTable?
    /// The domains' centroid similarity (needed by the `similarity` experiment; recorded in the journal).
    public let similarity: SimilarityTable?
    /// LDA topics of the domains (computed with the similarity; recorded in the journal for the report).
    public var topics: TopicSummary?
    /// Items per target (exhaustive and experiments), counted once.
    private var perTargetCounts: [Int]
    /// Mean tokens per test example of each target after truncation (set by the commands from the
    /// test splits; not part of the plan hash: it orders and sizes shards, never changes a key or
    /// a result). With it, `shards()` sizes shards by estimated cost and hands out the costliest
    /// first, so the last minutes of a sweep are not one slow shard.
    public var tokenEstimates: [String: Double]?

    public init(config: SweepConfig, artifacts: ArtifactHashes, fsd: FSDTable? = nil, similarity: SimilarityTable? = nil) throws {
        let n = config.domains.count
        guard n >= 1, Set(config.domains).count == n else {
            throw SweepConfigError(file: "<plan>", key: "domains", message: "need at least one domain, each listed once")
        }
        guard n <= 30 else { throw SweepConfigError(file: "<plan>", key: "domains", message: "at most 30 domains") }
        for k in config.sizes where !(1...n).contains(k) {
            throw SweepConfigError(file: "<plan>", key: "sizes", message: "mixture size \(k) is out of range 1...\(n)")
        }
        if config.experiments.blocks["greedy"] != nil {
            guard let fsd, fsd.domains == config.sortedDomains else {
                throw SweepConfigError(file: "<plan>", key: "experiments.greedy",
                                       message: "greedy FSD mixing needs the adapters' FSD matrix over the sweep's domains (DomainMatrix.signDifference)")
            }
        }
        if config.experiments.blocks["similarity"] != nil {
            guard let similarity, similarity.domains == config.sortedDomains else {
                throw SweepConfigError(file: "<plan>", key: "experiments.similarity",
                                       message: "selection by domain similarity needs the domains' centroid similarity (DomainMatrix.centroidSimilarity)")
            }
        }
        self.config = config
        self.artifacts = artifacts
        self.targets = config.sortedDomains
        self.fsd = fsd
        self.similarity = similarity
        self.hash = sha256Hex(Data(("adaptermix-plan-v1\n" + config.canonicalJSON() + "\n" + artifacts.canonical).utf8))
        let exhaustivePerTarget = (config.experiments.exhaustive ? 1 : 0) * config.conditions.count
        self.perTargetCounts = []
        let counts = targets.map { t in
            exhaustivePerTarget * Self.mixtureCount(domains: n, sizes: config.sizes) / n + experimentItems(for: t).count
        }
        self.perTargetCounts = counts
    }

    /// n · Σ_{k ∈ sizes} C(n−1, k−1) mixtures (n · 2^(n−1) for all sizes).
    public static func mixtureCount(domains n: Int, sizes: [Int]) -> Int {
        Set(sizes).reduce(0) { $0 + ((1...n).contains($1) ? n * binomial(n - 1, $1 - 1) : 0) }
    }

    public var mixtureCount: Int { Self.mixtureCount(domains: targets.count, sizes: config.sizes) }
    /// Every item of the plan: the exhaustive sweep's and the experiments'.
    public var itemCount: Int { perTargetCounts.reduce(0, +) }

    /// The mixtures of one target, in canonical order: by size, then members lexicographically.
    public func mixtures(for target: String) -> [Mixture] {
        guard targets.contains(target) else { return [] }
        let others = targets.filter { $0 != target }
        let sizes = Set(config.sizes)
        var out: [Mixture] = []
        for mask in 0..<(1 << others.count) where sizes.contains(mask.nonzeroBitCount + 1) {
            var members = [target]
            for (i, o) in others.enumerated() where mask & (1 << i) != 0 { members.append(o) }
            out.append(Mixture(target: target, members: members))
        }
        return out.sorted { a, b in a.k != b.k ? a.k < b.k : a.members.lexicographicallyPrecedes(b.members) }
    }

    public func item(_ mixture: Mixture, _ condition: SweepCondition, recipe: Recipe? = nil) -> WorkItem {
        guard let recipe, recipe.experiment != .exhaustive else {
            return WorkItem(mixture: mixture, condition: condition,
                            key: WorkKey.make(target: mixture.target, members: mixture.members, condition: condition,
                                              strategy: config.strategy.rawValue, parameters: config.parameters))
        }
        return WorkItem(mixture: mixture, condition: condition,
                        key: WorkKey.make(target: mixture.target, members: mixture.members, condition: condition,
                                          strategy: recipe.strategy, parameters: recipe.parameters, experiment: recipe.experiment),
                        recipe: recipe)
    }

    /// The work items of one target: each mixture under each condition (conditions in canonical
    /// order), then the experiments' items (`experiments:` in the config).
    public func items(for target: String) -> [WorkItem] {
        let conds = config.conditions.sorted()
        let exhaustive = config.experiments.exhaustive ? mixtures(for: target).flatMap { m in conds.map { item(m, $0) } } : []
        return exhaustive + experimentItems(for: target)
    }

    /// Every work item, target by target.
    public func allItems() -> [WorkItem] { targets.flatMap { items(for: $0) } }

    /// Shards of at most `shardSize` items, each holding one target's items, shard indices
    /// consecutive from 0. Without `tokenEstimates`: targets in sorted order, items in canonical
    /// order. With them: a shard also ends before its estimated cost passes twice the mean shard's
    /// (one costly item still makes a shard), and shards go out costliest first (ties in plan order).
    public func shards() -> [Shard] {
        var out: [(target: String, items: [WorkItem], cost: Double)] = []
        let size = config.shardSize
        let perTarget = targets.map { items(for: $0) }
        var budget = Double.infinity
        if tokenEstimates != nil {
            let all = perTarget.flatMap { $0 }
            let total = all.reduce(0) { $0 + itemCost($1) }
            let count = max(1, (all.count + size - 1) / size)
            budget = max(all.map(itemCost).max() ?? 0, 2 * total / Double(count))
        }
        for (t, items) in zip(targets, perTarget) {
            var current: [WorkItem] = [], cost = 0.0
            for item in items {
                let c = itemCost(item)
                if !current.isEmpty && (current.count == size || cost + c > budget) {
                    out.append((t, current, cost))
                    current = []; cost = 0
                }
                current.append(item); cost += c
            }
            if !current.isEmpty { out.append((t, current, cost)) }
        }
        if tokenEstimates != nil {
            out = out.enumerated().sorted { a, b in a.element.cost != b.element.cost ? a.element.cost > b.element.cost : a.offset < b.offset }.map(\.element)
        }
        return out.enumerated().map { Shard(index: $0.offset, target: $0.element.target, items: $0.element.items) }
    }

    /// An item's estimated encoder cost, in token-forward units: examples × tokens per example ×
    /// a factor for the condition (clean 1; FGSM 3: forward, backward, forward; TextFooler about
    /// 2 × tokens queries per attacked example).
    public func itemCost(_ item: WorkItem) -> Double {
        let tokens = tokenEstimates?[item.target] ?? Double(config.maxLength) / 2
        let examples = Double(config.testCap(for: item.target) ?? 1000)
        switch item.condition {
        case .clean: return examples * tokens
        case .fgsm: return 3 * examples * tokens
        case .textfooler: return Double(min(config.textfooler.cap(for: item.target), Int(examples))) * tokens * 2 * tokens
        }
    }
}

/// C(n, k) (exact for the sizes used here).
public func binomial(_ n: Int, _ k: Int) -> Int {
    guard k >= 0, k <= n else { return 0 }
    var r = 1
    for i in 0..<min(k, n - k) { r = r * (n - i) / (i + 1) }
    return r
}
