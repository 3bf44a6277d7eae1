import Adapters
import Datasets
import Encoder
import Foundation
import Report
import Tensor

// The study's experiments besides the exhaustive average (the `experiments:` block of a sweep
// config), as work items in the same plan and journal:
//
//   experiments:
//     exhaustive: true                 # every mixture containing the target (default true)
//     greedy: {conditions: [clean]}    # greedy FSD mixing, minimising and maximising, l = 2 … n
//     pruning: {sparsities: [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]}   # single adapters, magnitude-pruned
//     sparse: {sparsities: [0.8, 0.9], layers: 1, mixtures_per_size: 20}
//     ties: {density: 0.2, mixtures_per_size: 20}
//     dare: {p: 0.5, seed: 0, mixtures_per_size: 20}
//
// Each block takes `conditions` (default [clean]). sparse, ties and dare run on the exhaustive
// mixtures of size ≥ 2 (all of them, or `mixtures_per_size` per target and size, chosen by a hash
// of the mixture so that every run picks the same ones).

/// What produced a work item.
public enum Experiment: String, Sendable, Codable, CaseIterable, Comparable {
    /// Every mixture that contains the target, by the config's `mixing` strategy.
    case exhaustive
    /// The target and the l − 1 adapters of smallest FSD to it, averaged (greedy FSD mixing).
    case greedyMin = "greedy-min"
    /// The target and the l − 1 adapters of largest FSD to it, averaged (its worst-case mirror).
    case greedyMax = "greedy-max"
    /// The target's adapter alone, magnitude-pruned (whole body) to a sparsity.
    case prune
    /// Sparse mixing (the study's Alg. 4): each member's most conflicting layer(s) pruned, then averaged.
    case sparse
    /// TIES merging (trim, elect sign, disjoint mean).
    case ties
    /// DARE (drop and rescale), then the mean.
    case dare
    /// AdapterSoup's selection: the target and the l − 1 domains of most similar sentence-embedding
    /// centroids, averaged.
    case similarity

    public static func < (a: Experiment, b: Experiment) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// How one work item's adapter is made: the experiment, the mixing strategy and its parameters.
public struct Recipe: Sendable, Hashable, Codable {
    public var experiment: Experiment
    /// A `MixStrategy` raw value, or "prune".
    public var strategy: String
    public var parameters: [String: Double]

    public init(experiment: Experiment, strategy: String, parameters: [String: Double] = [:]) {
        self.experiment = experiment
        self.strategy = strategy
        self.parameters = parameters
    }
}

/// One experiment block's settings.
public struct ExperimentSpec: Sendable, Equatable {
    public var conditions: [SweepCondition] = [.clean]
    /// pruning and sparse: the sparsities (fractions of weights zeroed).
    public var sparsities: [Double] = []
    /// sparse: layers pruned per member; ties: density; dare: p and seed.
    public var parameters: [String: Double] = [:]
    /// sparse, ties, dare: at most this many mixtures per target and size (nil: all).
    public var mixturesPerSize: Int?

    public init(conditions: [SweepCondition] = [.clean], sparsities: [Double] = [], parameters: [String: Double] = [:],
                mixturesPerSize: Int? = nil) {
        self.conditions = conditions
        self.sparsities = sparsities
        self.parameters = parameters
        self.mixturesPerSize = mixturesPerSize
    }
}

/// The `experiments:` block.
public struct ExperimentSettings: Sendable, Equatable {
    public var exhaustive = true
    /// By block name: greedy, pruning, sparse, ties, dare.
    public var blocks: [String: ExperimentSpec] = [:]

    public init(exhaustive: Bool = true, blocks: [String: ExperimentSpec] = [:]) {
        self.exhaustive = exhaustive
        self.blocks = blocks
    }

    /// Only the exhaustive sweep (what configs without the block mean).
    public var isDefault: Bool { exhaustive && blocks.isEmpty }

    /// Block names and the keys each takes.
    static let blockKeys: [String: Set<String>] = [
        "greedy": ["conditions"],
        "pruning": ["conditions", "sparsities"],
        "sparse": ["conditions", "sparsities", "layers", "mixtures_per_size"],
        "ties": ["conditions", "density", "mixtures_per_size"],
        "dare": ["conditions", "p", "seed", "mixtures_per_size"],
        "similarity": ["conditions", "sample"],
    ]

    /// Every condition any experiment evaluates under (the test splits and resources they need).
    public var conditions: Set<SweepCondition> { Set(blocks.values.flatMap(\.conditions)) }

    var canonical: [String: Any] {
        var out: [String: Any] = ["exhaustive": exhaustive]
        for (name, spec) in blocks {
            var b: [String: Any] = ["conditions": spec.conditions.sorted().map(\.rawValue)]
            if !spec.sparsities.isEmpty { b["sparsities"] = spec.sparsities.sorted().map(\.description) }
            for (k, v) in spec.parameters { b[k == "prune_layers" ? "layers" : k] = v.description }
            if let m = spec.mixturesPerSize { b["mixtures_per_size"] = m }
            out[name] = b
        }
        return out
    }

    /// Parses the block; `number`, `integer` and `conditionList` are the config parser's own checks.
    static func parse(_ value: Any, fail: (String, String) -> SweepConfigError,
                      number: (Any?, String) throws -> Double, integer: (Any?, String, Int) throws -> Int,
                      conditionList: (Any?, String) throws -> [SweepCondition]) throws -> ExperimentSettings {
        guard let map = value as? [String: Any] else { throw fail("experiments", "expected a mapping of experiment blocks") }
        // Whole numbers; the canonical JSON writes them as text ("7.0"), which reads back here too.
        func whole(_ v: Any?, _ key: String, _ lo: Int) throws -> Int {
            if v is Int { return try integer(v, key, lo) }
            let d = try number(v, key)
            guard d == d.rounded(), d >= Double(lo), d <= Double(Int32.max) else { throw fail(key, "expected a whole number ≥ \(lo), got \(d)") }
            return Int(d)
        }
        var settings = ExperimentSettings()
        let known = Set(blockKeys.keys).union(["exhaustive"])
        for key in map.keys.sorted() where !known.contains(key) {
            throw fail("experiments.\(key)", "unknown experiment (known: \(known.sorted().joined(separator: ", ")))")
        }
        if let e = map["exhaustive"] {
            guard let b = e as? Bool else { throw fail("experiments.exhaustive", "expected true or false") }
            settings.exhaustive = b
        }
        for name in blockKeys.keys.sorted() {
            guard let raw = map[name], !(raw is NSNull) else { continue }
            let where_ = "experiments.\(name)"
            var block: [String: Any] = [:]
            if let b = raw as? Bool {
                guard b else { continue }
            } else {
                guard let m = raw as? [String: Any] else { throw fail(where_, "expected a mapping (or true)") }
                block = m
            }
            for k in block.keys.sorted() where !blockKeys[name]!.contains(k) {
                throw fail("\(where_).\(k)", "unknown key (known: \(blockKeys[name]!.sorted().joined(separator: ", ")))")
            }
            var spec = ExperimentSpec()
            if let c = block["conditions"] { spec.conditions = try conditionList(c, "\(where_).conditions") }
            if let s = block["sparsities"] {
                guard let list = s as? [Any], !list.isEmpty else { throw fail("\(where_).sparsities", "expected a non-empty list of fractions") }
                var seen = Set<Double>()
                for (i, v) in list.enumerated() {
                    let x = try number(v, "\(where_).sparsities[\(i)]")
                    guard (0...1).contains(x) else { throw fail("\(where_).sparsities[\(i)]", "a sparsity is a fraction in 0…1, got \(x)") }
                    guard seen.insert(x).inserted else { throw fail("\(where_).sparsities[\(i)]", "\(x) is listed twice") }
                }
                spec.sparsities = seen.sorted()
            }
            switch name {
            case "pruning":
                if spec.sparsities.isEmpty { spec.sparsities = [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0] }
            case "sparse":
                if spec.sparsities.isEmpty { spec.sparsities = [0.8, 0.9] }
                spec.parameters["prune_layers"] = Double(try block["layers"].map { try whole($0, "\(where_).layers", 1) } ?? 1)
            case "ties":
                let d = try block["density"].map { try number($0, "\(where_).density") } ?? 0.2
                guard d > 0, d <= 1 else { throw fail("\(where_).density", "must be in (0, 1], got \(d)") }
                spec.parameters["density"] = d
            case "dare":
                let p = try block["p"].map { try number($0, "\(where_).p") } ?? 0.5
                guard p >= 0, p < 1 else { throw fail("\(where_).p", "must be in [0, 1), got \(p)") }
                spec.parameters["p"] = p
                spec.parameters["seed"] = Double(try block["seed"].map { try whole($0, "\(where_).seed", 0) } ?? 0)
            case "similarity":
                spec.parameters["sample"] = Double(try block["sample"].map { try whole($0, "\(where_).sample", 1) } ?? 1000)
            default:
                break
            }
            if let m = block["mixtures_per_size"], !(m is NSNull) { spec.mixturesPerSize = try integer(m, "\(where_).mixtures_per_size", 1) }
            settings.blocks[name] = spec
        }
        return settings
    }
}

/// A domain × domain matrix over the sweep's domains (sorted): the adapters' pairwise FSD (what
/// greedy FSD mixing ranks by) or the domains' centroid similarity (what AdapterSoup's selection
/// ranks by). Both are derived from the plan's artifacts, recorded in the journal and drawn by the report.
public struct DomainMatrix: Sendable, Equatable, Codable {
    public var domains: [String]
    public var matrix: [[Double]]

    public init(domains: [String], matrix: [[Double]]) {
        self.domains = domains
        self.matrix = matrix
    }

    public func value(_ a: String, _ b: String) -> Double? {
        guard let i = domains.firstIndex(of: a), let j = domains.firstIndex(of: b) else { return nil }
        return matrix[i][j]
    }

    /// `target`, then the l − 1 other domains by their value in its row, largest or smallest first
    /// (ties in name order).
    public func ranked(from target: String, count l: Int, largestFirst: Bool) -> [String] {
        guard let t = domains.firstIndex(of: target) else { return [target] }
        return DomainSimilarity.select(matrix, target: t, l: l, largestFirst: largestFirst).map { domains[$0] }
    }

    /// The matrix with its diagonal left empty (NaN), for heatmaps whose colours should span the pairs.
    public var offDiagonal: [[Double]] {
        matrix.enumerated().map { i, row in row.enumerated().map { j, v in i == j ? Double.nan : v } }
    }
}

/// The pairwise FSD of the sweep's adapters.
public typealias FSDTable = DomainMatrix
/// The domains' sentence-embedding centroid similarity (the study's Section 3.1).
public typealias SimilarityTable = DomainMatrix

extension DomainMatrix {
    /// Loads every domain's adapter of `config` and counts sign differences (exact, so the same on
    /// every machine).
    public static func signDifference(config: SweepConfig, threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> FSDTable {
        let domains = config.sortedDomains
        let encoder = try EncoderConfig.load(contentsOf: URL(fileURLWithPath: config.baseModel).appendingPathComponent("config.json"))
        let members = try domains.map { d -> MixMember in
            let (adapter, info) = try Adapter.load(from: URL(fileURLWithPath: config.adapterFolder(for: d)), encoder: encoder,
                                                   expectedBaseSHA256: nil)
            return MixMember(name: d, adapter: adapter, baseModelSHA256: info.baseModelSHA256)
        }
        return FSDTable(domains: domains, matrix: try Mixing.fsd(members, threads: threads).matrix)
    }
}

extension SweepPlan {
    /// The members of greedy FSD mixing for `target` and size `l`: the target, then the l − 1 others
    /// of smallest (minimising) or largest (maximising) FSD to it; ties in name order.
    public static func greedyMembers(target: String, l: Int, maximise: Bool, fsd: FSDTable) -> [String] {
        fsd.ranked(from: target, count: l, largestFirst: maximise)
    }

    /// Up to `limit` of `mixtures`, chosen by a hash of each one (the same every run); all when nil.
    static func sample(_ mixtures: [Mixture], limit: Int?) -> [Mixture] {
        guard let limit, mixtures.count > limit else { return mixtures }
        let ranked = mixtures.map { m in (sha256Hex(Data("\(m.target)|\(m.members.joined(separator: ","))".utf8)), m) }
            .sorted { $0.0 < $1.0 }
        let chosen = Set(ranked.prefix(limit).map(\.1))
        return mixtures.filter { chosen.contains($0) }
    }

    /// The experiment items of one target, in a fixed order: greedy (min, then max, by l),
    /// pruning (by sparsity), sparse, ties, dare (by size, then members).
    func experimentItems(for target: String) -> [WorkItem] {
        let spec = config.experiments.blocks
        guard !spec.isEmpty else { return [] }
        var out: [WorkItem] = []
        func add(_ mixture: Mixture, _ recipe: Recipe, _ conditions: [SweepCondition]) {
            for c in conditions.sorted() { out.append(item(mixture, c, recipe: recipe)) }
        }
        let n = targets.count
        if let g = spec["greedy"], let fsd {
            for maximise in [false, true] where n >= 2 {
                for l in 2...n {
                    let members = Self.greedyMembers(target: target, l: l, maximise: maximise, fsd: fsd)
                    add(Mixture(target: target, members: members),
                        Recipe(experiment: maximise ? .greedyMax : .greedyMin, strategy: MixStrategy.average.rawValue, parameters: ["l": Double(l)]),
                        g.conditions)
                }
            }
        }
        if let g = spec["similarity"], let similarity, n >= 2 {
            for l in 2...n {
                add(Mixture(target: target, members: similarity.ranked(from: target, count: l, largestFirst: true)),
                    Recipe(experiment: .similarity, strategy: MixStrategy.average.rawValue, parameters: ["l": Double(l)]), g.conditions)
            }
        }
        if let p = spec["pruning"] {
            for s in p.sparsities {
                add(Mixture(target: target, members: [target]), Recipe(experiment: .prune, strategy: "prune", parameters: ["sparsity": s]), p.conditions)
            }
        }
        let multi = mixtures(for: target).filter { $0.k >= 2 }
        let bySize = Dictionary(grouping: multi, by: \.k)
        func chosen(_ limit: Int?) -> [Mixture] {
            bySize.keys.sorted().flatMap { Self.sample(bySize[$0]!, limit: limit) }
        }
        if let s = spec["sparse"] {
            let ms = chosen(s.mixturesPerSize)
            for sparsity in s.sparsities {
                var params = s.parameters
                params["sparsity"] = sparsity
                for m in ms { add(m, Recipe(experiment: .sparse, strategy: MixStrategy.sparse.rawValue, parameters: params), s.conditions) }
            }
        }
        if let t = spec["ties"] {
            for m in chosen(t.mixturesPerSize) { add(m, Recipe(experiment: .ties, strategy: MixStrategy.ties.rawValue, parameters: t.parameters), t.conditions) }
        }
        if let d = spec["dare"] {
            for m in chosen(d.mixturesPerSize) { add(m, Recipe(experiment: .dare, strategy: MixStrategy.dare.rawValue, parameters: d.parameters), d.conditions) }
        }
        return out
    }
}

extension MixOptions {
    /// Options for a recipe's strategy and parameters (names as in sweep configs).
    public static func from(strategy: MixStrategy, parameters: [String: Double], threads: Int) -> MixOptions {
        var options = MixOptions(strategy: strategy)
        options.threads = max(1, threads)
        if let v = parameters["lambda"] { options.lambda = v }
        if let v = parameters["density"] { options.density = v }
        if let v = parameters["p"] { options.dropRate = v }
        if let v = parameters["seed"] { options.seed = UInt64(v) }
        if let v = parameters["l"] { options.l = Int(v) }
        if let v = parameters["prune_layers"] { options.pruneLayers = Int(v) }
        if let v = parameters["sparsity"] { options.sparsity = v }
        return options
    }
}

extension DomainMatrix {
    /// The domains' centroid similarity (the study's Section 3.1): each domain's documents embedded
    /// by the packaged all-MiniLM-L6-v2 (mean-pooled, normalised; it stands in for the Universal
    /// Sentence Encoder the study used), averaged per domain, cosine between the centroids.
    /// `documents` are each domain's, in `domains` order.
    public static func centroidSimilarity(domains: [String], documents: [[String]],
                                          threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> SimilarityTable {
        let encoder = try PretrainedEncoder(directory: PretrainedEncoder.defaultModelDirectory())
        let runner = EncoderRunner(model: encoder.model, threads: threads)
        let embeddings = try documents.map { docs in
            try runner.embed(try encoder.encode(docs, maxLength: 128), padId: encoder.tokenizer.padId, pooling: .mean, normalize: true)
        }
        return SimilarityTable(domains: domains, matrix: DomainSimilarity.centroidCosine(embeddings))
    }

    /// `sample` training documents of each domain (all when fewer), chosen by a seeded shuffle; a
    /// text pair is embedded as its two texts joined by a space.
    public static func sampleDocuments(_ domain: String, catalog: DomainCatalog, sample: Int, seed: UInt64) throws -> [String] {
        let train = try catalog.load(domain, options: SplitOptions(seed: seed)).train
        var order = Array(train.indices)
        var rng = SplitMix64(seed: seed ^ 0x5eed_51a1)
        if order.count > 1 {
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        }
        return order.prefix(sample).map { i in train[i].textPair.map { p in train[i].text + " " + p } ?? train[i].text }
    }
}
