import Adapters
import Attack
import Datasets
import Dispatch
import Encoder
import Foundation

/// A refusal of an evaluator, in one sentence that names the file or domain, what differs and what to do.
public struct EvaluatorError: Error, CustomStringConvertible, Equatable, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The sweep's real evaluator: each work item's mixture, merged from the domains' adapters with the
/// target's head, evaluated on the target's test split, clean or under FGSM.
///
/// At start it checks this worker's copies against the coordinator's plan (`ArtifactHashes`): the base
/// model's weights and every adapter file. Per target it loads the test split once (the config's seed
/// and that domain's cap), checks its hash against the plan and tokenises it; per mixture it merges once
/// for all the conditions that follow it in the shard, and a shard's clean items of several mixtures
/// run in one pool of tasks (`mixturesPerPool`). Batches are fixed (`AdaptedRunner(fixedBatches:)`),
/// so the correctness bits do not depend on the thread count.
///
/// Not thread-safe: it keeps caches (adapters, test splits, sign packs, pairwise FSD); call it from one
/// thread at a time, as `ShardEvaluator` says. It uses `threads` threads inside each call.
public final class MixtureEvaluator: ShardEvaluator {
    public let config: SweepConfig
    public let artifacts: ArtifactHashes
    public let catalog: DomainCatalog
    public let threads: Int

    let pretrained: PretrainedEncoder
    let mixOptions: MixOptions
    /// Loaded adapters, by domain.
    private var adapters: [String: MixMember] = [:]
    /// Tokenised, hash-checked test splits, by target.
    private var splits: [String: TestSplit] = [:]
    /// Each domain's body signs, packed once.
    private var packs: [String: SignPack] = [:]
    /// FSD of two domains' adapters, by "a|b" with a < b.
    private var pairFSD: [String: Double] = [:]
    /// When set, a target's labels and test examples come from here (e.g. the canonical test split
    /// fetched from the coordinator) instead of the dataset catalog.
    public var testSplitProvider: ((String) throws -> (labels: [String], examples: [Example]))?

    /// A target's test split, ready to run.
    struct TestSplit {
        var encodings: [Encoding]
        /// The true label of each example, as an index into the target head's labels.
        var truth: [Int]
        /// The examples themselves (TextFooler attacks their texts) and their domain.
        var examples: [Example] = []
        var domain: String?
        /// Everything before the first adapter, per fixed batch (computed on the first clean item).
        var prefixes: [SharedPrefix]?
    }

    /// Clean items start from the target's shared prefix (embeddings, and layer 1 up to the first
    /// adapter), computed once per target: the same logits bit for bit, less work per mixture. On by
    /// default; `ADAPTERMIX_NO_SHARED_PREFIX=1` in the environment (inherited by workers) turns it off.
    public var sharePrefix = ProcessInfo.processInfo.environment["ADAPTERMIX_NO_SHARED_PREFIX"] == nil

    /// Clean items of LoRA mixtures run with the LoRA folded into the base weights (one small GEMM
    /// per adapted matrix per mixture, no low-rank products per token): logits within 1e-5 of the
    /// unfolded path, the same predictions. Off by default: folding copies the base weights per
    /// mixture, which cost more than the low-rank products it saves at r = 4 on 200 examples
    /// (docs/benchmarks.md); `ADAPTERMIX_LORA_FOLD=1` turns it on.
    public var foldLoRA = ProcessInfo.processInfo.environment["ADAPTERMIX_LORA_FOLD"] == "1"

    /// The last layer on first tokens only (`AdaptedRunner.clsOnly`): logits within 1e-5, the same
    /// predictions. On by default; `ADAPTERMIX_FULL_LAST_LAYER=1` turns it off.
    public var clsOnly = AdaptedRunner.clsOnlyByDefault

    /// Mixtures evaluated clean per pool of tasks (`AdaptedRunner.predictEach`); 1 = one mixture
    /// at a time, the threads waiting at the end of each for its last batch.
    public lazy var mixturesPerPool = 4 * threads

    /// TextFooler's resources, loaded on first use: GloVe, the sentence encoder, WordNet, and a
    /// synonym table per target (for the words of the examples attacked).
    private var gloVe: GloVeVectors?
    private var sentenceSimilarities: [EncoderSimilarity] = []
    private var wordNet: WordNetPOS?
    private var synonymTables: [String: SynonymTable] = [:]

    /// A merged mixture and its figures.
    struct Merged {
        var adapter: Adapter
        var meanFSD: Double?
        var weightsChangingDirection: Double?
    }

    /// Checks the base model's weights and every domain's adapter folder against `artifacts` (the first
    /// difference throws, naming the file and both hashes), then loads the base model.
    /// `filesVerified`: the caller already checked the base model's and adapters' bytes against
    /// `artifacts` (a worker resolves them through its verifying cache), so they are not hashed again.
    public init(config: SweepConfig, artifacts: ArtifactHashes, catalog: DomainCatalog, threads: Int, filesVerified: Bool = false) throws {
        guard artifacts.evaluator == "mixture" else {
            throw EvaluatorError("the plan was made for the \(artifacts.evaluator) evaluator, not the mixture evaluator — run the workers with the coordinator's evaluator")
        }
        self.config = config
        self.artifacts = artifacts
        self.catalog = catalog
        self.threads = max(1, threads)
        mixOptions = try config.mixOptions(threads: self.threads)

        if !filesVerified { try Self.verifyFiles(config: config, artifacts: artifacts) }
        if config.allConditions.contains(.textfooler) {
            for (name, path) in ArtifactHashes.attackFilePaths(config).sorted(by: { $0.key < $1.key }) {
                let actual = try? ArtifactHashes.hashFile(path)
                guard let expected = artifacts.attackFiles[name], actual == expected else {
                    throw EvaluatorError("\(path) (TextFooler's \(name)): SHA-256 \(actual ?? "(unreadable)") but the coordinator's plan has \(artifacts.attackFiles[name] ?? "none") — install the same packaged resources here ('make setup') as on the coordinator")
                }
            }
        }
        pretrained = try PretrainedEncoder(directory: URL(fileURLWithPath: config.baseModel))
    }

    /// The base model's files and every adapter file against the plan's hashes; the first
    /// difference throws, naming the file and both hashes.
    static func verifyFiles(config: SweepConfig, artifacts: ArtifactHashes) throws {
        let differs = "this worker's copy differs from the coordinator's: copy the coordinator's file here (or, if the coordinator's is stale, make a new plan there)"
        let weights = config.baseModelWeights
        let baseHash: String
        do { baseHash = try ArtifactHashes.hashFile(weights) } catch {
            throw EvaluatorError("\(weights): cannot read the base model's weights (\(error.localizedDescription)) — check base_model in the sweep config")
        }
        guard baseHash == artifacts.baseModel else {
            throw EvaluatorError("\(weights): SHA-256 \(baseHash) but the coordinator's plan has \(artifacts.baseModel) — \(differs)")
        }
        for (name, expected) in artifacts.baseModelFiles.sorted(by: { $0.key < $1.key }) {
            let path = (config.baseModel as NSString).appendingPathComponent(name)
            let actual = try? ArtifactHashes.hashFile(path)
            guard actual == expected else {
                throw EvaluatorError("\(path): SHA-256 \(actual ?? "(unreadable)") but the coordinator's plan has \(expected) — \(differs)")
            }
        }
        for d in config.sortedDomains {
            let folder = config.adapterFolder(for: d)
            guard let expected = artifacts.adapters[d] else {
                throw EvaluatorError("domain \(d): the coordinator's plan has no adapter hashes for it — the plan and the sweep config disagree; use the coordinator's config")
            }
            let actual: [String: String]
            do { actual = try ArtifactHashes.hashFolder(folder) } catch {
                throw EvaluatorError("\(folder): cannot read the adapter folder of domain \(d) (\(error.localizedDescription)) — copy the coordinator's adapters to this worker")
            }
            for name in Set(expected.keys).union(actual.keys).sorted() {
                let path = (folder as NSString).appendingPathComponent(name)
                switch (expected[name], actual[name]) {
                case let (e?, a?) where e != a:
                    throw EvaluatorError("\(path): SHA-256 \(a) but the coordinator's plan has \(e) — \(differs)")
                case let (e?, nil):
                    throw EvaluatorError("\(path): missing on this worker, the coordinator's plan has it with SHA-256 \(e) — \(differs)")
                case let (nil, a?):
                    throw EvaluatorError("\(path): not in the coordinator's plan (SHA-256 \(a) here) — \(differs)")
                default:
                    break
                }
            }
        }
    }

    public func evaluate(target: String, items: [WorkItem]) -> (outcomes: [ItemOutcome], timing: ShardTiming) {
        var timing = ShardTiming()
        let start = now()
        let split: TestSplit
        do { split = try testSplit(target) } catch {
            timing.setup += seconds(since: start)
            return (items.map { ItemOutcome.failed($0.key, "\(error)") }, timing)
        }
        timing.setup += seconds(since: start)

        // Items of one mixture and recipe are consecutive (one per condition): one merge for them all.
        var groups: [ArraySlice<WorkItem>] = []
        var i = 0
        while i < items.count {
            var end = i + 1
            while end < items.count && items[end].mixture == items[i].mixture && items[end].recipe == items[i].recipe { end += 1 }
            groups.append(items[i..<end])
            i = end
        }
        var outcomes: [ItemOutcome] = []
        outcomes.reserveCapacity(items.count)
        // A few mixtures at a time: merged together, then their clean items in one pool of tasks
        // (`AdaptedRunner.predictEach`), the other conditions one by one. Folded LoRA mixtures each
        // hold a copy of the base weights, so they go one at a time.
        let chunk = config.adapterMethod == .lora && foldLoRA ? 1 : max(1, mixturesPerPool)
        for c in stride(from: 0, to: groups.count, by: chunk) {
            let part = groups[c..<min(c + chunk, groups.count)]
            var merged: [Result<Merged, Error>] = []
            for group in part {
                let first = group.first!
                if first.mixture.target != target {
                    merged.append(.failure(EvaluatorError("item of another target in a shard of \(target)")))
                    continue
                }
                do { merged.append(.success(try merge(first.mixture, recipe: first.recipe, timing: &timing))) } catch { merged.append(.failure(error)) }
            }
            // The clean items of the merged mixtures, all at once.
            var ready: [(group: Int, adapter: Adapter)] = []
            for (g, group) in zip(part.indices, part) where group.contains(where: { $0.condition == .clean }) {
                if case .success(let m) = merged[g - c] { ready.append((g, m.adapter)) }
            }
            var clean: [Int: Result<[Bool], Error>] = [:]
            var cleanSeconds = 0.0
            if !ready.isEmpty {
                let start = now()
                do {
                    for (r, bits) in zip(ready, try runClean(ready.map(\.adapter), on: split)) { clean[r.group] = .success(bits) }
                } catch {
                    for r in ready { clean[r.group] = .failure(error) }
                }
                let secs = seconds(since: start)
                timing.evaluate += secs
                cleanSeconds = secs / Double(ready.count)
            }
            for (offset, group) in zip(part.indices, part) {
                let mixture = group.first!.mixture, recipe = group.first!.recipe
                let what = "target \(mixture.target), members \(mixture.members.joined(separator: "+"))"
                    + (recipe.map { r in ", \(r.experiment.rawValue) \(r.parameters.keys.sorted().map { "\($0)=\(r.parameters[$0]!)" }.joined(separator: " "))" } ?? "")
                let m: Merged
                switch merged[offset - c] {
                case .failure(let error):
                    outcomes += group.map { .failed($0.key, "\(what): \(error)") }
                    continue
                case .success(let value):
                    m = value
                }
                for item in group {
                    do {
                        let correct: [Bool], secs: Double
                        if item.condition == .clean, let result = clean[offset] {
                            (correct, secs) = (try result.get(), cleanSeconds)
                        } else {
                            (correct, secs) = try run(m.adapter, condition: item.condition, on: split)
                            timing.evaluate += secs
                        }
                        outcomes.append(ItemOutcome(key: item.key, correctness: correct, meanFSD: m.meanFSD,
                                                    weightsChangingDirection: m.weightsChangingDirection, seconds: secs))
                    } catch {
                        outcomes.append(.failed(item.key, "\(what), \(item.condition.rawValue): \(error)"))
                    }
                }
            }
        }
        return (outcomes, timing)
    }

    // MARK: - Steps

    /// The target's test split, loaded, checked against the plan's hash and tokenised on first use.
    func testSplit(_ domain: String) throws -> TestSplit {
        if let s = splits[domain] { return s }
        let cap = config.testCap(for: domain)
        let loaded: (labels: [String], test: [Example])
        if let testSplitProvider {
            let provided = try testSplitProvider(domain)
            loaded = (provided.labels, provided.examples)
        } else {
            let splits = try catalog.load(domain, options: SplitOptions(seed: config.seed, maxTest: cap))
            loaded = (splits.labels, splits.test)
        }
        let hash = ArtifactHashes.testSplitHash(loaded.test, labels: loaded.labels)
        guard let expected = artifacts.testSplits[domain] else {
            throw EvaluatorError("domain \(domain): the coordinator's plan records no test split hash for it — make the plan with ArtifactHashes.compute(for:catalog:)")
        }
        guard hash == expected else {
            throw EvaluatorError("domain \(domain): the test split here (seed \(config.seed), cap \(cap.map(String.init) ?? "none")) has SHA-256 \(hash) but the coordinator's plan has \(expected) — this worker's copy of the dataset differs from the coordinator's: install the same dataset files (and datasets catalog) as the coordinator")
        }
        let target = try adapter(domain)
        guard target.adapter.labels == loaded.labels else {
            throw EvaluatorError("\(config.adapterFolder(for: domain)): the head's labels \(target.adapter.labels) do not match domain \(domain)'s labels \(loaded.labels) — train the adapter on this domain")
        }
        let index = Dictionary(uniqueKeysWithValues: loaded.labels.enumerated().map { ($1, $0) })
        var truth: [Int] = []
        truth.reserveCapacity(loaded.test.count)
        for e in loaded.test {
            guard let t = index[e.label] else {
                throw EvaluatorError("domain \(domain): test example \(e.id) has label \"\(e.label)\", which is not among the split's labels")
            }
            truth.append(t)
        }
        let pairs = loaded.test.contains { $0.textPair != nil } ? loaded.test.map { $0.textPair ?? "" } : nil
        let encodings = try pretrained.encode(loaded.test.map(\.text), pairs: pairs, maxLength: config.maxLength)
        let split = TestSplit(encodings: encodings, truth: truth, examples: loaded.test, domain: domain)
        splits[domain] = split
        return split
    }

    /// Loads the domains' adapters now rather than on first use (benchmarks keep file loading
    /// outside their clocks, as their peers do).
    public func preloadAdapters(_ domains: [String]) throws {
        for d in domains { _ = try adapter(d) }
    }

    /// A domain's adapter, loaded on first use (checked against the base model's hash).
    func adapter(_ domain: String) throws -> MixMember {
        if let m = adapters[domain] { return m }
        let folder = config.adapterFolder(for: domain)
        let (adapter, info) = try Adapter.load(from: URL(fileURLWithPath: folder), encoder: pretrained.model.config,
                                               expectedBaseSHA256: artifacts.baseModel)
        guard adapter.config.method == config.adapterMethod else {
            throw EvaluatorError("\(folder): holds a \(adapter.config.method.rawValue) adapter but the sweep's method is \(config.adapterMethod.rawValue) — train it with the sweep's method")
        }
        let member = MixMember(name: domain, adapter: adapter, baseModelSHA256: info.baseModelSHA256)
        adapters[domain] = member
        return member
    }

    /// The mixture's adapter (the target's as is for one member), its mean pairwise FSD and the share of
    /// the target's weights whose sign it flips. Loading adapters and packing signs count as setup.
    func merge(_ mixture: Mixture, recipe: Recipe? = nil, timing: inout ShardTiming) throws -> Merged {
        var start = now()
        let target = try adapter(mixture.target)
        let members = try mixture.members.map { try adapter($0) }
        timing.setup += seconds(since: start)
        if let recipe, recipe.experiment == .prune {
            // The target's adapter alone, its whole body magnitude-pruned.
            start = now()
            let sparsity = recipe.parameters["sparsity"] ?? 0
            let pruned = try Mixing.prune(target.adapter, sparsity: sparsity, scope: .adapter).adapter
            timing.merge += seconds(since: start)
            return Merged(adapter: pruned, meanFSD: nil, weightsChangingDirection: Mixing.weightsChangingDirection(target: target.adapter, mixture: pruned))
        }
        guard mixture.k > 1 else {
            return Merged(adapter: target.adapter, meanFSD: nil,
                          weightsChangingDirection: Mixing.weightsChangingDirection(target: target.adapter, mixture: target.adapter))
        }
        start = now()
        var options = mixOptions
        if let recipe, recipe.experiment != .exhaustive {
            guard let strategy = MixStrategy(rawValue: recipe.strategy) else {
                throw EvaluatorError("unknown mixing strategy '\(recipe.strategy)' in a work item — the coordinator runs a newer AdapterMix than this worker")
            }
            options = MixOptions.from(strategy: strategy, parameters: recipe.parameters, threads: threads)
            // DARE: the mean of the dropped-and-rescaled members, comparable with averaging (λ = 1, weights 1/k).
            if strategy == .dare { options.weights = Array(repeating: 1 / Double(mixture.k), count: mixture.k) }
        }
        let result = try Mixing.mix(target: target, members: members, options: options)
        timing.merge += seconds(since: start)

        // Mixing checked the members' compatibility, so their packs have the same segments.
        start = now()
        let unpacked = mixture.members.filter { packs[$0] == nil }
        if !unpacked.isEmpty {
            for (d, p) in zip(unpacked, Mixing.packAll(unpacked.map { adapters[$0]!.adapter }, threads: threads)) { packs[d] = p }
        }
        timing.setup += seconds(since: start)

        start = now()
        let names = mixture.members
        func pairKey(_ a: Int, _ b: Int) -> String { "\(names[a])|\(names[b])" }
        var missing = false
        for a in 0..<names.count { for b in (a + 1)..<names.count where pairFSD[pairKey(a, b)] == nil { missing = true } }
        if missing {
            let s = Mixing.fsd(packs: names.map { packs[$0]! }, names: names, threads: threads).matrix
            for a in 0..<names.count { for b in (a + 1)..<names.count { pairFSD[pairKey(a, b)] = s[a][b] } }
        }
        var sum = 0.0, pairs = 0
        for a in 0..<names.count {
            for b in (a + 1)..<names.count {
                sum += pairFSD[pairKey(a, b)]!
                pairs += 1
            }
        }
        timing.merge += seconds(since: start)
        return Merged(adapter: result.adapter, meanFSD: sum / Double(pairs), weightsChangingDirection: result.weightsChangingDirection)
    }

    /// Correctness bits of `adapter` on the split under `condition`, and the encoder's time: clean as
    /// `runClean`, FGSM unfolded (it needs the gradient), TextFooler with its own victims.
    func run(_ adapter: Adapter, condition: SweepCondition, on split: TestSplit) throws -> (correct: [Bool], seconds: Double) {
        let model = try AdaptedEncoder(model: pretrained.model, adapter: adapter)
        let start = now()
        let predictions: [Prediction]
        switch condition {
        case .clean:
            return (try runClean([adapter], on: split)[0], seconds(since: start))
        case .fgsm:
            predictions = try AdaptedRunner(model: model, threads: threads, batchSize: config.batchSize, fixedBatches: true, clsOnly: clsOnly)
                .predict(split.encodings, padId: pretrained.tokenizer.padId, labels: split.truth, fgsmEpsilon: Float(config.fgsmEpsilon))
        case .textfooler:
            let correct = try textFooler(adapter, on: split)
            return (correct, seconds(since: start))
        }
        let secs = seconds(since: start)
        return (zip(predictions, split.truth).map { $0.label == $1 }, secs)
    }

    /// Clean correctness bits of several adapters on the split, in one pool of tasks
    /// (`AdaptedRunner.predictEach`): from the target's shared prefix when `sharePrefix`, with LoRA
    /// folded when `foldLoRA`.
    func runClean(_ adapters: [Adapter], on split: TestSplit) throws -> [[Bool]] {
        let runners = try adapters.map { adapter in
            let model = try AdaptedEncoder(model: pretrained.model, adapter: adapter)
            let folded = adapter.config.method == .lora && foldLoRA ? model.foldingLoRA() : model
            return AdaptedRunner(model: folded, threads: threads, batchSize: config.batchSize, fixedBatches: true, clsOnly: clsOnly)
        }
        var prefixes: [SharedPrefix]?
        if sharePrefix, let domain = split.domain {
            prefixes = splits[domain]?.prefixes
            if prefixes == nil {
                // One target's prefixes at a time (rows × C floats each, twice for Houlsby): a worker that moves
                // on to another target's shard drops the last one's and computes them again if
                // it comes back (one pass of layer 1 per batch).
                for other in splits.keys where other != domain { splits[other]?.prefixes = nil }
                prefixes = try runners[0].sharedPrefixes(split.encodings, padId: pretrained.tokenizer.padId)
                splits[domain]?.prefixes = prefixes
            }
        }
        return try AdaptedRunner.predictEach(runners, split.encodings, padId: pretrained.tokenizer.padId, prefixes: prefixes)
            .map { predictions in zip(predictions, split.truth).map { $0.label == $1 } }
    }

    /// TextFooler on the first `textfooler.cap(for:)` examples: one bit per example, set when the
    /// model is still right after the attack (an example it already got wrong counts as wrong).
    func textFooler(_ adapter: Adapter, on split: TestSplit) throws -> [Bool] {
        let settings = config.textfooler
        guard let domain = split.domain else { throw EvaluatorError("internal: a test split without its domain") }
        let count = min(settings.cap(for: domain), split.examples.count)
        let examples = Array(split.examples.prefix(count))
        if gloVe == nil {
            gloVe = try GloVeVectors(contentsOf: URL(fileURLWithPath: ArtifactHashes.attackFilePaths(config)["glove"]!))
            let sentence = try PretrainedEncoder(directory: URL(fileURLWithPath: settings.sentenceModel ?? PretrainedEncoder.defaultModelDirectory().path))
            sentenceSimilarities = (0..<max(1, threads)).map { _ in EncoderSimilarity(pretrained: sentence) }
            if settings.posFilter { wordNet = try WordNetPOS() }
        }
        let table: SynonymTable
        if let t = synonymTables[domain] {
            table = t
        } else {
            table = SynonymTable(queries: examples.flatMap { WordSequence($0.textPair ?? $0.text).words }, vectors: gloVe!,
                                 threshold: Float(settings.synonymThreshold), maxCandidates: settings.maxCandidates, partsOfSpeech: wordNet)
            synonymTables[domain] = table
        }
        var options = TextFoolerOptions()
        options.similarityThreshold = settings.similarityThreshold
        options.queryBudget = settings.queryBudget
        let fooler = TextFooler(options: options)
        // One single-threaded victim per thread, examples attacked concurrently (same outcomes as one by one).
        let workers = max(1, min(threads, examples.count))
        let victims = try (0..<workers).map { _ in
            try AdapterVictim(pretrained: pretrained, adapter: adapter, threads: 1, batchSize: config.batchSize, maxLength: config.maxLength)
        }
        let inputs = examples.map { e in e.textPair.map { AttackInput(text: e.text, pair: $0) } ?? AttackInput(text: e.text) }
        return try fooler.attackAll(inputs, labels: Array(split.truth.prefix(count)), victims: victims,
                                    similarities: Array(sentenceSimilarities.prefix(workers)), synonyms: table).map(\.correctAfterAttack)
    }
}

private func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

private func seconds(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds &- start) / 1e9 }
