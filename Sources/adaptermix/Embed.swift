import ArgumentParser
import Encoder
import Foundation

struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Embed texts with the encoder; writes JSON lines {text, input_ids, embedding} in input order.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var threadOptions: ThreadOptions

    @Option(help: "Pooling: mean (masked mean, as sentence-transformers) or cls.")
    var pooling: String = "mean"

    @Flag(help: "L2-normalise the pooled embedding (what sentence-transformers returns for all-MiniLM-L6-v2).")
    var normalize = false

    @Option(name: .customLong("max-length"), help: "Truncate to N tokens, special tokens included (default: the tokenizer's).")
    var maxLength: Int?

    @Option(name: .long, help: ArgumentHelp("Read texts from F, one per line (UTF-8).", valueName: "F"))
    var file: String?

    @Option(help: "Output format: jsonl, or preview (a few dimensions and the cosine matrix, for people).")
    var format: String = "jsonl"

    @Argument(help: "Texts to embed.")
    var texts: [String] = []

    func validate() throws {
        guard Pooling(rawValue: pooling) != nil else { throw ValidationError("--pooling must be mean or cls") }
        guard ["jsonl", "preview"].contains(format) else { throw ValidationError("--format must be jsonl or preview") }
        if let maxLength, maxLength < 2 { throw ValidationError("--max-length must be at least 2") }
        guard (file == nil) != texts.isEmpty else { throw ValidationError("give texts as arguments or --file F, not both and not neither") }
    }

    func run() throws {
        let inputs = try file.map(readLines) ?? texts
        do {
            let pretrained = try modelOptions.load()
            let encodings = try pretrained.encode(inputs, maxLength: maxLength)
            let runner = EncoderRunner(model: pretrained.model, threads: threadOptions.threads)
            let vectors = try runner.embed(encodings, padId: pretrained.tokenizer.padId,
                                           pooling: Pooling(rawValue: pooling)!, normalize: normalize)
            if format == "preview" {
                printPreview(inputs, encodings, vectors)
            } else {
                var out = ""
                for i in inputs.indices {
                    out += "{\"text\": \(jsonString(inputs[i])), \"input_ids\": [\(encodings[i].ids.map(String.init).joined(separator: ", "))], "
                    out += "\"embedding\": [\(vectors[i].map { "\($0)" }.joined(separator: ", "))]}\n"
                    if out.utf8.count > 1 << 20 { FileHandle.standardOutput.write(Data(out.utf8)); out = "" }
                }
                FileHandle.standardOutput.write(Data(out.utf8))
            }
        } catch let e as CustomStringConvertible & Error {
            throw CLIError(e.description)
        }
    }

    private func printPreview(_ texts: [String], _ encodings: [Encoding], _ vectors: [[Float]]) {
        for (i, t) in texts.enumerated() {
            let norm = vectors[i].reduce(0) { $0 + $1 * $1 }.squareRoot()
            let head = vectors[i].prefix(6).map { String(format: "%+.4f", $0) }.joined(separator: " ")
            print(String(format: "[%d] %3d tokens  |v|=%.4f  v[0..5]= ", i, encodings[i].ids.count, norm) + head + "  " + t.prefix(60))
        }
        print("\ncosine similarity")
        for i in texts.indices {
            var row = String(format: "[%d]", i)
            for j in texts.indices {
                let dot = zip(vectors[i], vectors[j]).reduce(0) { $0 + $1.0 * $1.1 }
                let ni = vectors[i].reduce(0) { $0 + $1 * $1 }.squareRoot(), nj = vectors[j].reduce(0) { $0 + $1 * $1 }.squareRoot()
                row += String(format: " %6.3f", dot / max(ni * nj, 1e-12))
            }
            print(row)
        }
    }
}
