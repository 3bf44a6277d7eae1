import ArgumentParser
import Datasets
import Encoder
import Foundation

/// `--model DIR`: a Hugging Face BERT / RoBERTa folder; the packaged all-MiniLM-L6-v2 by default.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Hugging Face model folder (config.json, model.safetensors, tokenizer.json).", valueName: "DIR"))
    var model: String?

    var directory: URL { model.map { URL(fileURLWithPath: $0) } ?? PretrainedEncoder.defaultModelDirectory() }

    func load() throws -> PretrainedEncoder { try PretrainedEncoder(directory: directory) }
}

/// `--threads N`.
struct ThreadOptions: ParsableArguments {
    @Option(name: .long, help: "Worker threads (each runs BLAS single-threaded). Default: all cores.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }
}

/// A failure that already says what and where; printed as one line.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Reads a text file as UTF-8 lines, naming the first line that is not valid UTF-8.
func readLines(_ path: String) throws -> [String] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CLIError("\(path): cannot read the file (does it exist?)")
    }
    var lines: [String] = []
    var lineNumber = 0
    for chunk in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
        lineNumber += 1
        var bytes = Array(chunk)
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        guard let line = String(validating: bytes, as: UTF8.self) else {
            throw CLIError("\(path): line \(lineNumber) is not valid UTF-8 — convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)")
        }
        lines.append(line)
    }
    if lines.last == "" { lines.removeLast() }
    return lines
}

/// A JSON string literal.
func jsonString(_ s: String) -> String { jsonStringLiteral(s) }
