import Adapters
import ArgumentParser
import Foundation

struct FSDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fsd",
        abstract: "Fraction of sign difference between adapters: the k × k matrix S over the adapter bodies (the study's Alg. 3).",
        discussion: """
            S[i][j] = #{p : θᵢ_p · θⱼ_p < 0} / N over every adapter tensor (biases included, the head excluded); \
            a zero on either side is no difference. The 'mean' column is the row mean over the other adapters, \
            the ranking of greedy mixing. --per-layer adds S over each encoder layer's tensors. \
            Adapters are named by their folder names (by the paths given when folder names repeat).
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var threadOptions: ThreadOptions

    @Argument(help: ArgumentHelp("Adapter folders (AdapterMix, AdapterHub or PEFT LoRA), of one method, size and base model.", valueName: "DIR"))
    var adapters: [String]

    @Option(help: "table, csv or json ({\"adapters\": [names], \"matrix\": [[…]], …}).")
    var format: String = "table"

    @Flag(name: .customLong("per-layer"), help: "Also the matrix per encoder layer.")
    var perLayer = false

    func validate() throws {
        guard !adapters.isEmpty else { throw ValidationError("give at least one adapter folder") }
        guard ["table", "csv", "json"].contains(format) else { throw ValidationError("--format must be table, csv or json") }
    }

    func run() throws {
        try reportingErrors {
            let encoder = try modelOptions.encoderConfig()
            let folders = try AdapterFolders.load(adapters, modelDirectory: modelOptions.directory, encoder: encoder)
            try Mixing.checkCompatible(folders.map(\.member))
            var result = try Mixing.fsd(folders.map(\.member), threads: threadOptions.threads)
            result.names = AdapterFolders.displayNames(adapters)
            switch format {
            case "json": print(Self.json(result, perLayer: perLayer))
            case "csv": print(Self.csv(result, perLayer: perLayer), terminator: "")
            default: print(Self.table(result, perLayer: perLayer, method: folders[0].member.adapter.config.method.rawValue), terminator: "")
            }
        }
    }

    static func number(_ x: Double) -> String { "\(x)" }

    static func json(_ r: FSDResult, perLayer: Bool) -> String {
        func matrix(_ m: [[Double]]) -> String { "[" + m.map { "[" + $0.map(number).joined(separator: ", ") + "]" }.joined(separator: ", ") + "]" }
        var parts = [
            "\"adapters\": [" + r.names.map(jsonString).joined(separator: ", ") + "]",
            "\"matrix\": " + matrix(r.matrix),
            "\"mean_fsd\": [" + r.meanFSD.map(number).joined(separator: ", ") + "]",
            "\"parameters\": \(r.parameterCount)",
        ]
        if perLayer {
            let layers = zip(r.layerMatrices, r.layerParameterCounts).enumerated().map { l, x in
                "{\"layer\": \(l), \"parameters\": \(x.1), \"matrix\": \(matrix(x.0))}"
            }
            parts.append("\"layers\": [" + layers.joined(separator: ", ") + "]")
        }
        return "{" + parts.joined(separator: ", ") + "}"
    }

    static func csvField(_ s: String) -> String {
        s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    static func csv(_ r: FSDResult, perLayer: Bool) -> String {
        var out = (perLayer ? "layer," : "") + "adapter," + r.names.map(csvField).joined(separator: ",") + "\n"
        func rows(_ m: [[Double]], _ layer: String?) {
            for (i, row) in m.enumerated() {
                out += (layer.map { $0 + "," } ?? "") + csvField(r.names[i]) + "," + row.map(number).joined(separator: ",") + "\n"
            }
        }
        rows(r.matrix, perLayer ? "all" : nil)
        if perLayer { for (l, m) in r.layerMatrices.enumerated() { rows(m, String(l)) } }
        return out
    }

    static func table(_ r: FSDResult, perLayer: Bool, method: String) -> String {
        let width = max(8, r.names.map(\.count).max() ?? 0)
        func pad(_ s: String, _ w: Int, left: Bool = false) -> String {
            s.count >= w ? s : (left ? s + String(repeating: " ", count: w - s.count) : String(repeating: " ", count: w - s.count) + s)
        }
        let cols = r.names.indices.map { "[\($0 + 1)]" }
        func block(_ m: [[Double]], mean: [Double]?) -> String {
            var s = pad("", width + 5) + cols.map { pad($0, 8) }.joined() + (mean == nil ? "" : pad("mean", 9)) + "\n"
            for (i, row) in m.enumerated() {
                s += pad("[\(i + 1)]", 5, left: true) + pad(r.names[i], width, left: true) + row.map { pad(String(format: "%.4f", $0), 8) }.joined()
                if let mean { s += pad(String(format: "%.4f", mean[i]), 9) }
                s += "\n"
            }
            return s
        }
        var out = "FSD (fraction of sign difference) of \(r.names.count) \(method) adapter(s), N = \(r.parameterCount) body parameters each\n"
        out += block(r.matrix, mean: r.meanFSD)
        if perLayer {
            for (l, (m, n)) in zip(r.layerMatrices, r.layerParameterCounts).enumerated() {
                out += "\nlayer \(l) (\(n) parameters)\n" + block(m, mean: r.layerMeanFSD[l])
            }
        }
        return out
    }
}
