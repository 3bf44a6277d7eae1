import Foundation

/// How `Mixing.mix` combines the members' bodies (docs/mixing.md).
public enum MixStrategy: String, CaseIterable, Sendable {
    /// θ = 1/k·Σθᵢ (the study's Eq. 1, AdapterSoup).
    case average
    /// θ = Σwᵢθᵢ / Σwᵢ.
    case weighted
    /// Alg. 1: the l members of smallest mean FSD, averaged.
    case greedyMin = "greedy-min"
    /// The target plus the l − 1 members least in conflict with it (smallest FSD to the target), averaged.
    case greedyTarget = "greedy-target"
    /// The l members of largest mean FSD, averaged (the study's lower-bound comparison).
    case greedyMax = "greedy-max"
    /// Alg. 4: each member's m most conflicting layers pruned, then averaged.
    case sparse
    /// λ·Σwᵢθᵢ.
    case taskArithmetic = "task-arithmetic"
    /// Trim, elect sign, disjoint mean.
    case ties
    /// Drop and rescale, then λ·Σwᵢθᵢ.
    case dare
    /// Drop and rescale, then elect sign and disjoint mean.
    case dareTies = "dare-ties"

    /// Strategies that take a linear combination of the (selected) members, where the LoRA modes apply.
    public var isLinear: Bool { [.average, .weighted, .greedyMin, .greedyTarget, .greedyMax, .taskArithmetic].contains(self) }
    public var isGreedy: Bool { [.greedyMin, .greedyTarget, .greedyMax].contains(self) }
}

/// The ranking rule of greedy adapter mixing.
public enum GreedyMode: String, Sendable {
    /// Alg. 1: the l adapters of smallest mean FSD (row mean of S over the others).
    case minimum
    /// The target and the l − 1 adapters of smallest FSD to it.
    case targetAnchored
    /// The l adapters of largest mean FSD.
    case maximum
}

/// Options of `Mixing.mix`; each strategy reads only its own.
public struct MixOptions: Sendable {
    public var strategy: MixStrategy
    /// Per-member weights (weighted; also scale the members in task arithmetic, TIES, DARE and sparse).
    public var weights: [Double]?
    /// Greedy: how many adapters to mix.
    public var l: Int?
    /// TIES: the fraction of each body kept by the trim (Yadav et al.: 0.2).
    public var density: Double = 0.2
    /// TIES: where the trim ranks magnitudes.
    public var trimScope: PruningScope = .adapter
    /// DARE: the drop probability p.
    public var dropRate: Double = 0.5
    /// DARE: the seed of the drop masks.
    public var seed: UInt64 = 0
    /// Task arithmetic, TIES, DARE: the scale λ.
    public var lambda: Double = 1
    /// LoRA adapters, linear strategies: how A and B are combined.
    public var loraMode: LoRAMixMode = .separate
    /// Sparse mixing: layers pruned per member (m) and their sparsity.
    public var pruneLayers: Int = 1
    public var sparsity: Double = 0.9
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    public init(strategy: MixStrategy) { self.strategy = strategy }
}

/// A mixture and what went into it.
public struct MixResult: @unchecked Sendable {  // the adapter is new and not shared yet
    /// The mixed body with the target's head and labels.
    public var adapter: Adapter
    /// Names of the members whose bodies were combined, in selection order, with their weights.
    public var selected: [String]
    public var weights: [Double]
    /// The FSD of the candidate pool, for strategies that use it (greedy, sparse).
    public var fsd: FSDResult?
    /// Sparse mixing: the layers pruned in each member.
    public var prunedLayers: [String: [Int]]
    /// FSD(target, mixture): the fraction of the target's body weights whose sign the mixture flips
    /// (nil after the LoRA delta modes, whose factors are in another basis).
    public var weightsChangingDirection: Double?
    /// What to record in the adapter's config (strategy, target, members, selection, parameters).
    public var record: [String: Any]
}

extension Mixing {
    /// Greedy adapter mixing (the study's Alg. 1) over the FSD matrix `s` of a pool: the indices of the
    /// `l` adapters to mix. Ties are broken by pool order.
    /// - minimum: the l smallest mean FSD (row mean of S over the others);
    /// - targetAnchored: `target`, then the l − 1 others of smallest S[target][j];
    /// - maximum: the l largest mean FSD.
    public static func greedySelection(_ s: [[Double]], l: Int, mode: GreedyMode, target: Int? = nil) -> [Int] {
        let k = s.count
        let mean = FSDResult.rowMeans(s)
        switch mode {
        case .minimum:
            return Array((0..<k).sorted { (mean[$0], $0) < (mean[$1], $1) }.prefix(l))
        case .maximum:
            return Array((0..<k).sorted { mean[$0] != mean[$1] ? mean[$0] > mean[$1] : $0 < $1 }.prefix(l))
        case .targetAnchored:
            guard let t = target else { preconditionFailure("the target-anchored form needs the target's index") }
            let others = (0..<k).filter { $0 != t }.sorted { (s[t][$0], $0) < (s[t][$1], $1) }
            return [t] + others.prefix(max(0, l - 1))
        }
    }

    /// Sparse mixing's pruning (the study's Alg. 4): for each adapter i, the per-layer mean FSD against the
    /// others, meanᵢ(l) = Σ_{j≠i} S_l[i][j] / (k − 1); its `m` layers of largest meanᵢ(l) (ties: the lower
    /// layer) are pruned by magnitude to `sparsity` (each layer ranked on its own). With one adapter
    /// there is no conflict and nothing is pruned. Returns the pruned bodies and the layers pruned.
    public static func sparsePruned(_ adapters: [Adapter], fsd: FSDResult, pruneLayers m: Int, sparsity: Double) -> (bodies: [[Float]], layers: [[Int]]) {
        let k = adapters.count
        let layerMean = fsd.layerMeanFSD  // [layer][i]
        let ranges = adapters[0].layout.layerRanges.filter { !$0.isEmpty }
        var bodies: [[Float]] = [], chosen: [[Int]] = []
        for i in 0..<k {
            var body = adapters[i].bodyValues
            var layers: [Int] = []
            if k > 1 && m > 0 {
                layers = Array((0..<ranges.count).sorted { layerMean[$0][i] != layerMean[$1][i] ? layerMean[$0][i] > layerMean[$1][i] : $0 < $1 }.prefix(m))
                body.withUnsafeMutableBufferPointer { b in _ = magnitudePrune(b, groups: layers.map { ranges[$0] }, sparsity: sparsity) }
            }
            bodies.append(body)
            chosen.append(layers.sorted())
        }
        return (bodies, chosen)
    }

    /// Mixes `members` by `options.strategy` and puts the target's head and labels on the result.
    /// The target, if it is to be mixed, is listed among the members (the greedy-target strategy always
    /// mixes it). Refuses adapters of other methods, sizes or base models, naming them.
    public static func mix(target: MixMember, members: [MixMember], options: MixOptions) throws -> MixResult {
        guard !members.isEmpty else { throw MixingError("no members to mix") }
        try checkCompatible([target] + members)
        let strategy = options.strategy
        let method = target.adapter.config.method
        let layers = target.adapter.layout.layerRanges.filter { !$0.isEmpty }.count
        var record: [String: Any] = ["strategy": strategy.rawValue, "target": target.name, "members": members.map(\.name),
                                     "head": "target"]
        // Options.
        if let w = options.weights {
            guard w.count == members.count else {
                throw MixingError("\(w.count) weights for \(members.count) members — give one weight per member, in the same order")
            }
            guard w.allSatisfy(\.isFinite) else { throw MixingError("weights must be finite numbers") }
            switch strategy {
            case .average: throw MixingError("the average takes no weights — use the weighted strategy")
            case .greedyMin, .greedyTarget, .greedyMax: throw MixingError("greedy mixing averages its selection with equal weights; it takes no weights")
            case .weighted, .sparse, .ties, .dareTies:
                guard w.allSatisfy({ $0 >= 0 }), w.reduce(0, +) > 0 else {
                    throw MixingError("\(strategy.rawValue) needs weights ≥ 0 that are not all 0 (got \(w))")
                }
            case .taskArithmetic, .dare: break
            }
        } else if strategy == .weighted {
            throw MixingError("the weighted strategy needs weights, one per member")
        }
        if options.loraMode != .separate {
            guard method == .lora else { throw MixingError("LoRA mode \(options.loraMode.rawValue) applies to LoRA adapters only (these are \(method.rawValue))") }
            guard strategy.isLinear else {
                throw MixingError("LoRA mode \(options.loraMode.rawValue) applies to linear strategies (average, weighted, greedy, task-arithmetic); \(strategy.rawValue) works on A and B separately")
            }
        }
        if method == .lora { record["lora_mode"] = options.loraMode.rawValue }
        guard options.lambda.isFinite else { throw MixingError("lambda must be a finite number") }

        var selectedMembers = members
        var weights = options.weights ?? [Double](repeating: 1, count: members.count)
        var fsdResult: FSDResult?
        var prunedLayers: [String: [Int]] = [:]
        var layout = target.adapter.layout
        var body: [Float]

        switch strategy {
        case .average, .weighted, .taskArithmetic:
            let coefficients = strategy == .taskArithmetic ? weights.map { options.lambda * $0 } : weights
            let divisor = strategy == .taskArithmetic ? 1 : weights.reduce(0, +)
            if strategy == .taskArithmetic { record["lambda"] = options.lambda }
            (layout, body) = try linear(members.map(\.adapter), coefficients: coefficients, divisor: divisor, target: target.adapter, options: options)

        case .greedyMin, .greedyTarget, .greedyMax:
            var pool = members
            var anchor: Int?
            if strategy == .greedyTarget {
                pool = [target] + members.filter { $0.name != target.name }
                anchor = 0
            }
            guard let l = options.l else { throw MixingError("greedy mixing needs l, the number of adapters to mix") }
            guard l >= 1, l <= pool.count else {
                throw MixingError("l = \(l) but the pool has \(pool.count) adapter(s)\(strategy == .greedyTarget ? " (the target and the other members)" : "") — choose 1…\(pool.count)")
            }
            let f = try fsd(pool, threads: options.threads)
            fsdResult = f
            let mode: GreedyMode = strategy == .greedyMin ? .minimum : strategy == .greedyMax ? .maximum : .targetAnchored
            let picked = greedySelection(f.matrix, l: l, mode: mode, target: anchor)
            selectedMembers = picked.map { pool[$0] }
            weights = [Double](repeating: 1, count: picked.count)
            record["l"] = l
            record["pool"] = pool.map(\.name)
            record["mean_fsd"] = Dictionary(pool.indices.map { (pool[$0].name, f.meanFSD[$0]) }, uniquingKeysWith: { a, _ in a })
            if strategy == .greedyTarget { record["fsd_to_target"] = Dictionary(pool.indices.map { (pool[$0].name, f.matrix[0][$0]) }, uniquingKeysWith: { a, _ in a }) }
            (layout, body) = try linear(selectedMembers.map(\.adapter), coefficients: weights, divisor: Double(picked.count), target: target.adapter, options: options)

        case .sparse:
            guard options.pruneLayers >= 0, options.pruneLayers <= layers else {
                throw MixingError("sparse mixing prunes m = \(options.pruneLayers) layers but the adapters have \(layers) — choose 0…\(layers)")
            }
            guard options.sparsity.isFinite, options.sparsity >= 0, options.sparsity <= 1 else {
                throw MixingError("sparsity must be in [0, 1] (is \(options.sparsity))")
            }
            let f = try fsd(members, threads: options.threads)
            fsdResult = f
            let (pruned, chosen) = sparsePruned(members.map(\.adapter), fsd: f, pruneLayers: options.pruneLayers, sparsity: options.sparsity)
            for (m, ls) in zip(members, chosen) { prunedLayers[m.name] = ls }
            record["prune_layers"] = options.pruneLayers
            record["sparsity"] = options.sparsity
            record["pruned_layers"] = prunedLayers
            record["mean_fsd"] = Dictionary(members.indices.map { (members[$0].name, f.meanFSD[$0]) }, uniquingKeysWith: { a, _ in a })
            body = withBuffers(pruned) { linearCombination($0, coefficients: weights, divisor: weights.reduce(0, +), threads: options.threads) }

        case .ties:
            guard options.density.isFinite, options.density > 0, options.density <= 1 else {
                throw MixingError("density must be in (0, 1] (is \(options.density))")
            }
            record["density"] = options.density
            record["trim_scope"] = options.trimScope.rawValue
            record["lambda"] = options.lambda
            body = ties(members.map(\.adapter.body), weights: weights, density: options.density,
                        groups: pruningGroups(layout, scope: options.trimScope), lambda: options.lambda, threads: options.threads)

        case .dare, .dareTies:
            guard options.dropRate.isFinite, options.dropRate >= 0, options.dropRate < 1 else {
                throw MixingError("the drop probability p must be in [0, 1) (is \(options.dropRate))")
            }
            record["p"] = options.dropRate
            record["seed"] = options.seed <= UInt64(Int64.max) ? Int(options.seed) as Any : String(options.seed) as Any
            record["lambda"] = options.lambda
            let bodies = members.map(\.adapter.body)
            body = strategy == .dare
                ? dareMerge(bodies, weights: weights, p: options.dropRate, seed: options.seed, lambda: options.lambda, threads: options.threads)
                : dareTies(bodies, weights: weights, p: options.dropRate, seed: options.seed, lambda: options.lambda, threads: options.threads)
        }

        if let i = body.firstIndex(where: { !$0.isFinite }) {
            throw MixingError("the mixture has a non-finite value (\(body[i]) at body index \(i)) — check the weights and λ")
        }
        let adapter = target.adapter.replacingBody(body, layout: layout)
        // After a delta mode the factors are in another basis (or of another rank): their signs are not comparable.
        let comparable = method != .lora || options.loraMode == .separate || !strategy.isLinear
        let changing = comparable ? weightsChangingDirection(target: target.adapter, mixture: adapter) : nil
        record["selected"] = selectedMembers.map(\.name)
        record["weights"] = weights
        if let changing { record["weights_changing_direction"] = changing }
        if layout.config.loraRank != target.adapter.config.loraRank { record["lora_rank"] = layout.config.loraRank }
        return MixResult(adapter: adapter, selected: selectedMembers.map(\.name), weights: weights, fsd: fsdResult,
                         prunedLayers: prunedLayers, weightsChangingDirection: changing, record: record)
    }

    /// A linear combination of bodies, through the LoRA mode for LoRA adapters; the layout is the target's
    /// unless the LoRA mode stacks the factors to a higher rank.
    static func linear(_ adapters: [Adapter], coefficients: [Double], divisor: Double, target: Adapter, options: MixOptions) throws -> (AdapterLayout, [Float]) {
        guard divisor != 0 else { throw MixingError("the weights sum to 0") }
        if adapters[0].config.method == .lora {
            let r = loraCombination(adapters, coefficients: coefficients, divisor: divisor, mode: options.loraMode,
                                    classes: target.layout.head.classes, threads: options.threads)
            return (r.layout ?? target.layout, r.body)
        }
        return (target.layout, linearCombination(adapters.map(\.body), coefficients: coefficients, divisor: divisor, threads: options.threads))
    }
}
