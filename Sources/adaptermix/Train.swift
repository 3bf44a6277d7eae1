import Adapters
import ArgumentParser
import Datasets
import Encoder
import Foundation
import Yams

/// Options of `train` that a YAML `--config` file may also set (command-line flags win).
struct TrainSettings: Codable {
    var epochs: Int?
    var batchSize: Int?
    var learningRate: Float?
    var weightDecay: Float?
    var warmupRatio: Float?
    var seed: UInt64?
    var maxLength: Int?
    var bottleneck: Int?
    var loraR: Int?
    var loraAlpha: Float?
    var maxTrain: Int?
    var maxValidation: Int?
    var maxTest: Int?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case epochs, batchSize = "batch_size", learningRate = "learning_rate", weightDecay = "weight_decay"
        case warmupRatio = "warmup_ratio", seed, maxLength = "max_length", bottleneck, loraR = "lora_r", loraAlpha = "lora_alpha"
        case maxTrain = "max_train", maxValidation = "max_validation", maxTest = "max_test"
    }

    /// Reads a YAML file of these keys; an unknown key or a wrong type names the file and the key.
    static func load(_ path: String) throws -> TrainSettings {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw CLIError("\(path): cannot read the file") }
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        guard let map = try? Yams.load(yaml: text) as? [String: Any] else { throw CLIError("\(path): expected a YAML mapping of training options") }
        if let bad = map.keys.sorted().first(where: { !known.contains($0) }) {
            throw CLIError("\(path): unknown key \"\(bad)\" — known keys: \(known.sorted().joined(separator: ", "))")
        }
        do { return try YAMLDecoder().decode(TrainSettings.self, from: text) } catch let DecodingError.typeMismatch(_, ctx) {
            throw CLIError("\(path): \"\(ctx.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type")
        } catch {
            throw CLIError("\(path): \(error)")
        }
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train one adapter and its classification head on a domain, on the frozen encoder.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var data: DataOptions

    @Option(help: "Domain to train on (see 'adaptermix data list').")
    var domain: String

    @Option(help: "Adapter method: pfeiffer, houlsby or lora.")
    var method: String

    @Option(help: ArgumentHelp("YAML file of training options (epochs, batch_size, learning_rate, …; see docs/adapters.md).", valueName: "FILE"))
    var config: String?

    @Option(help: "Output folder (default: out/adapters/DOMAIN-METHOD).")
    var out: String?

    @Option var epochs: Int?
    @Option(name: .customLong("batch-size")) var batchSize: Int?
    @Option(name: .customLong("learning-rate")) var learningRate: Float?
    @Option(name: .customLong("max-length"), help: "Truncate texts to N tokens.") var maxLength: Int?
    @Option(help: "Bottleneck size (pfeiffer, houlsby).") var bottleneck: Int?
    @Option(name: .customLong("lora-r")) var loraR: Int?
    @Option(name: .customLong("lora-alpha")) var loraAlpha: Float?

    @Flag(help: "No progress bar.")
    var quiet = false

    func validate() throws {
        guard AdapterMethod(rawValue: method) != nil else { throw ValidationError("--method must be pfeiffer, houlsby or lora") }
    }

    func run() throws {
        try reportingErrors {
            let file = try config.map(TrainSettings.load) ?? TrainSettings()
            let pretrained = try modelOptions.load()
            var split = data.splitOptions
            split.maxTrain = data.maxTrain ?? file.maxTrain
            split.maxValidation = data.maxValidation ?? file.maxValidation
            split.maxTest = data.maxTest ?? file.maxTest
            let catalog = try data.catalog()
            let splits = try catalog.load(domain, options: split)
            let labels = splits.labels
            let index = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($1, $0) })
            let maxLen = maxLength ?? file.maxLength ?? 128
            func encode(_ examples: [Example]) throws -> ([Encoding], [Int]) {
                let enc = try pretrained.encode(examples.map(\.text), pairs: examples.first?.textPair == nil ? nil : examples.map { $0.textPair ?? "" },
                                                maxLength: maxLen)
                return (enc, examples.map { index[$0.label]! })
            }
            let (trainX, trainY) = try encode(splits.train)
            let (valX, valY) = try encode(splits.validation)

            var adapterConfig = AdapterConfig.defaults(AdapterMethod(rawValue: method)!, for: pretrained.model.config)
            if let b = bottleneck ?? file.bottleneck { adapterConfig.bottleneck = b }
            if let r = loraR ?? file.loraR { adapterConfig.loraRank = r; adapterConfig.loraAlpha = Float(r) }
            if let a = loraAlpha ?? file.loraAlpha { adapterConfig.loraAlpha = a }
            try adapterConfig.validate(file: config ?? "command line")
            var options = TrainingOptions()
            options.threads = threadOptions.threads
            if let v = epochs ?? file.epochs { options.epochs = v }
            if let v = batchSize ?? file.batchSize { options.batchSize = v }
            if let v = learningRate ?? file.learningRate { options.learningRate = v }
            if let v = file.weightDecay { options.weightDecay = v }
            if let v = file.warmupRatio { options.warmupRatio = v }
            options.seed = file.seed ?? data.seed

            let adapter = Adapter.initialized(config: adapterConfig, encoder: pretrained.model.config, labels: labels, seed: options.seed)
            let model = try AdaptedEncoder(model: pretrained.model, adapter: adapter)
            let params = adapter.layout.count
            FileHandle.standardError.write(Data("train \(domain) · \(method) · \(params) trainable parameters · \(trainX.count) train / \(valX.count) validation examples · \(options.epochs) epochs\n".utf8))
            let bar = ProgressBar(enabled: !quiet)
            let reports = try AdapterTrainer(model: model, options: options).train(
                train: trainX, trainLabels: trainY, validation: valX, validationLabels: valY, padId: pretrained.tokenizer.padId,
                progress: { bar.update($0) })
            bar.finish()
            for r in reports {
                FileHandle.standardError.write(Data(String(format: "epoch %d: train loss %.4f, train acc %.4f, validation acc %.4f, macro-F1 %.4f (%.1f s)\n",
                                                           r.epoch, r.trainLoss, r.trainAccuracy, r.validation.accuracy, r.validation.macroF1, r.seconds).utf8))
            }
            let best = reports.max { $0.validation.accuracy < $1.validation.accuracy }!
            let dir = URL(fileURLWithPath: out ?? "out/adapters/\(domain)-\(method)")
            let sha = try sha256(ofFile: pretrained.directory.appendingPathComponent("model.safetensors"))
            let seconds = reports.reduce(0) { $0 + $1.seconds }
            try adapter.save(to: dir, name: domain.replacingOccurrences(of: ".", with: "_"), encoder: pretrained.model.config,
                             modelName: pretrained.directory.lastPathComponent, domain: domain, baseModelSHA256: sha,
                             metrics: ["validation_accuracy": best.validation.accuracy, "validation_macro_f1": best.validation.macroF1,
                                       "best_epoch": Double(best.epoch), "train_examples_per_second": Double(trainX.count * reports.count) / max(seconds, 1e-9)],
                             seed: options.seed,
                             training: ["epochs": options.epochs, "batch_size": options.batchSize, "learning_rate": Double(options.learningRate),
                                        "weight_decay": Double(options.weightDecay), "warmup_ratio": Double(options.warmupRatio),
                                        "max_length": maxLen, "threads": options.threads, "split_seed": Int(data.seed),
                                        "max_train": split.maxTrain ?? -1, "train_examples": trainX.count])
            print("saved \(dir.path) (best epoch \(best.epoch): validation accuracy \(String(format: "%.4f", best.validation.accuracy)))")
        }
    }
}

/// A one-line progress bar on standard error: epoch, bar, loss, accuracy, ETA.
final class ProgressBar: @unchecked Sendable {  // called from the training thread only
    let enabled: Bool
    private var last: UInt64 = 0
    init(enabled: Bool) { self.enabled = enabled && isatty(2) != 0 || enabled && ProcessInfo.processInfo.environment["ADAPTERMIX_PROGRESS"] == "1" }

    func update(_ p: TrainingProgress) {
        guard enabled else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        guard now - last > 200_000_000 || p.step == p.steps else { return }
        last = now
        let width = 24, filled = width * p.step / max(p.steps, 1)
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let eta = Int(p.remaining.rounded())
        let line = "\r[epoch \(p.epoch)/\(p.epochs)] " + bar + String(format: " %d/%d  loss %.4f  acc %.3f  ETA %d:%02d ", p.step, p.steps,
                                                                                  p.loss, p.accuracy, eta / 60, eta % 60)
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() { if enabled { FileHandle.standardError.write(Data("\n".utf8)) } }
}
