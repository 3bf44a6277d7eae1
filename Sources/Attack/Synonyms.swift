import Crypto
import Encoder
import Foundation
import Tensor

/// Where an attack gets substitution candidates for a word.
public protocol SynonymSource: Sendable {
    /// Candidates for `word` (lower-cased), best first, at most the source's limit; empty when none.
    func candidates(for word: String) -> [String]
}

/// An error about a synonym resource (GloVe, WordNet, the neighbour cache): names the file and
/// line, says what is wrong and what to do.
public struct SynonymError: Error, CustomStringConvertible, Equatable, Sendable {
    public var file: String
    public var line: Int?
    public var reason: String
    public var hint: String

    public init(file: String, line: Int? = nil, reason: String, hint: String = "") {
        self.file = file; self.line = line; self.reason = reason; self.hint = hint
    }

    public var description: String {
        let where_ = line.map { "\(file):\($0)" } ?? file
        return "\(where_): \(reason)" + (hint.isEmpty ? "" : " — \(hint)")
    }
}

// MARK: - GloVe vectors

/// Word vectors in GloVe's text format (a word, then D numbers, per line), L2-normalised so that a
/// dot product is a cosine.
///
/// GloVe files list words by corpus frequency, so a vocabulary limit keeps the rare tail — typos,
/// URL fragments, foreign tokens — out of the candidates. The default, 100,000 of GloVe 6B's
/// 400,000, covers ordinary English vocabulary; TextFooler's counter-fitted vocabulary has 65,713.
/// Thread-safety: immutable, safe to share.
public struct GloVeVectors: Sendable {
    /// How many of the most frequent words are loaded unless told otherwise (see the type's doc).
    public static let defaultLimit = 100_000

    /// The words, in file order (most frequent first).
    public let words: [String]
    /// Numbers per word (50 for glove.6B.50d).
    public let dimension: Int
    /// (V, D) row-major, each row of unit length (a zero row stays zero).
    public let vectors: [Float]
    private let index: [String: Int]

    public var count: Int { words.count }

    /// GloVe 6B 50-d as shipped in the PyPI wheel tagnews 1.5.0 under `.cache/assets` (scripts/assets.lock).
    public static func packagedFile(assets: URL = PretrainedEncoder.assetsDirectory()) -> URL {
        assets.appendingPathComponent("tagnews-1.5.0/tagnews/data/glove.6B.50d.txt")
    }

    /// Reads a GloVe text file, only its first `limit` distinct words (nil: all of them).
    ///
    /// The dimension is that of the first line; every line must have the same. A word listed twice
    /// keeps its first vector. Blank lines are skipped; `\r\n` line ends are accepted.
    public init(contentsOf url: URL, limit: Int? = GloVeVectors.defaultLimit) throws {
        if let limit, limit < 1 {
            throw SynonymError(file: url.path, reason: "vocabulary limit \(limit) must be at least 1", hint: "pass nil to load every word")
        }
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw SynonymError(file: url.path, reason: "no such GloVe file",
                               hint: "run 'make setup' to fetch GloVe 6B 50-d (PyPI tagnews==1.5.0), or pass a GloVe text file")
        }
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw SynonymError(file: url.path, reason: "cannot read: \(error.localizedDescription)",
                               hint: "check the file's permissions, or run 'make setup' again")
        }
        let parsed = try data.withUnsafeBytes { raw in
            try Self.parse(raw.bindMemory(to: UInt8.self), path: url.path, limit: limit ?? Int.max)
        }
        self.init(normalizedWords: parsed.words, vectors: parsed.vectors, dimension: parsed.dimension, index: parsed.index)
    }

    /// Vectors from memory (tests, another embedding); rows are normalised here. Duplicate words
    /// keep their first row.
    public init(words: [String], vectors: [Float], dimension: Int) {
        precondition(dimension > 0 && vectors.count == words.count * dimension, "vectors must be (words.count, dimension)")
        var kept: [String] = [], rows: [Float] = [], index: [String: Int] = [:]
        for (i, word) in words.enumerated() where index[word] == nil {
            index[word] = kept.count
            kept.append(word)
            rows.append(contentsOf: vectors[(i * dimension)..<((i + 1) * dimension)])
        }
        rows.withUnsafeMutableBufferPointer { p in
            for r in 0..<kept.count { Self.normalize(p.baseAddress! + r * dimension, count: dimension) }
        }
        self.init(normalizedWords: kept, vectors: rows, dimension: dimension, index: index)
    }

    private init(normalizedWords: [String], vectors: [Float], dimension: Int, index: [String: Int]) {
        self.words = normalizedWords; self.vectors = vectors; self.dimension = dimension; self.index = index
    }

    /// The row of `word`, or nil when it is not in the (limited) vocabulary.
    public func index(of word: String) -> Int? { index[word] }

    /// The unit vector of `word`, or nil when it is not in the (limited) vocabulary.
    public func vector(of word: String) -> ArraySlice<Float>? {
        index[word].map { vectors[($0 * dimension)..<(($0 + 1) * dimension)] }
    }

    @inline(__always)
    static func normalize(_ row: UnsafeMutablePointer<Float>, count: Int) {
        var sum: Double = 0
        for i in 0..<count { sum += Double(row[i]) * Double(row[i]) }
        guard sum > 0 else { return }
        let scale = Float(1 / sum.squareRoot())
        for i in 0..<count { row[i] *= scale }
    }

    /// One pass over the bytes: words are cut out by hand and each number is copied into a small
    /// NUL-terminated buffer for `strtof` (correctly rounded), so no per-line String splitting.
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>, path: String, limit: Int) throws
        -> (words: [String], vectors: [Float], dimension: Int, index: [String: Int])
    {
        let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t"), newline = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r")
        let hint = "a GloVe text file has one word and the same count of numbers per line, separated by spaces; if this is the packaged file, delete .cache/assets/tagnews-1.5.0 and run 'make setup' again"
        guard let base = bytes.baseAddress, bytes.count > 0 else {
            throw SynonymError(file: path, reason: "empty file", hint: hint)
        }
        let n = bytes.count
        let maxToken = 63
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: maxToken + 1)
        defer { buffer.deallocate() }

        var words: [String] = [], vectors: [Float] = [], index: [String: Int] = [:]
        var dimension = 0
        var pos = 0, lineNumber = 0
        while pos < n && words.count < limit {
            lineNumber += 1
            let lineStart = pos
            var lineEnd = n
            if let hit = memchr(base + pos, Int32(newline), n - pos) {
                lineEnd = UnsafeRawPointer(base).distance(to: UnsafeRawPointer(hit))
            }
            pos = lineEnd + 1
            var end = lineEnd
            if end > lineStart && base[end - 1] == cr { end -= 1 }
            if end == lineStart { continue }                                   // blank line

            var i = lineStart
            while i < end && base[i] != space && base[i] != tab { i += 1 }
            guard i > lineStart else {
                throw SynonymError(file: path, line: lineNumber, reason: "the line starts with a space, so it has no word", hint: hint)
            }
            let word = String(decoding: UnsafeBufferPointer(start: base + lineStart, count: i - lineStart), as: UTF8.self)

            let rowStart = vectors.count
            var fields = 0
            while true {
                while i < end && (base[i] == space || base[i] == tab) { i += 1 }
                if i >= end { break }
                let tokenStart = i
                while i < end && base[i] != space && base[i] != tab { i += 1 }
                let length = i - tokenStart
                fields += 1
                var value: Float = .nan
                if length <= maxToken {
                    UnsafeMutableRawPointer(buffer).copyMemory(from: base + tokenStart, byteCount: length)
                    buffer[length] = 0
                    var stop: UnsafeMutablePointer<CChar>? = nil
                    value = strtof(buffer, &stop)
                    if stop != buffer + length { value = .nan }
                }
                guard value.isFinite else {
                    let token = String(decoding: UnsafeBufferPointer(start: base + tokenStart, count: min(length, 40)), as: UTF8.self)
                    throw SynonymError(file: path, line: lineNumber,
                                       reason: "number \(fields) after \"\(word.prefix(40))\" is \"\(token)\", not a finite number", hint: hint)
                }
                vectors.append(value)
            }
            if dimension == 0 {
                guard fields > 0 else {
                    throw SynonymError(file: path, line: lineNumber, reason: "\"\(word.prefix(40))\" has no numbers after it", hint: hint)
                }
                dimension = fields
                // File order is frequency order and lines have similar lengths: size the buffer once.
                let estimate = min(limit, max(1, n / max(1, lineEnd - lineStart + 1)) + 16)
                vectors.reserveCapacity(estimate * dimension)
                words.reserveCapacity(estimate)
                index.reserveCapacity(estimate)
            }
            guard fields == dimension else {
                throw SynonymError(file: path, line: lineNumber,
                                   reason: "\"\(word.prefix(40))\" has \(fields) numbers after it, expected \(dimension) (as on the first line)", hint: hint)
            }
            if index[word] != nil {                                            // keep the first vector
                vectors.removeLast(dimension)
                continue
            }
            index[word] = words.count
            words.append(word)
            vectors.withUnsafeMutableBufferPointer { normalize($0.baseAddress! + rowStart, count: dimension) }
        }
        guard !words.isEmpty else {
            throw SynonymError(file: path, reason: "no word vectors in the file", hint: hint)
        }
        return (words, vectors, dimension, index)
    }
}

// MARK: - Neighbour table

/// Substitution candidates by cosine similarity of word vectors: for each query word, its nearest
/// neighbours in the vocabulary with cosine ≥ `threshold`, at most `maxCandidates`, best first.
///
/// TextFooler (Jin et al., 2020) takes up to 50 neighbours above a cosine threshold; the study uses
/// 0.8, TextAttack's `textfooler` recipe 0.5 (`WordSwapEmbedding(max_candidates=50)` with
/// `WordEmbeddingDistance(min_cos_sim=0.5)`). The table is built once for the words to attack
/// (`build(queries:…)`), so `candidates(for:)` is a dictionary look-up; words it was not built for,
/// or that are not in the vocabulary, have no candidates.
/// Thread-safety: immutable, safe to share.
public struct SynonymTable: SynonymSource, Equatable {
    /// A candidate and its cosine similarity to the query word.
    public struct Neighbour: Sendable, Hashable {
        public var word: String
        public var cosine: Float
        public init(word: String, cosine: Float) { self.word = word; self.cosine = cosine }
    }

    /// What decides a table, apart from the query words and the part-of-speech filter.
    public struct Options: Sendable, Hashable {
        /// How many of GloVe's most frequent words are candidates (nil: all); see `GloVeVectors`.
        public var vocabularyLimit: Int?
        /// Minimum cosine similarity (inclusive).
        public var threshold: Float
        /// At most this many candidates per word.
        public var maxCandidates: Int

        public init(vocabularyLimit: Int? = GloVeVectors.defaultLimit, threshold: Float = 0.8, maxCandidates: Int = 50) {
            self.vocabularyLimit = vocabularyLimit; self.threshold = threshold; self.maxCandidates = maxCandidates
        }

        /// The study's setting: cosine ≥ 0.8, 50 candidates.
        public static let study = Options()
        /// TextAttack's TextFooler recipe: cosine ≥ 0.5, 50 candidates.
        public static let textAttack = Options(threshold: 0.5)
    }

    /// How `build` obtained the table.
    public enum Origin: Sendable, Equatable {
        case computed
        case cache
        /// The cache file was unusable (the reason says why) and has been replaced.
        case rebuilt(reason: String)
    }

    public let threshold: Float
    public let maxCandidates: Int
    /// The `WordNetPOS.identity` of the part-of-speech filter, nil when unfiltered.
    public let partOfSpeechFilter: String?
    /// Query word → its candidates, best first; only words with at least one candidate.
    public let neighbours: [String: [Neighbour]]
    /// Not part of equality.
    public internal(set) var origin: Origin = .computed

    public static func == (a: SynonymTable, b: SynonymTable) -> Bool {
        a.threshold == b.threshold && a.maxCandidates == b.maxCandidates
            && a.partOfSpeechFilter == b.partOfSpeechFilter && a.neighbours == b.neighbours
    }

    public func candidates(for word: String) -> [String] {
        neighbours(of: word).map(\.word)
    }

    /// The candidates of `word` with their cosines, best first (ties: the more frequent word first).
    public func neighbours(of word: String) -> [Neighbour] {
        neighbours[word] ?? neighbours[word.lowercased()] ?? []
    }

    /// A table from given lists (tests, or candidates from elsewhere); lists are kept as given.
    public init(neighbours: [String: [Neighbour]], threshold: Float, maxCandidates: Int, partOfSpeechFilter: String? = nil) {
        self.neighbours = neighbours.filter { !$0.value.isEmpty }
        self.threshold = threshold; self.maxCandidates = maxCandidates; self.partOfSpeechFilter = partOfSpeechFilter
    }

    /// Computes the table for `queries` (lower-cased, duplicates ignored) against all of `vectors`.
    ///
    /// With `partsOfSpeech`, a candidate is kept only when it shares at least one WordNet part of
    /// speech with the query word; when either word is absent from WordNet (inflected forms, names,
    /// numbers) it is kept, since WordNet cannot tell. The filter applies before the
    /// `maxCandidates` cut, so filtered-out words leave room for the next ones.
    public init(queries: some Sequence<String>, vectors: GloVeVectors, threshold: Float = 0.8, maxCandidates: Int = 50,
                partsOfSpeech: WordNetPOS? = nil) {
        self.init(queries: queries, vectors: vectors, threshold: threshold, maxCandidates: maxCandidates,
                  partsOfSpeech: partsOfSpeech, queryBlock: 512, vocabularyBlock: 8192)
    }

    /// The computation, with its block sizes exposed for tests: scores(Qb, Vb) = queries(Qb, D) ·
    /// vocabulary(Vb, D)ᵀ by sgemm, then per query a bounded min-heap keeps the best `maxCandidates`.
    init(queries: some Sequence<String>, vectors: GloVeVectors, threshold: Float, maxCandidates: Int,
         partsOfSpeech: WordNetPOS?, queryBlock: Int, vocabularyBlock: Int) {
        self.threshold = threshold
        self.maxCandidates = maxCandidates
        self.partOfSpeechFilter = partsOfSpeech?.identity

        let found = Set(queries.map { $0.lowercased() }).sorted().compactMap { w in vectors.index(of: w).map { (w, $0) } }
        let Q = found.count, V = vectors.count, D = vectors.dimension, K = maxCandidates
        guard Q > 0, K > 0 else { neighbours = [:]; return }

        // Part-of-speech bits per vocabulary word (0: absent from WordNet, never filtered).
        let masks: [UInt8]? = partsOfSpeech.map { wn in vectors.words.map { wn.partsOfSpeech(of: $0).rawValue } }

        let heapScore = UnsafeMutablePointer<Float>.allocate(capacity: Q * K)     // (Q, K)
        let heapIndex = UnsafeMutablePointer<Int32>.allocate(capacity: Q * K)     // (Q, K)
        let heapCount = UnsafeMutablePointer<Int>.allocate(capacity: Q)
        heapCount.initialize(repeating: 0, count: Q)
        let Qb = max(1, min(queryBlock, Q)), Vb = max(1, min(vocabularyBlock, V))
        let queryRows = UnsafeMutablePointer<Float>.allocate(capacity: Qb * D)   // (Qb, D)
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: Qb * Vb)     // (Qb, Vb)
        defer {
            heapScore.deallocate(); heapIndex.deallocate(); heapCount.deallocate()
            queryRows.deallocate(); scores.deallocate()
        }
        let selfIndex = found.map { $0.1 }
        let threads = ProcessInfo.processInfo.activeProcessorCount

        vectors.vectors.withUnsafeBufferPointer { vocab in
            let vocab = vocab.baseAddress!
            for q0 in stride(from: 0, to: Q, by: Qb) {
                let nq = min(Qb, Q - q0)
                for r in 0..<nq { (queryRows + r * D).update(from: vocab + selfIndex[q0 + r] * D, count: D) }
                for v0 in stride(from: 0, to: V, by: Vb) {
                    let nv = min(Vb, V - v0)
                    sgemm(scores, ldc: nv, queryRows, lda: D, transA: false, vocab + v0 * D, ldb: D, transB: true,
                          m: nq, n: nv, k: D)
                    let block = RowSelector(scores: scores, columns: nv, offset: v0, firstQuery: q0, threshold: threshold,
                                            selfIndex: selfIndex, masks: masks, heapScore: heapScore, heapIndex: heapIndex,
                                            heapCount: heapCount, capacity: K)
                    if threads > 1 && nq * nv >= 1 << 16 {
                        let chunks = min(threads, nq)
                        DispatchQueue.concurrentPerform(iterations: chunks) { c in
                            for r in stride(from: c, to: nq, by: chunks) { block.select(row: r) }
                        }
                    } else {
                        for r in 0..<nq { block.select(row: r) }
                    }
                }
            }
        }

        var table: [String: [Neighbour]] = [:]
        for (q, (word, _)) in found.enumerated() where heapCount[q] > 0 {
            let entries = (0..<heapCount[q]).map { (score: heapScore[q * K + $0], index: Int(heapIndex[q * K + $0])) }
                .sorted { $0.score != $1.score ? $0.score > $1.score : $0.index < $1.index }
            table[word] = entries.map { Neighbour(word: vectors.words[$0.index], cosine: $0.score) }
        }
        neighbours = table
    }

    /// One block of scores(Qb, Vb) offered to the queries' heaps; each row touches only its own
    /// query's heap, so rows may run on different threads (hence `@unchecked Sendable`).
    private struct RowSelector: @unchecked Sendable {
        let scores: UnsafeMutablePointer<Float>      // (Qb, columns)
        let columns: Int, offset: Int, firstQuery: Int
        let threshold: Float
        let selfIndex: [Int]
        let masks: [UInt8]?
        let heapScore: UnsafeMutablePointer<Float>   // (Q, K)
        let heapIndex: UnsafeMutablePointer<Int32>   // (Q, K)
        let heapCount: UnsafeMutablePointer<Int>     // (Q)
        let capacity: Int

        /// Offers row `r` (vocabulary words `offset ..< offset + columns`, visited in increasing order)
        /// to its query's heap, whose root is its worst entry: lowest score, then highest index.
        func select(row r: Int) {
            let q = firstQuery + r, K = capacity
            let row = scores + r * columns
            let hs = heapScore + q * K, hi = heapIndex + q * K
            var n = heapCount[q]
            let exclude = selfIndex[q]
            let queryMask = masks?[exclude] ?? 0
            @inline(__always) func worse(_ a: Int, _ b: Int) -> Bool {       // heap slot a ranks below slot b
                hs[a] < hs[b] || (hs[a] == hs[b] && hi[a] > hi[b])
            }
            @inline(__always) func swapAt(_ a: Int, _ b: Int) {
                let s = hs[a]; hs[a] = hs[b]; hs[b] = s
                let i = hi[a]; hi[a] = hi[b]; hi[b] = i
            }
            for j in 0..<columns {
                let c = row[j]
                guard c >= threshold else { continue }
                // Indices only grow, so on equal scores the newcomer ranks lower: it must beat the root.
                if n == K && !(c > hs[0]) { continue }
                let v = offset + j
                if v == exclude { continue }
                if queryMask != 0, let masks {
                    let m = masks[v]
                    if m != 0 && m & queryMask == 0 { continue }
                }
                if n < K {
                    var child = n
                    hs[child] = c; hi[child] = Int32(v); n += 1
                    while child > 0 {
                        let parent = (child - 1) / 2
                        guard worse(child, parent) else { break }
                        swapAt(child, parent); child = parent
                    }
                } else {
                    hs[0] = c; hi[0] = Int32(v)
                    var parent = 0
                    while true {
                        let l = 2 * parent + 1, r = l + 1
                        var worst = parent
                        if l < n && worse(l, worst) { worst = l }
                        if r < n && worse(r, worst) { worst = r }
                        if worst == parent { break }
                        swapAt(parent, worst); parent = worst
                    }
                }
            }
            heapCount[q] = n
        }
    }

    // MARK: Build with a disk cache

    /// The table for `queries` from `gloveFile`, computed or read from `cacheDirectory`.
    ///
    /// The cache key is a SHA-256 over the GloVe file's identity — its resolved path, size and
    /// modification time, not its contents (hashing 171 MB each run would cost more than a cache
    /// hit saves; the packaged file is verified by scripts/setup.sh) — and the vocabulary limit,
    /// threshold, maximum candidates, the part-of-speech filter's identity and the sorted,
    /// lower-cased query words. A cache hit does not read the GloVe file. An unreadable or corrupt
    /// cache file (bad magic, key, checksum or structure) is rebuilt and replaced.
    public static func build(queries: some Sequence<String>, gloveFile: URL = GloVeVectors.packagedFile(),
                             options: Options = .study, partsOfSpeech: WordNetPOS? = nil,
                             cacheDirectory: URL? = nil) throws -> SynonymTable {
        let words = Set(queries.map { $0.lowercased() }).sorted()
        guard (0...Int(UInt16.max)).contains(options.maxCandidates) else {
            throw SynonymError(file: gloveFile.path, reason: "maxCandidates \(options.maxCandidates) is outside 0...65535", hint: "pass 50 as TextFooler does")
        }
        guard options.threshold.isFinite else {
            throw SynonymError(file: gloveFile.path, reason: "threshold \(options.threshold) is not a number", hint: "pass a cosine such as 0.8 or 0.5")
        }
        guard FileManager.default.fileExists(atPath: gloveFile.path) else {
            throw SynonymError(file: gloveFile.path, reason: "no such GloVe file",
                               hint: "run 'make setup' to fetch GloVe 6B 50-d (PyPI tagnews==1.5.0), or pass a GloVe text file")
        }
        var cacheFile: URL?
        var key = ""
        var staleReason: String?
        if let cacheDirectory {
            key = cacheKey(gloveIdentity: try fileIdentity(gloveFile), options: options,
                           partOfSpeechFilter: partsOfSpeech?.identity, queries: words)
            let file = cacheDirectory.appendingPathComponent("synonyms-\(key).bin")
            cacheFile = file
            if FileManager.default.fileExists(atPath: file.path) {
                do {
                    var table = try readCache(file, key: key, threshold: options.threshold, maxCandidates: options.maxCandidates,
                                              partOfSpeechFilter: partsOfSpeech?.identity)
                    table.origin = .cache
                    return table
                } catch let error as SynonymError {
                    staleReason = error.reason
                }
            }
        }
        let vectors = try GloVeVectors(contentsOf: gloveFile, limit: options.vocabularyLimit)
        var table = SynonymTable(queries: words, vectors: vectors, threshold: options.threshold,
                                 maxCandidates: options.maxCandidates, partsOfSpeech: partsOfSpeech)
        if let cacheDirectory, let cacheFile {
            do {
                try FileManager.default.createDirectory(at: cacheDirectory, withIntermediateDirectories: true)
                try Data(table.cacheBytes(key: key)).write(to: cacheFile, options: .atomic)
            } catch {
                throw SynonymError(file: cacheFile.path, reason: "cannot write the synonym cache: \(error.localizedDescription)",
                                   hint: "pass a writable cache folder, or none")
            }
        }
        table.origin = staleReason.map { .rebuilt(reason: $0) } ?? .computed
        return table
    }

    static func cacheKey(gloveIdentity: String, options: Options, partOfSpeechFilter: String?, queries sortedWords: [String]) -> String {
        var text = "adaptermix synonym table \(cacheVersion)\n"
        text += "glove \(gloveIdentity)\n"
        text += "vocabulary-limit \(options.vocabularyLimit.map(String.init) ?? "all")\n"
        text += "threshold \(options.threshold) \(String(options.threshold.bitPattern, radix: 16))\n"
        text += "max-candidates \(options.maxCandidates)\n"
        text += "pos-filter \(partOfSpeechFilter ?? "none")\n"
        text += "queries \(sortedWords.count)\n"
        for w in sortedWords { text += w + "\n" }
        return AttackSHA256.hex(Array(text.utf8))
    }

    // Cache file, little-endian: magic (8) · key (64 ASCII hex) · threshold bits u32 · max candidates
    // u32 · entry count u32 · entries · SHA-256 (32) of all bytes before it. An entry: word (u16
    // length + UTF-8), neighbour count u16, then per neighbour: word (u16 length + UTF-8), cosine bits u32.
    static let cacheVersion = 1
    static let cacheMagic = Array("AMXSYN01".utf8)

    func cacheBytes(key: String) -> [UInt8] {
        var out = Self.cacheMagic
        out += Array(key.utf8)
        func u16(_ v: Int) { out.append(UInt8(v & 0xff)); out.append(UInt8((v >> 8) & 0xff)) }
        func u32(_ v: UInt32) { for s in stride(from: 0, to: 32, by: 8) { out.append(UInt8((v >> UInt32(s)) & 0xff)) } }
        func string(_ s: String) {
            let b = Array(s.utf8.prefix(Int(UInt16.max)))
            u16(b.count); out += b
        }
        u32(threshold.bitPattern); u32(UInt32(maxCandidates)); u32(UInt32(neighbours.count))
        for word in neighbours.keys.sorted() {
            let list = neighbours[word]!
            string(word); u16(list.count)
            for nb in list { string(nb.word); u32(nb.cosine.bitPattern) }
        }
        out += AttackSHA256.hash(out)
        return out
    }

    static func readCache(_ file: URL, key: String, threshold: Float, maxCandidates: Int, partOfSpeechFilter: String?) throws -> SynonymTable {
        func bad(_ reason: String) -> SynonymError {
            SynonymError(file: file.path, reason: reason, hint: "the cache file is rebuilt")
        }
        let bytes: [UInt8]
        do { bytes = [UInt8](try Data(contentsOf: file)) } catch { throw bad("cannot read: \(error.localizedDescription)") }
        let header = cacheMagic.count + 64 + 12
        guard bytes.count >= header + 32 else { throw bad("truncated (\(bytes.count) bytes)") }
        guard Array(bytes[0..<cacheMagic.count]) == cacheMagic else { throw bad("not a synonym cache file (bad magic)") }
        guard Array(bytes[cacheMagic.count..<(cacheMagic.count + 64)]) == Array(key.utf8) else { throw bad("written for another key") }
        let body = bytes.count - 32
        guard AttackSHA256.hash(Array(bytes[0..<body])) == Array(bytes[body...]) else { throw bad("checksum mismatch") }
        var at = cacheMagic.count + 64
        func u16() throws -> Int {
            guard at + 2 <= body else { throw bad("truncated entry at byte \(at)") }
            defer { at += 2 }
            return Int(bytes[at]) | Int(bytes[at + 1]) << 8
        }
        func u32() throws -> UInt32 {
            guard at + 4 <= body else { throw bad("truncated entry at byte \(at)") }
            defer { at += 4 }
            return UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
        }
        func string() throws -> String {
            let n = try u16()
            guard at + n <= body else { throw bad("truncated word at byte \(at)") }
            defer { at += n }
            return String(decoding: bytes[at..<(at + n)], as: UTF8.self)
        }
        guard try u32() == threshold.bitPattern, try u32() == UInt32(maxCandidates) else { throw bad("written for other options") }
        let entries = Int(try u32())
        var table: [String: [Neighbour]] = [:]
        table.reserveCapacity(entries)
        for _ in 0..<entries {
            let word = try string()
            let count = try u16()
            guard count <= maxCandidates else { throw bad("\"\(word)\" has \(count) candidates, more than \(maxCandidates)") }
            var list: [Neighbour] = []
            list.reserveCapacity(count)
            for _ in 0..<count {
                let w = try string()
                list.append(Neighbour(word: w, cosine: Float(bitPattern: try u32())))
            }
            table[word] = list
        }
        guard at == body else { throw bad("\(body - at) unexpected bytes after the last entry") }
        return SynonymTable(neighbours: table, threshold: threshold, maxCandidates: maxCandidates, partOfSpeechFilter: partOfSpeechFilter)
    }
}

// MARK: - SHA-256
/// SHA-256 through swift-crypto (the project's one implementation of it).
enum AttackSHA256 {
    static func hash(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }
    static func hex(_ bytes: [UInt8]) -> String { hash(bytes).map { String(format: "%02x", $0) }.joined() }
}
