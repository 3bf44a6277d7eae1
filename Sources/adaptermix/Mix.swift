import Adapters
import ArgumentParser
import Encoder
import Foundation
import Report

struct Mix: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mix adapter bodies into one adapter folder with the target's head (average, greedy, sparse, task arithmetic, TIES, DARE).",
        discussion: """
            Members and the target are adapter folders (AdapterMix, AdapterHub or PEFT LoRA). The mixture is the \
            combined adapter BODY with the TARGET's classification head and labels, written as a normal adapter \
            folder that 'adaptermix eval' accepts; its adapter_config.json records the strategy, the members and \
            the parameters. List the target among the members to mix its body too (greedy-target always does). \
            See docs/mixing.md.
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var threadOptions: ThreadOptions

    @Option(help: "average, weighted, greedy-min, greedy-target, greedy-max, sparse, task-arithmetic, ties, dare or dare-ties.")
    var strategy: String

    @Option(help: ArgumentHelp("The target's adapter folder: its head and labels go on the mixture.", valueName: "DIR"))
    var target: String

    @Option(parsing: .singleValue, help: ArgumentHelp("Member adapter folders, comma-separated (or the option repeated).", valueName: "DIR,DIR,…"))
    var members: [String]

    @Option(help: ArgumentHelp("Weights, one per member, comma-separated (weighted; also sparse, task-arithmetic, ties, dare, dare-ties).", valueName: "W,W,…"))
    var weights: String?

    @Option(help: ArgumentHelp("AdapterSoup's selection before mixing: the target and the --l − 1 members whose domains are most similar to the target's, by this matrix ('adaptermix similarity --format json' output; adapters are matched by the domain in their adapter_config.json).", valueName: "FILE"))
    var similarity: String?

    @Option(name: .customLong("l"), help: "Greedy strategies, or --similarity: how many adapters to mix.")
    var l: Int?

    @Option(help: "ties: the fraction of each adapter kept by the trim (default 0.2).")
    var density: Double?

    @Option(help: "ties: where the trim ranks magnitudes: adapter, layer or tensor (default adapter).")
    var scope: String?

    @Option(name: .customLong("p"), help: "dare, dare-ties: the drop probability (default 0.5).")
    var p: Double?

    @Option(help: "dare, dare-ties: the seed of the drop masks (default 0).")
    var seed: UInt64?

    @Option(name: .customLong("lambda"), help: "task-arithmetic, ties, dare, dare-ties: the scale λ (default 1).")
    var lambda: Double?

    @Option(name: .customLong("lora-mode"), help: "LoRA, linear strategies: separate (A and B apart, the default), delta (exact ΔW at rank k·r) or delta-svd (ΔW refactored to rank r).")
    var loraMode: String?

    @Option(name: .customLong("prune-layers"), help: "sparse: layers pruned per member, the most conflicting ones (default 1).")
    var pruneLayers: Int?

    @Option(help: "sparse: the sparsity of the pruned layers (default 0.9).")
    var sparsity: Double?

    @Option(help: ArgumentHelp("Class names of a PEFT target, comma-separated in class-id order (default: the model's id2label, else LABEL_i).", valueName: "A,B,…"))
    var labels: String?

    @Option(help: "Adapter name inside the folder (default: the target's).")
    var name: String?

    @Option(help: "Output folder.")
    var out: String

    var parsedStrategy: MixStrategy? { MixStrategy(rawValue: strategy) }

    func validate() throws {
        guard let s = parsedStrategy else {
            throw ValidationError("--strategy must be one of \(MixStrategy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        func only(_ flag: String, _ isSet: Bool, _ allowed: [MixStrategy]) throws {
            if isSet && !allowed.contains(s) {
                throw ValidationError("\(flag) applies to --strategy \(allowed.map(\.rawValue).joined(separator: ", ")), not \(s.rawValue)")
            }
        }
        try only("--weights", weights != nil, [.weighted, .sparse, .taskArithmetic, .ties, .dare, .dareTies])
        if similarity != nil {
            guard s == .average else { throw ValidationError("--similarity selects the adapters for --strategy average (AdapterSoup), not \(s.rawValue)") }
            guard l != nil else { throw ValidationError("--similarity needs --l N, the number of adapters to mix (the target's included)") }
        } else {
            try only("--l", l != nil, [.greedyMin, .greedyTarget, .greedyMax])
        }
        try only("--density", density != nil, [.ties])
        try only("--scope", scope != nil, [.ties])
        try only("--p", p != nil, [.dare, .dareTies])
        try only("--seed", seed != nil, [.dare, .dareTies])
        try only("--lambda", lambda != nil, [.taskArithmetic, .ties, .dare, .dareTies])
        try only("--lora-mode", loraMode != nil, MixStrategy.allCases.filter(\.isLinear))
        try only("--prune-layers", pruneLayers != nil, [.sparse])
        try only("--sparsity", sparsity != nil, [.sparse])
        if s == .weighted && weights == nil { throw ValidationError("--strategy weighted needs --weights, one per member") }
        if s.isGreedy && l == nil { throw ValidationError("--strategy \(s.rawValue) needs --l N, the number of adapters to mix") }
        if let scope, PruningScope(rawValue: scope == "whole" ? "adapter" : scope) == nil { throw ValidationError("--scope must be adapter, layer or tensor") }
        if let loraMode, LoRAMixMode(rawValue: loraMode) == nil { throw ValidationError("--lora-mode must be separate, delta or delta-svd") }
        if memberPaths.isEmpty { throw ValidationError("--members needs at least one adapter folder") }
    }

    var memberPaths: [String] { members.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty } }

    func run() throws {
        try reportingErrors {
            let strategy = parsedStrategy!
            let encoder = try modelOptions.encoderConfig()
            let labelList = labels.map { $0.split(separator: ",").map(String.init) }
            let folders = try AdapterFolders.load([target] + memberPaths, modelDirectory: modelOptions.directory, encoder: encoder,
                                                  labels: labelList, labelsFor: target)
            let targetFolder = folders[0], memberFolders = Array(folders.dropFirst())
            try AdapterFolders.refuseOutput(out, overwriting: [target] + memberPaths)
            try Mixing.checkCompatible(folders.map(\.member))
            let sha = try AdapterFolders.checkBaseModel(folders, model: modelOptions.directory)

            var options = MixOptions(strategy: strategy)
            options.threads = threadOptions.threads
            if let weights {
                var w: [Double] = []
                for part in weights.split(separator: ",") {
                    guard let x = Double(part.trimmingCharacters(in: .whitespaces)) else { throw CLIError("--weights: \"\(part)\" is not a number") }
                    w.append(x)
                }
                options.weights = w
            }
            options.l = l
            if let density { options.density = density }
            if let scope { options.trimScope = PruningScope(rawValue: scope == "whole" ? "adapter" : scope)! }
            if let p { options.dropRate = p }
            if let seed { options.seed = seed }
            if let lambda { options.lambda = lambda }
            if let loraMode { options.loraMode = LoRAMixMode(rawValue: loraMode)! }
            if let pruneLayers { options.pruneLayers = pruneLayers }
            if let sparsity { options.sparsity = sparsity }

            var chosen = memberFolders.map(\.member)
            if let similarity {
                chosen = try selectBySimilarity(file: similarity, target: targetFolder, members: memberFolders, l: l!)
                options.l = nil
            }
            let result = try Mixing.mix(target: targetFolder.member, members: chosen, options: options)
            var record = result.record
            if let t = targetFolder.info.training { record["target_training"] = t }
            let info = targetFolder.info
            let adapterName = (name ?? info.name).replacingOccurrences(of: ".", with: "_").replacingOccurrences(of: "/", with: "_")
            try result.adapter.save(to: URL(fileURLWithPath: out), name: adapterName, encoder: encoder,
                                    modelName: info.modelName ?? modelOptions.directory.lastPathComponent,
                                    domain: info.domain ?? info.name, baseModelSHA256: sha, seed: options.seed, training: record)

            if let f = result.fsd, strategy.isGreedy || strategy == .sparse {
                print("mean FSD of the \(f.names.count) candidate(s) (row mean of S over the others):")
                for (n, m) in zip(f.names, f.meanFSD) { print(String(format: "  %.4f  %@", m, n)) }
                for (n, ls) in result.prunedLayers.sorted(by: { $0.key < $1.key }) where !ls.isEmpty {
                    print("  pruned layers \(ls.map(String.init).joined(separator: ", ")) of \(n)")
                }
            }
            print("\(strategy.rawValue): mixed \(result.selected.count) adapter(s): \(result.selected.joined(separator: ", "))")
            if let w = result.weightsChangingDirection {
                print(String(format: "weights changing direction (target's body weights whose sign the mixture flips): %.4f", w))
            }
            print("saved \(out) (body of the mixture, head and labels of \(target))")
        }
    }
}

extension Mix {
    /// AdapterSoup's selection: the target's adapter and the l − 1 member adapters whose domains'
    /// centroids are most similar to the target's (ties in the order given).
    func selectBySimilarity(file: String, target: AdapterFolder, members: [AdapterFolder], l: Int) throws -> [MixMember] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
            throw CLIError("\(file): cannot read (\(error.localizedDescription)) — write it with 'adaptermix similarity --format json'")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let domains = obj["domains"] as? [String],
              let cosine = obj["cosine"] as? [[Double]], cosine.count == domains.count else {
            throw CLIError("\(file): expected {\"domains\": [...], \"cosine\": [[...]]} as 'adaptermix similarity --format json' writes")
        }
        func domain(_ f: AdapterFolder) throws -> Int {
            let d = f.info.domain ?? f.info.name
            guard let i = domains.firstIndex(of: d) else {
                throw CLIError("\(f.path): its domain '\(d)' is not in \(file) (domains: \(domains.joined(separator: ", "))) — compute the similarity over these adapters' domains")
            }
            return i
        }
        // The folders' own similarity matrix (by their domains), ranked as everywhere else.
        let folders = [target] + members.filter { $0.path != target.path }
        let index = try folders.map(domain)
        let matrix = index.map { a in index.map { cosine[a][$0] } }
        let picked = DomainSimilarity.select(matrix, target: 0, l: l, largestFirst: true).map { folders[$0] }
        let t = index[0]
        let described = try picked.map { "\($0.info.domain ?? $0.info.name) (\(String(format: "%.3f", cosine[t][try domain($0)])))" }
        print("selected by similarity to \(domains[t]): " + described.joined(separator: ", "))
        return picked.map(\.member)
    }
}

// MARK: - Adapter folders for fsd, mix and prune

extension ModelOptions {
    /// The base model's config.json only (the weights are not needed to mix).
    func encoderConfig() throws -> EncoderConfig {
        try EncoderConfig.load(contentsOf: directory.appendingPathComponent("config.json"))
    }
}

/// An adapter folder given on the command line.
struct AdapterFolder {
    var path: String
    var member: MixMember
    var info: AdapterInfo
}

enum AdapterFolders {
    /// Loads each folder once (a path given twice is the same adapter): AdapterMix / AdapterHub folders with
    /// `Adapter.load`, PEFT LoRA folders (adapter_config.json with "peft_type") with `importPEFT`. A PEFT
    /// folder's class names: `labels` for the folder `labelsFor`, else the model's id2label, else LABEL_i.
    static func load(_ paths: [String], modelDirectory: URL, encoder: EncoderConfig, labels: [String]? = nil,
                     labelsFor: String? = nil) throws -> [AdapterFolder] {
        var cache: [String: AdapterFolder] = [:]
        var out: [AdapterFolder] = []
        for path in paths {
            let key = URL(fileURLWithPath: path).standardizedFileURL.path
            if let f = cache[key] { out.append(f); continue }
            let url = URL(fileURLWithPath: path)
            let f: AdapterFolder
            if isPEFT(url) {
                let given = path == labelsFor ? labels : nil
                let (adapter, info) = try importPEFTWithLabels(url, encoder: encoder, modelDirectory: modelDirectory, labels: given)
                f = AdapterFolder(path: path, member: MixMember(name: path, adapter: adapter, baseModelSHA256: nil), info: info)
            } else {
                let (adapter, info) = try Adapter.load(from: url, encoder: encoder, expectedBaseSHA256: nil)
                f = AdapterFolder(path: path, member: MixMember(name: path, adapter: adapter, baseModelSHA256: info.baseModelSHA256), info: info)
            }
            cache[key] = f
            out.append(f)
        }
        return out
    }

    static func isPEFT(_ dir: URL) -> Bool {
        guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(PEFTFileNames.config).path),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
        return obj["peft_type"] != nil
    }

    /// importPEFT; when no class names are known (no labels given, no id2label), LABEL_0 … LABEL_{K−1}.
    static func importPEFTWithLabels(_ dir: URL, encoder: EncoderConfig, modelDirectory: URL, labels: [String]?) throws -> (Adapter, AdapterInfo) {
        do {
            return try importPEFT(from: dir, encoder: encoder, modelDirectory: modelDirectory, labels: labels)
        } catch let e as AdapterError where labels == nil && e.reason.contains("no label names are known") {
            let file = try SafeTensorsFile(url: dir.appendingPathComponent(PEFTFileNames.weights))
            guard let key = file.names.first(where: { $0.hasSuffix("classifier.out_proj.weight") || $0.hasSuffix("classifier.weight") }),
                  let classes = file.tensors[key]?.shape.first else { throw e }
            return try importPEFT(from: dir, encoder: encoder, modelDirectory: modelDirectory, labels: (0..<classes).map { "LABEL_\($0)" })
        }
    }

    /// The base model's SHA-256; every folder that records one must agree with it (checked after the folders
    /// agree among themselves, so that message names two folders).
    static func checkBaseModel(_ folders: [AdapterFolder], model: URL) throws -> String {
        let sha = try sha256(ofFile: model.appendingPathComponent("model.safetensors"))
        for f in folders {
            if let recorded = f.member.baseModelSHA256, recorded.lowercased() != sha {
                throw CLIError("\(f.path): trained on another base model (model.safetensors sha256 \(recorded.prefix(12))…) than --model \(model.path) (\(sha.prefix(12))…) — pass the model the adapters were trained on with --model DIR")
            }
        }
        return sha
    }

    /// Refuses to write the output over an input folder.
    static func refuseOutput(_ out: String, overwriting inputs: [String]) throws {
        let o = URL(fileURLWithPath: out).standardizedFileURL.path
        if let same = inputs.first(where: { URL(fileURLWithPath: $0).standardizedFileURL.path == o }) {
            throw CLIError("--out \(out) is the input folder \(same) — write the result to a new folder")
        }
    }

    /// Short names for output: the folders' last path components, or the paths as given if those repeat.
    static func displayNames(_ paths: [String]) -> [String] {
        let base = paths.map { URL(fileURLWithPath: $0).standardizedFileURL.lastPathComponent }
        return Set(base).count == base.count ? base : paths
    }
}
