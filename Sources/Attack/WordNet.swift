import Encoder
import Foundation

/// Which parts of speech WordNet 3.0 lists for each lemma, read from its `index.{noun,verb,adj,adv}`.
///
/// Used to keep only synonym candidates that could stand in the same grammatical role as the
/// original word. WordNet lists base forms only ("run", not "runs"), so inflected words are simply
/// absent; callers decide what absence means (`SynonymTable` keeps such candidates).
/// Thread-safety: immutable after loading, safe to share.
public struct WordNetPOS: Sendable {
    /// A set of WordNet parts of speech (WordNet's adjective satellites count as adjectives).
    public struct PartOfSpeech: OptionSet, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let noun = PartOfSpeech(rawValue: 1)
        public static let verb = PartOfSpeech(rawValue: 2)
        public static let adjective = PartOfSpeech(rawValue: 4)
        public static let adverb = PartOfSpeech(rawValue: 8)

        public var description: String {
            let names: [(PartOfSpeech, String)] = [(.noun, "noun"), (.verb, "verb"), (.adjective, "adj"), (.adverb, "adv")]
            return "[" + names.filter { contains($0.0) }.map(\.1).joined(separator: ", ") + "]"
        }
    }

    /// The four index files, the part of speech each lists and the POS letter its lines carry.
    static let indexFiles: [(file: String, pos: PartOfSpeech, letter: UInt8)] = [
        ("index.noun", .noun, UInt8(ascii: "n")), ("index.verb", .verb, UInt8(ascii: "v")),
        ("index.adj", .adjective, UInt8(ascii: "a")), ("index.adv", .adverb, UInt8(ascii: "r")),
    ]

    private let table: [String: PartOfSpeech]

    /// What this table was read from (the index files' paths, sizes and modification times, or a
    /// digest of the entries for a hand-made table); part of `SynonymTable`'s cache key.
    public let identity: String

    /// Number of distinct lemmas.
    public var count: Int { table.count }

    /// Reads `index.noun`, `index.verb`, `index.adj` and `index.adv` from a WordNet 3.0 `dict` folder.
    public init(directory: URL = WordNetPOS.packagedDirectory()) throws {
        var table: [String: PartOfSpeech] = [:]
        var identity = "wordnet"
        for (name, pos, letter) in Self.indexFiles {
            let url = directory.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw SynonymError(file: url.path, reason: "no such WordNet index file",
                                   hint: "run 'make setup' to unpack Debian's wordnet-base, or pass the folder that holds index.noun, index.verb, index.adj and index.adv")
            }
            identity += " " + (try fileIdentity(url))
            try Self.parseIndex(url, pos: pos, letter: letter, into: &table)
        }
        self.table = table
        self.identity = identity
    }

    /// A hand-made table (tests, or a lexicon from elsewhere); words are lower-cased, spaces become `_`.
    public init(_ entries: [String: PartOfSpeech]) {
        var table: [String: PartOfSpeech] = [:]
        for (word, pos) in entries { table[Self.key(word), default: []].formUnion(pos) }
        self.table = table
        var text = "wordnet-entries\n"
        for (word, pos) in table.sorted(by: { $0.key < $1.key }) { text += "\(word) \(pos.rawValue)\n" }
        identity = "entries " + AttackSHA256.hex(Array(text.utf8))
    }

    /// WordNet 3.0 from Debian's wordnet-base under `.cache/assets` (see scripts/assets.lock).
    public static func packagedDirectory(assets: URL = PretrainedEncoder.assetsDirectory()) -> URL {
        assets.appendingPathComponent("wordnet-base-3.0-37/usr/share/wordnet")
    }

    /// The parts of speech WordNet lists for `word`; empty when WordNet does not know it.
    public func partsOfSpeech(of word: String) -> PartOfSpeech {
        table[Self.key(word)] ?? []
    }

    /// Whether WordNet lists `word` under any part of speech.
    public func contains(_ word: String) -> Bool { table[Self.key(word)] != nil }

    /// WordNet's spelling of a lemma: lower case, multi-word lemmas joined by `_`.
    static func key(_ word: String) -> String {
        let lower = word.lowercased()
        return lower.contains(" ") ? lower.replacingOccurrences(of: " ", with: "_") : lower
    }

    /// One index file: licence header lines start with two spaces; every other line is
    /// `lemma pos synset_cnt p_cnt [ptr_symbol…] sense_cnt tagsense_cnt synset_offset…` (wndb(5WN)).
    static func parseIndex(_ url: URL, pos: PartOfSpeech, letter: UInt8, into table: inout [String: PartOfSpeech]) throws {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw SynonymError(file: url.path, reason: "cannot read: \(error.localizedDescription)",
                               hint: "check the file's permissions, or run 'make setup' again")
        }
        let space = UInt8(ascii: " "), newline = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r")
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let bytes = raw.bindMemory(to: UInt8.self)
            let n = bytes.count
            var start = 0, lineNumber = 0
            while start < n {
                lineNumber += 1
                var end = start
                while end < n && bytes[end] != newline { end += 1 }
                var contentEnd = end
                if contentEnd > start && bytes[contentEnd - 1] == cr { contentEnd -= 1 }
                defer { start = end + 1 }
                if contentEnd == start { continue }                           // blank line
                if bytes[start] == space { continue }                         // licence header
                var lemmaEnd = start
                while lemmaEnd < contentEnd && bytes[lemmaEnd] != space { lemmaEnd += 1 }
                let posAt = lemmaEnd + 1
                guard posAt < contentEnd, posAt + 1 == contentEnd || bytes[posAt + 1] == space, bytes[posAt] == letter else {
                    let line = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<contentEnd]), as: UTF8.self)
                    throw SynonymError(file: url.path, line: lineNumber,
                                       reason: "expected \"lemma \(Character(UnicodeScalar(letter))) …\", found \"\(line.prefix(80))\"",
                                       hint: "this is not a WordNet 3.0 index file for this part of speech; run 'make setup' again")
                }
                let lemma = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<lemmaEnd]), as: UTF8.self)
                table[lemma, default: []].insert(pos)
            }
        }
    }
}

/// A cheap identity of a file: resolved path, size in bytes and modification time (seconds since 1970).
func fileIdentity(_ url: URL) throws -> String {
    let path = url.resolvingSymlinksInPath().path
    let attributes: [FileAttributeKey: Any]
    do { attributes = try FileManager.default.attributesOfItem(atPath: path) } catch {
        throw SynonymError(file: path, reason: "cannot stat: \(error.localizedDescription)", hint: "check that the file exists")
    }
    let size = (attributes[.size] as? NSNumber)?.int64Value ?? -1
    let mtime = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
    return "\(path) \(size) \(String(format: "%.9f", mtime))"
}
