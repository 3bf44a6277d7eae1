import Adapters
import Attack
import ArgumentParser
import Datasets
import Encoder
import Foundation

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Accuracy and macro-F1 of an adapter on a domain's test split (or a JSON-lines file), clean or under FGSM.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var data: DataOptions

    @Option(help: "Adapter folder (written by 'adaptermix train', or an AdapterHub / PEFT folder).")
    var adapter: String

    @Option(help: "Domain whose test split to evaluate on.")
    var domain: String?

    @Option(name: .customLong("data"), help: ArgumentHelp("Evaluate on a JSON-lines file {id, text, text_pair?, label} instead of a domain.", valueName: "FILE"))
    var dataFile: String?

    @Option(help: "Attack: fgsm (white-box, on the embeddings) or textfooler (black-box synonym swaps, docs/attacks.md).")
    var attack: String?

    @Option(name: .customLong("synonym-threshold"), help: "textfooler: minimum GloVe cosine of a candidate word (the study's 0.8; TextAttack's recipe 0.5).")
    var synonymThreshold: Float = 0.8

    @Option(name: .customLong("similarity-threshold"), help: "textfooler: minimum angular sentence similarity of the 15-word window around a swap.")
    var similarityThreshold: Double = 0.84

    @Option(name: .customLong("max-candidates"), help: "textfooler: candidate words per position.")
    var maxCandidates: Int = 50

    @Option(name: .customLong("query-budget"), help: "textfooler: victim queries per example.")
    var queryBudget: Int = 2000

    @Flag(name: .customLong("pos-filter"), help: "textfooler: keep only candidates sharing a WordNet part of speech with the original.")
    var posFilter = false

    @Option(name: .customLong("sentence-model"), help: ArgumentHelp("textfooler: the sentence encoder for the similarity (default: the packaged all-MiniLM-L6-v2).", valueName: "DIR"))
    var sentenceModel: String?

    @Option(help: "FGSM step ε on the embeddings (the study's 0.01).")
    var epsilon: Float = 0.01

    @Option(name: .customLong("max-length")) var maxLength: Int = 128

    @Option(help: "table, json, or row (a Markdown table row: n, majority baseline, accuracy, macro-F1, FGSM accuracy).")
    var format: String = "table"

    @Option(help: ArgumentHelp("Write JSON lines {id, label, prediction, logits} to FILE.", valueName: "FILE"))
    var predictions: String?

    func validate() throws {
        guard (domain == nil) != (dataFile == nil) else { throw ValidationError("give --domain D or --data FILE.jsonl") }
        if let attack, !["fgsm", "textfooler"].contains(attack) { throw ValidationError("--attack must be fgsm or textfooler") }
        guard synonymThreshold.isFinite, (-1...1).contains(synonymThreshold) else { throw ValidationError("--synonym-threshold must be a cosine in -1…1") }
        guard similarityThreshold.isFinite, (0...1).contains(similarityThreshold) else { throw ValidationError("--similarity-threshold must be in 0…1") }
        guard (1...1000).contains(maxCandidates) else { throw ValidationError("--max-candidates must be 1…1000") }
        guard queryBudget >= 1 else { throw ValidationError("--query-budget must be at least 1") }
        guard epsilon.isFinite, epsilon >= 0 else { throw ValidationError("--epsilon must be a non-negative number") }
        guard ["table", "json", "row"].contains(format) else { throw ValidationError("--format must be table, json or row") }
    }

    func run() throws {
        try reportingErrors {
            let pretrained = try modelOptions.load()
            let examples: [Example]
            let source: String
            let splits = try domain.map { try data.catalog().load($0, options: data.splitOptions) }
            let url = URL(fileURLWithPath: self.adapter)
            let (adapter, info): (Adapter, AdapterInfo)
            if AdapterFolders.isPEFT(url) {
                // PEFT stores no class names: the domain's labels (in their sorted order), else the model's id2label.
                (adapter, info) = try AdapterFolders.importPEFTWithLabels(url, encoder: pretrained.model.config, modelDirectory: pretrained.directory,
                                                                         labels: splits?.labels)
            } else {
                let sha = try sha256(ofFile: pretrained.directory.appendingPathComponent("model.safetensors"))
                (adapter, info) = try Adapter.load(from: url, encoder: pretrained.model.config, expectedBaseSHA256: sha)
            }
            if let dataFile {
                // Pairs when the first record has a "text_pair" (the shape `data export` writes).
                let firstLine = (try? String(contentsOfFile: dataFile, encoding: .utf8))?.split(separator: "\n").first.map(String.init) ?? ""
                let first = (try? JSONSerialization.jsonObject(with: Data(firstLine.utf8))) as? [String: Any]
                examples = try loadRecords(url: URL(fileURLWithPath: dataFile), format: .jsonLines,
                                           mapping: ColumnMapping(text: "text", textPair: first?["text_pair"] == nil ? nil : "text_pair", label: "label"))
                source = dataFile
            } else {
                let splits = splits!
                guard splits.labels == adapter.labels else {
                    throw CLIError("\(self.adapter): the head's labels \(adapter.labels) do not match domain \"\(domain!)\"'s labels \(splits.labels) — evaluate on the domain the adapter was trained for")
                }
                examples = splits.test
                source = "\(domain!) test split"
            }
            let index = Dictionary(uniqueKeysWithValues: adapter.labels.enumerated().map { ($1, $0) })
            var targets: [Int] = []
            for e in examples {
                guard let i = index[e.label] else {
                    throw CLIError("\(source): example \(e.id) has label \"\(e.label)\", which the adapter's head does not know (\(adapter.labels.joined(separator: ", ")))")
                }
                targets.append(i)
            }
            let pairs = examples.contains { $0.textPair != nil } ? examples.map { $0.textPair ?? "" } : nil
            let encodings = try pretrained.encode(examples.map(\.text), pairs: pairs, maxLength: maxLength)
            let model = try AdaptedEncoder(model: pretrained.model, adapter: adapter)
            let runner = AdaptedRunner(model: adapter.config.method == .lora ? model.foldingLoRA() : model, threads: threadOptions.threads)
            let clean = try runner.predict(encodings, padId: pretrained.tokenizer.padId)
            let K = adapter.labels.count
            let scores = ClassificationScores(predicted: clean.map(\.label), targets: targets, classes: K)
            var adversarial: [Prediction]?
            var fooled: TextFoolerSummary?
            if attack == "textfooler" {
                fooled = try runTextFooler(examples: examples, targets: targets, pretrained: pretrained, adapter: adapter)
                adversarial = fooled!.outcomes.map { Prediction(logits: [], label: $0.finalLabel) }
            }
            if attack == "fgsm" {
                // Gradients need the unfolded LoRA.
                adversarial = try AdaptedRunner(model: model, threads: threadOptions.threads)
                    .predict(encodings, padId: pretrained.tokenizer.padId, labels: targets, fgsmEpsilon: epsilon)
            }
            // The majority-class baseline: always predict the most frequent test label.
            let counts = targets.reduce(into: [Int](repeating: 0, count: K)) { $0[$1] += 1 }
            let majority = targets.isEmpty ? 0 : Double(counts.max()!) / Double(targets.count)
            let advScores = adversarial.map { ClassificationScores(predicted: $0.map(\.label), targets: targets, classes: K) }
            if let predictions {
                var out = ""
                for (i, e) in examples.enumerated() {
                    out += "{\"id\": \(jsonString(e.id)), \"label\": \(jsonString(e.label)), \"prediction\": \(jsonString(adapter.labels[clean[i].label])), "
                    out += "\"logits\": [\(clean[i].logits.map { "\($0)" }.joined(separator: ", "))]"
                    if let adversarial { out += ", \"adversarial_prediction\": \(jsonString(adapter.labels[adversarial[i].label]))" }
                    if let o = fooled?.outcomes[i] {
                        out += ", \"attack\": {\"status\": \(jsonString(o.status.rawValue)), \"queries\": \(o.queries), \"words_changed\": \(o.swaps.count), "
                        out += "\"adversarial_text\": \(jsonString(o.adversarial.pair ?? o.adversarial.text)), "
                        out += "\"swaps\": [\(o.swaps.map { "[\($0.position), \(jsonString($0.original)), \(jsonString($0.replacement))]" }.joined(separator: ", "))]}"
                    }
                    out += "}\n"
                }
                do { try out.write(toFile: predictions, atomically: true, encoding: .utf8) } catch {
                    throw CLIError("\(predictions): cannot write (\(error.localizedDescription))")
                }
            }
            if format == "json" {
                var obj: [String: Any] = ["n": scores.n, "correct": scores.correct, "accuracy": scores.accuracy, "macro_f1": scores.macroF1,
                                          "majority_accuracy": majority,
                                          "adapter": self.adapter, "method": adapter.config.method.rawValue, "data": source]
                if let advScores {
                    obj["attack"] = attack ?? ""
                    if attack == "fgsm" { obj["epsilon"] = Double(epsilon) }
                    obj["adversarial_accuracy"] = advScores.accuracy; obj["adversarial_macro_f1"] = advScores.macroF1
                }
                if let f = fooled {
                    obj["attack_success_rate"] = f.successRate; obj["mean_perturbed_word_fraction"] = f.meanPerturbedFraction
                    obj["mean_queries"] = f.meanQueries; obj["skipped"] = f.skipped; obj["succeeded"] = f.succeeded; obj["failed"] = f.failed
                    obj["examples_per_second"] = f.examplesPerSecond; obj["queries_per_second"] = f.queriesPerSecond
                    obj["attack_seconds"] = f.seconds; obj["victim_seconds"] = f.victimSeconds; obj["similarity_seconds"] = f.similaritySeconds
                }
                let d = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
                print(String(decoding: d, as: UTF8.self))
            } else if format == "row" {
                print(String(format: "| %d | %.3f | %.3f | %.3f | ", scores.n, majority, scores.accuracy, scores.macroF1)
                      + (advScores.map { String(format: "%.3f", $0.accuracy) } ?? "–") + " |")
            } else {
                print("\(info.domain ?? info.name) · \(adapter.config.method.rawValue) on \(source): n = \(scores.n)")
                print(String(format: "clean      accuracy %.4f  macro-F1 %.4f  (majority baseline %.4f)", scores.accuracy, scores.macroF1, majority))
                if let advScores, attack == "fgsm" {
                    print(String(format: "FGSM ε=%-4g accuracy %.4f  macro-F1 %.4f", Double(epsilon), advScores.accuracy, advScores.macroF1))
                }
                if let advScores, let f = fooled {
                    print(String(format: "TextFooler accuracy %.4f  macro-F1 %.4f · attack success %.4f (%d of %d attacked; %d already wrong) · %.1f%% of words changed · %.1f queries per example · %.2f examples/s, %.0f queries/s",
                                 advScores.accuracy, advScores.macroF1, f.successRate, f.succeeded, f.succeeded + f.failed, f.skipped,
                                 100 * f.meanPerturbedFraction, f.meanQueries, f.examplesPerSecond, f.queriesPerSecond))
                    print(String(format: "TextFooler time %.2f s: victim queries %.0f%%, sentence similarity %.0f%% (%d window pairs), search and candidates %.0f%%",
                                 f.seconds, 100 * f.victimSeconds / max(f.seconds, 1e-9), 100 * f.similaritySeconds / max(f.seconds, 1e-9),
                                 f.similarityTexts, 100 * max(0, 1 - (f.victimSeconds + f.similaritySeconds) / max(f.seconds, 1e-9))))
                }
            }
        }
    }
}

/// What TextFooler did over an evaluation.
struct TextFoolerSummary {
    var outcomes: [AttackOutcome]
    var seconds: Double
    /// Of `seconds`: answering victim queries, and the sentence-similarity constraint.
    var victimSeconds = 0.0
    var similaritySeconds = 0.0
    var similarityTexts = 0
    var skipped: Int { outcomes.filter { $0.status == .skipped }.count }
    var succeeded: Int { outcomes.filter { $0.status == .succeeded }.count }
    var failed: Int { outcomes.filter { $0.status == .failed }.count }
    /// Of the examples attacked (the victim was right to begin with), the share flipped.
    var successRate: Double { succeeded + failed == 0 ? 0 : Double(succeeded) / Double(succeeded + failed) }
    /// Over successful attacks (as TextAttack reports it).
    var meanPerturbedFraction: Double {
        let s = outcomes.filter { $0.status == .succeeded }
        return s.isEmpty ? 0 : s.reduce(0) { $0 + $1.perturbedFraction } / Double(s.count)
    }
    /// Over attacked examples.
    var meanQueries: Double {
        let a = outcomes.filter { $0.status != .skipped }
        return a.isEmpty ? 0 : Double(a.reduce(0) { $0 + $1.queries }) / Double(a.count)
    }
    var examplesPerSecond: Double { Double(outcomes.count) / max(seconds, 1e-9) }
    var queriesPerSecond: Double { Double(outcomes.reduce(0) { $0 + $1.queries }) / max(seconds, 1e-9) }
}

extension Eval {
    func runTextFooler(examples: [Example], targets: [Int], pretrained: PretrainedEncoder, adapter: Adapter) throws -> TextFoolerSummary {
        let words = examples.flatMap { WordSequence($0.textPair ?? $0.text).words }
        let cache = URL(fileURLWithPath: ProcessInfo.processInfo.environment["ADAPTERMIX_CACHE"]
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/adaptermix").path).appendingPathComponent("synonyms")
        let table = try SynonymTable.build(queries: words, options: SynonymTable.Options(threshold: synonymThreshold, maxCandidates: maxCandidates),
                                           partsOfSpeech: posFilter ? WordNetPOS() : nil, cacheDirectory: cache)
        let sentence = try sentenceModel.map { try PretrainedEncoder(directory: URL(fileURLWithPath: $0)) }
            ?? PretrainedEncoder(directory: PretrainedEncoder.defaultModelDirectory())
        // One single-threaded victim and similarity per thread; examples are attacked concurrently.
        let workers = max(1, min(threadOptions.threads, examples.count))
        let victims = try (0..<workers).map { _ in
            TimedVictim(try AdapterVictim(pretrained: pretrained, adapter: adapter, threads: 1, maxLength: maxLength))
        }
        let similarities = (0..<workers).map { _ in TimedSimilarity(EncoderSimilarity(pretrained: sentence)) }
        var options = TextFoolerOptions()
        options.similarityThreshold = similarityThreshold
        options.queryBudget = queryBudget
        let fooler = TextFooler(options: options)
        let inputs = examples.map { e in e.textPair.map { AttackInput(text: e.text, pair: $0) } ?? AttackInput(text: e.text) }
        let start = DispatchTime.now().uptimeNanoseconds
        let outcomes = try fooler.attackAll(inputs, labels: targets, victims: victims, similarities: similarities, synonyms: table)
        // Per-thread stopwatches: their sums over threads, as a share of threads × wall time.
        let scale = 1 / Double(workers)
        return TextFoolerSummary(outcomes: outcomes, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9,
                                 victimSeconds: scale * victims.reduce(0) { $0 + $1.seconds },
                                 similaritySeconds: scale * similarities.reduce(0) { $0 + $1.seconds },
                                 similarityTexts: similarities.reduce(0) { $0 + $1.pairs })
    }
}

/// The victim with a stopwatch: seconds spent answering queries.
final class TimedVictim: VictimClassifier {
    let inner: VictimClassifier
    private(set) var seconds = 0.0
    init(_ inner: VictimClassifier) { self.inner = inner }
    var classCount: Int { inner.classCount }
    func probabilities(_ inputs: [AttackInput]) throws -> [[Float]] {
        let t = DispatchTime.now().uptimeNanoseconds
        defer { seconds += Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9 }
        return try inner.probabilities(inputs)
    }
    func wordsSeen(_ input: AttackInput, words: WordSequence) throws -> Int? { try inner.wordsSeen(input, words: words) }
}

/// The sentence similarity with a stopwatch.
final class TimedSimilarity: SentenceSimilarity {
    let inner: SentenceSimilarity
    private(set) var seconds = 0.0
    private(set) var pairs = 0
    init(_ inner: SentenceSimilarity) { self.inner = inner }
    func similarity(_ pairs: [(String, String)]) throws -> [Double] {
        let t = DispatchTime.now().uptimeNanoseconds
        defer { seconds += Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9 }
        self.pairs += pairs.count
        return try inner.similarity(pairs)
    }
}
