import ArgumentParser
import Datasets
import Encoder
import Foundation

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "The domains: list them, show their statistics, export exactly what is trained and tested on.",
        subcommands: [DataList.self, DataStats.self, DataExport.self])
}

/// Where domains come from and how they are split.
struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp("YAML file declaring your own domains (see docs/datasets.md).", valueName: "FILE"))
    var datasets: String?

    @Option(help: "Seed of the train/validation/test split.")
    var seed: UInt64 = 42

    @Option(name: .customLong("max-train"), help: "Cap on training examples per domain (stratified, deterministic).")
    var maxTrain: Int?
    @Option(name: .customLong("max-validation"), help: "Cap on validation examples per domain.")
    var maxValidation: Int?
    @Option(name: .customLong("max-test"), help: "Cap on test examples per domain.")
    var maxTest: Int?

    func validate() throws {
        for (name, v) in [("--max-train", maxTrain), ("--max-validation", maxValidation), ("--max-test", maxTest)] {
            if let v, v < 1 { throw ValidationError("\(name) must be at least 1") }
        }
    }

    var splitOptions: SplitOptions {
        var o = SplitOptions()
        o.seed = seed
        o.maxTrain = maxTrain
        o.maxValidation = maxValidation
        o.maxTest = maxTest
        return o
    }

    func catalog() throws -> DomainCatalog {
        try DomainCatalog(assets: PretrainedEncoder.assetsDirectory(), userFile: datasets.map { URL(fileURLWithPath: $0) })
    }
}

/// `s` left-aligned in `width` columns.
func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }

/// Runs `body`, turning the project's errors into one clear line.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as CLIError { throw e } catch let e as CustomStringConvertible & Error {
        throw CLIError(e.description)
    }
}

struct DataList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Every domain with its split sizes and labels.")

    @OptionGroup var data: DataOptions

    @Option(help: "table or json.")
    var format: String = "table"

    func validate() throws {
        guard ["table", "json"].contains(format) else { throw ValidationError("--format must be table or json") }
    }

    func run() throws {
        try reportingErrors {
            let catalog = try data.catalog()
            var rows: [[String: Any]] = []
            if format == "table" {
                print("domain            pair  labels    train  validation    test  source")
            }
            for spec in catalog.domains {
                let s = try catalog.load(spec.name, options: data.splitOptions)
                let source = "\(spec.package.name)==\(spec.package.version) (\(spec.package.registry))"
                if format == "table" {
                    print(pad(spec.name, 17) + " " + pad(spec.isPair ? "yes" : "no", 5)
                          + String(format: " %6d %8d %11d %7d  ", s.labels.count, s.train.count, s.validation.count, s.test.count) + source)
                } else {
                    rows.append(["name": spec.name, "title": spec.title, "pair": spec.isPair, "labels": s.labels,
                                 "train": s.train.count, "validation": s.validation.count, "test": s.test.count,
                                 "package": ["registry": spec.package.registry, "name": spec.package.name, "version": spec.package.version],
                                 "skipped": s.skipped, "removed_leaks": s.removedLeaks])
                }
            }
            if format == "json" {
                let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            }
        }
    }
}

struct DataStats: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Counts per split and label, document and sentence lengths.")

    @OptionGroup var data: DataOptions

    @Argument(help: "Domain name (see 'adaptermix data list').")
    var domain: String

    func run() throws {
        try reportingErrors {
            let catalog = try data.catalog()
            let spec = try catalog.spec(domain)
            let s = try catalog.load(domain, options: data.splitOptions)
            let stats = s.stats
            print("\(spec.name) — \(spec.title); \(spec.package.name)==\(spec.package.version) (\(spec.package.registry))\(spec.isPair ? "; text pairs" : "")")
            print("split        examples  words/example  sentences/example  words/sentence")
            for split in Split.allCases {
                let st = stats[split]!
                print(pad(split.rawValue, 11) + String(format: " %9d %14.1f %18.2f %15.1f", st.examples, st.meanWords, st.meanSentences, st.meanSentenceWords))
            }
            print("\nlabel" + String(repeating: " ", count: 26) + "train  validation    test")
            for label in s.labels {
                let c = Split.allCases.map { stats[$0]!.labelCounts[label] ?? 0 }
                print(pad(String(label.prefix(30)), 30) + String(format: " %6d %11d %7d", c[0], c[1], c[2]))
            }
            let skipped = s.skipped.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }
            print("\nskipped rows: " + (skipped.isEmpty ? "none" : skipped.joined(separator: ", ")))
            print("removed from train/validation because the same text (normalised) is in a later split: \(s.removedLeaks)")
        }
    }
}

struct DataExport: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "JSON lines {id, text, text_pair, label} of one split.")

    @OptionGroup var data: DataOptions

    @Argument(help: "Domain name.")
    var domain: String

    @Option(help: "train, validation or test.")
    var split: String

    func validate() throws {
        guard Split(rawValue: split) != nil else { throw ValidationError("--split must be train, validation or test") }
    }

    func run() throws {
        try reportingErrors {
            let s = try data.catalog().load(domain, options: data.splitOptions)
            var out = ""
            for e in s[Split(rawValue: split)!] {
                out += "{\"id\": \(jsonString(e.id)), \"text\": \(jsonString(e.text))"
                if let p = e.textPair { out += ", \"text_pair\": \(jsonString(p))" }
                out += ", \"label\": \(jsonString(e.label))}\n"
                if out.utf8.count > 1 << 20 { FileHandle.standardOutput.write(Data(out.utf8)); out = "" }
            }
            FileHandle.standardOutput.write(Data(out.utf8))
        }
    }
}
