import Foundation
import Yams

/// The domains a command can use: the thirteen built-in ones and those a user declares in YAML.
///
/// A user's file (`--datasets FILE`) lists domains read with the generic readers:
/// ```yaml
/// domains:
///   - name: my-reviews          # letters, digits, - and _
///     title: My product reviews # optional
///     format: csv               # csv, csv-noheader, tsv, tsv-noheader, tsv-quoted, jsonl, glue-tsv, orange-tab
///     train: data/train.csv     # relative to this file
///     test: data/test.csv       # optional; without it the study's 8:1:1 split is made
///     text: review              # column name (or 0-based index for header-less files)
///     text_pair: null           # optional second text
///     label: stars
///     encoding: utf-8           # optional: utf-8, latin1, windows-1252
///     labels: [neg, pos]        # optional: any other label is an error
/// ```
public struct DomainCatalog: Sendable {
    public let assets: URL
    public let domains: [DomainSpec]

    static let keys: Set<String> = ["name", "title", "format", "train", "test", "text", "text_pair", "label", "encoding", "labels"]

    public init(assets: URL, userFile: URL? = nil) throws {
        self.assets = assets
        var domains = DomainRegistry.builtIn
        if let userFile { domains += try Self.userDomains(userFile, taken: Set(domains.map(\.name))) }
        self.domains = domains
    }

    public func spec(_ name: String) throws -> DomainSpec {
        if let d = domains.first(where: { $0.name == name }) { return d }
        throw DatasetError(file: "domain \"\(name)\"", reason: "unknown domain",
                           hint: "known domains: \(domains.map(\.name).joined(separator: ", "))")
    }

    /// Reads a domain and splits it (the study's splits, caps, train/test disjointness).
    public func load(_ name: String, options: SplitOptions = SplitOptions()) throws -> DomainSplits {
        let spec = try spec(name)
        try spec.checkFiles(assets: assets)
        let raw = try spec.load(assets)
        return try makeSplits(name: spec.name, train: raw.train, test: raw.test, skipped: raw.skipped, options: options)
    }

    static func userDomains(_ file: URL, taken: Set<String>) throws -> [DomainSpec] {
        let path = file.path
        guard let text = try? String(contentsOf: file, encoding: .utf8) else {
            throw DatasetError(file: path, reason: "cannot read the file (missing, or not UTF-8)")
        }
        let root: Any?
        do { root = try Yams.load(yaml: text) } catch {
            throw DatasetError(file: path, reason: "not valid YAML: \(error)")
        }
        guard let top = root as? [String: Any], let list = top["domains"] as? [Any] else {
            throw DatasetError(file: path, reason: "expected a top-level \"domains:\" list", hint: "see docs/datasets.md")
        }
        if let extra = top.keys.first(where: { $0 != "domains" }) {
            throw DatasetError(file: path, reason: "unknown top-level key \"\(extra)\"", hint: "only \"domains\" is read")
        }
        let base = file.deletingLastPathComponent()
        var names = taken
        var specs: [DomainSpec] = []
        for (i, item) in list.enumerated() {
            let at = "domains[\(i)]"
            guard let d = item as? [String: Any] else { throw DatasetError(file: path, reason: "\(at) is not a mapping") }
            if let unknown = d.keys.sorted().first(where: { !keys.contains($0) }) {
                throw DatasetError(file: path, reason: "\(at): unknown key \"\(unknown)\"", hint: "known keys: \(keys.sorted().joined(separator: ", "))")
            }
            func string(_ key: String, required: Bool = true) throws -> String? {
                switch d[key] {
                case nil, is NSNull:
                    if required { throw DatasetError(file: path, reason: "\(at): missing \"\(key)\"") }
                    return nil
                case let s as String: return s
                case let n as Int: return String(n)
                default: throw DatasetError(file: path, reason: "\(at).\(key) must be a string")
                }
            }
            let name = try string("name")!
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw DatasetError(file: path, reason: "\(at).name \"\(name)\" may hold only letters, digits, - and _")
            }
            guard !names.contains(name) else { throw DatasetError(file: path, reason: "\(at).name \"\(name)\" is already a domain") }
            names.insert(name)
            let formatName = try string("format")!
            guard let format = RecordFormat(name: formatName) else {
                throw DatasetError(file: path, reason: "\(at).format: unknown format \"\(formatName)\"",
                                   hint: "csv, csv-noheader, tsv, tsv-noheader, tsv-quoted, jsonl, glue-tsv, orange-tab")
            }
            let encodingName = try string("encoding", required: false) ?? "utf-8"
            guard let charset = Charset(name: encodingName) else {
                throw DatasetError(file: path, reason: "\(at).encoding: unknown encoding \"\(encodingName)\"", hint: "utf-8, latin1, windows-1252")
            }
            var allowed: Set<String>?
            if let labels = d["labels"] {
                guard let l = labels as? [Any] else { throw DatasetError(file: path, reason: "\(at).labels must be a list") }
                allowed = Set(l.map { "\($0)" })
            }
            let mapping = ColumnMapping(text: try string("text")!, textPair: try string("text_pair", required: false), label: try string("label")!)
            let train = base.appendingPathComponent(try string("train")!).standardizedFileURL
            let test = try string("test", required: false).map { base.appendingPathComponent($0).standardizedFileURL }
            let encoding = TextEncoding(charset)
            let options = RecordOptions(allowedLabels: allowed)
            specs.append(DomainSpec(
                name: name, title: try string("title", required: false) ?? name,
                package: PackageRef(registry: "file", name: path, version: "-"), files: [], isPair: mapping.textPair != nil,
                load: { _ in
                    for url in [train] + (test.map { [$0] } ?? []) where !FileManager.default.fileExists(atPath: url.path) {
                        throw DatasetError(file: url.path, reason: "no such file", hint: "declared in \(path) for domain \"\(name)\"")
                    }
                    let tr = try loadRecords(url: train, format: format, mapping: mapping, encoding: encoding, options: options)
                    let te = try test.map { try loadRecords(url: $0, format: format, mapping: mapping, encoding: encoding, options: options) }
                    return RawDomain(train: tr.examples, test: te?.examples, skipped: tr.skipped.merging(te?.skipped ?? [:], uniquingKeysWith: +))
                }))
        }
        return specs
    }
}
