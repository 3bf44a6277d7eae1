import Adapters
import ArgumentParser
import Foundation

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Magnitude pruning of an adapter body (the study's Alg. 2): keep the largest |w| at a sparsity.",
        discussion: """
            In each scope group of n body weights (the whole adapter, each encoder layer, or each tensor), the \
            round(s·n) weights of smallest magnitude become 0; among equal magnitudes the earlier weight is kept. \
            The head is never pruned. Writes a normal adapter folder that 'adaptermix eval' accepts.
            """)

    @OptionGroup var modelOptions: ModelOptions

    @Argument(help: ArgumentHelp("Adapter folder (AdapterMix, AdapterHub or PEFT LoRA).", valueName: "DIR"))
    var adapter: String

    @Option(help: "Fraction of the body's weights to zero, in [0, 1].")
    var sparsity: Double

    @Option(help: "adapter (whole body), layer or tensor.")
    var scope: String = "adapter"

    @Option(help: ArgumentHelp("Class names of a PEFT folder, comma-separated in class-id order (default: the model's id2label, else LABEL_i).", valueName: "A,B,…"))
    var labels: String?

    @Option(help: "Output folder.")
    var out: String

    func validate() throws {
        guard sparsity.isFinite, sparsity >= 0, sparsity <= 1 else { throw ValidationError("--sparsity must be in [0, 1]") }
        guard PruningScope(rawValue: scope == "whole" ? "adapter" : scope) != nil else { throw ValidationError("--scope must be adapter, layer or tensor") }
    }

    func run() throws {
        try reportingErrors {
            let encoder = try modelOptions.encoderConfig()
            let folder = try AdapterFolders.load([adapter], modelDirectory: modelOptions.directory, encoder: encoder,
                                                 labels: labels.map { $0.split(separator: ",").map(String.init) }, labelsFor: adapter)[0]
            try AdapterFolders.refuseOutput(out, overwriting: [adapter])
            let sha = try AdapterFolders.checkBaseModel([folder], model: modelOptions.directory)
            let pruningScope = PruningScope(rawValue: scope == "whole" ? "adapter" : scope)!
            let source = folder.member.adapter
            let (pruned, zeroed) = try Mixing.prune(source, sparsity: sparsity, scope: pruningScope)
            let n = source.layout.bodyCount
            let nonzero = pruned.body.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
            let info = folder.info
            var record: [String: Any] = ["strategy": "prune", "source": adapter, "sparsity": sparsity, "scope": pruningScope.rawValue,
                                         "zeroed": zeroed, "body_parameters": n]
            if let t = info.training { record["source_training"] = t }
            try pruned.save(to: URL(fileURLWithPath: out), name: info.name.replacingOccurrences(of: ".", with: "_").replacingOccurrences(of: "/", with: "_"),
                            encoder: encoder, modelName: info.modelName ?? modelOptions.directory.lastPathComponent,
                            domain: info.domain ?? info.name, baseModelSHA256: sha, metrics: [:], seed: info.seed ?? 0, training: record)
            print("pruned \(adapter) at sparsity \(sparsity) per \(pruningScope.rawValue): zeroed \(zeroed) of \(n) body weights, \(nonzero) non-zero remain")
            print("saved \(out)")
        }
    }
}
