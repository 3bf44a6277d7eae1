import Foundation
import XCTest

@testable import Attack

/// Synonym candidates: GloVe parsing, the blocked nearest-neighbour search, the WordNet
/// part-of-speech filter and the disk cache.
///
/// The references are independent of the code under test: cosines of hand-chosen vectors worked out
/// as fractions; a brute-force search in Double written here; and, for the packaged GloVe 6B 50-d
/// (first 20,000 words), neighbour lists computed once with numpy 2.4 (float64: rows normalised,
/// `M @ M[q]`, the word itself removed, stable argsort descending, first 50 with cosine ≥ threshold),
/// and WordNet parts of speech read with grep from the index files.
final class SynonymTests: XCTestCase {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let assets = packageRoot.appendingPathComponent(".cache/assets")

    // MARK: Helpers

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("adaptermix-synonyms-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func write(_ text: String, to name: String, in dir: URL) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    /// Seven words in 4-d with integer coordinates, so every cosine is a fraction worked out by hand.
    static let tinyGloVe = """
        king 3 4 0 0
        queen 4 3 0 0
        monarch 6 8 0 0
        royal 0 4 3 0
        prince 3 0 4 0
        emperor 5 12 0 0
        man 0 0 0 2
        nothing 0 0 0 0

        """

    func tinyVectors() throws -> (url: URL, vectors: GloVeVectors) {
        let url = try write(Self.tinyGloVe, to: "tiny.txt", in: try temporaryDirectory())
        return (url, try GloVeVectors(contentsOf: url, limit: nil))
    }

    func assertNeighbours(_ got: [SynonymTable.Neighbour], _ expected: [(String, Double)], accuracy: Double,
                          file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.map(\.word), expected.map(\.0), file: file, line: line)
        for (g, e) in zip(got, expected) {
            XCTAssertEqual(Double(g.cosine), e.1, accuracy: accuracy, "cosine of \(g.word)", file: file, line: line)
        }
    }

    // MARK: GloVe file

    func testTinyFileLoadsNormalisedRows() throws {
        let (_, v) = try tinyVectors()
        XCTAssertEqual(v.count, 8)
        XCTAssertEqual(v.dimension, 4)
        XCTAssertEqual(v.words, ["king", "queen", "monarch", "royal", "prince", "emperor", "man", "nothing"])
        for (got, want) in zip(Array(v.vector(of: "emperor")!), [5.0 / 13, 12.0 / 13, 0, 0]) {
            XCTAssertEqual(Double(got), want, accuracy: 1e-7)
        }
        XCTAssertEqual(Array(v.vector(of: "nothing")!), [0, 0, 0, 0], "a zero row stays zero")
        XCTAssertNil(v.index(of: "queens"))

        let limited = try GloVeVectors(contentsOf: try write(Self.tinyGloVe, to: "t.txt", in: try temporaryDirectory()), limit: 2)
        XCTAssertEqual(limited.words, ["king", "queen"])
        XCTAssertEqual(limited.vectors.count, 8)
    }

    func testMalformedLinesNameFileAndLine() throws {
        let dir = try temporaryDirectory()
        let cases: [(text: String, line: Int, mentions: String)] = [
            ("king 3 4 0 0\nqueen 4 x 0 0\n", 2, "\"x\""),
            ("king 3 4 0 0\n\nqueen 4 3 0\n", 3, "3 numbers"),
            ("king 3 4 0 0\r\nqueen 4 3 0 0 1\r\n", 2, "5 numbers"),
            ("king 3 4 0 0\nqueen nan 0 0 0\n", 2, "not a finite number"),
            ("king 3 4 0 0\nqueen 1e99 0 0 0\n", 2, "not a finite number"),
            (" 3 4 0 0\n", 1, "no word"),
            ("king\n", 1, "no numbers"),
        ]
        for (i, c) in cases.enumerated() {
            let url = try write(c.text, to: "bad\(i).txt", in: dir)
            XCTAssertThrowsError(try GloVeVectors(contentsOf: url, limit: nil), "case \(i)") { error in
                guard let e = error as? SynonymError else { return XCTFail("case \(i): \(error)") }
                XCTAssertEqual(e.file, url.path)
                XCTAssertEqual(e.line, c.line, "case \(i): \(e)")
                XCTAssertTrue(e.description.contains("bad\(i).txt:\(c.line):"), "\(e)")
                XCTAssertTrue(e.reason.contains(c.mentions), "case \(i): \(e)")
            }
        }
        // A malformed line past the limit is never read.
        let url = try write("king 3 4 0 0\nqueen 4 x 0 0\n", to: "late.txt", in: dir)
        XCTAssertEqual(try GloVeVectors(contentsOf: url, limit: 1).words, ["king"])
        XCTAssertThrowsError(try GloVeVectors(contentsOf: dir.appendingPathComponent("missing.txt"))) { error in
            XCTAssertTrue("\(error)".contains("make setup"), "\(error)")
        }
    }

    // MARK: Neighbours

    func testNeighboursOfHandMadeVectors() throws {
        let (_, v) = try tinyVectors()
        // king = (3,4)/5: monarch 1, emperor (15+48)/65, queen 24/25, royal 16/25, prince 9/25, man 0.
        let table = SynonymTable(queries: ["King", "queen", "unknown"], vectors: v, threshold: 0.6, maxCandidates: 10)
        assertNeighbours(table.neighbours(of: "king"), [("monarch", 1), ("emperor", 63.0 / 65), ("queen", 24.0 / 25), ("royal", 16.0 / 25)],
                         accuracy: 1e-6)
        XCTAssertEqual(table.candidates(for: "king"), ["monarch", "emperor", "queen", "royal"], "the word itself is excluded")
        // queen = (4,3)/5: king and monarch 24/25, emperor (20+36)/65; royal and prince 12/25 < 0.6.
        XCTAssertEqual(Set(table.candidates(for: "queen").prefix(2)), ["king", "monarch"])
        XCTAssertEqual(table.candidates(for: "queen").last, "emperor")
        XCTAssertEqual(Double(table.neighbours(of: "queen")[2].cosine), 56.0 / 65, accuracy: 1e-6)
        XCTAssertEqual(table.candidates(for: "unknown"), [])
        XCTAssertEqual(table.candidates(for: "prince"), [], "not a query")

        let strict = SynonymTable(queries: ["king"], vectors: v, threshold: 0.8, maxCandidates: 10)
        XCTAssertEqual(strict.candidates(for: "king"), ["monarch", "emperor", "queen"])
        let capped = SynonymTable(queries: ["king"], vectors: v, threshold: 0.6, maxCandidates: 2)
        XCTAssertEqual(capped.candidates(for: "king"), ["monarch", "emperor"])
        XCTAssertEqual(SynonymTable(queries: ["king"], vectors: v, threshold: 0.97, maxCandidates: 10).candidates(for: "king"), ["monarch"])
        XCTAssertEqual(SynonymTable(queries: ["king"], vectors: v, threshold: 0.6, maxCandidates: 0).candidates(for: "king"), [])
        XCTAssertEqual(SynonymTable(queries: ["nothing"], vectors: v, threshold: -1, maxCandidates: 3).neighbours(of: "nothing").map(\.cosine),
                       [0, 0, 0], "a zero vector has cosine 0 with everything")
    }

    func testThresholdIsInclusiveAndTiesGoToTheMoreFrequentWord() throws {
        // Unit vectors with exact binary components: the cosines 0.5 and 1 are exact in Float.
        let v = GloVeVectors(words: ["a", "b", "c", "d"],
                             vectors: [1, 0, 0, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0, 1, 0, 0], dimension: 4)
        let table = SynonymTable(queries: ["a", "b"], vectors: v, threshold: 0.5, maxCandidates: 5)
        assertNeighbours(table.neighbours(of: "a"), [("b", 0.5), ("c", 0.5)], accuracy: 0)
        assertNeighbours(table.neighbours(of: "b"), [("c", 1), ("a", 0.5), ("d", 0.5)], accuracy: 0)
        XCTAssertEqual(SynonymTable(queries: ["b"], vectors: v, threshold: 0.5, maxCandidates: 2).candidates(for: "b"), ["c", "a"])
    }

    /// The blocked sgemm + heap search against a brute force in Double, on small odd block sizes.
    func testBlockedSearchMatchesBruteForce() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Double {                                     // SplitMix64 → uniform in [-1, 1)
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Double((z ^ (z >> 31)) >> 11) / Double(1 << 52) - 1
        }
        let V = 300, D = 8, K = 6, threshold = 0.35
        let words = (0..<V).map { "w\($0)" }
        let raw = (0..<(V * D)).map { _ in next() }
        let v = GloVeVectors(words: words, vectors: raw.map(Float.init), dimension: D)
        let queries = stride(from: 0, to: V, by: 7).map { words[$0] } + ["absent"]

        func norm(_ i: Int) -> Double { (0..<D).map { raw[i * D + $0] * raw[i * D + $0] }.reduce(0, +).squareRoot() }
        for (qb, vb) in [(7, 13), (1, 1), (512, 8192), (3, 300)] {
            let table = SynonymTable(queries: queries, vectors: v, threshold: Float(threshold), maxCandidates: K,
                                     partsOfSpeech: nil, queryBlock: qb, vocabularyBlock: vb)
            for q in queries.dropLast() {
                let qi = Int(q.dropFirst())!
                let expected = (0..<V).filter { $0 != qi }.map { j -> (String, Double) in
                    (words[j], (0..<D).map { raw[qi * D + $0] * raw[j * D + $0] }.reduce(0, +) / (norm(qi) * norm(j)))
                }.filter { $0.1 >= threshold }.sorted { $0.1 > $1.1 }.prefix(K)
                assertNeighbours(table.neighbours(of: q), Array(expected), accuracy: 1e-5)
            }
            XCTAssertEqual(table.candidates(for: "absent"), [])
        }
    }

    // MARK: WordNet

    func testPartOfSpeechFilterOnHandMadeLexicon() throws {
        let (_, v) = try tinyVectors()
        let wn = WordNetPOS(["King": .noun, "queen": .noun, "emperor": .verb, "monarch": [.noun, .verb]])
        XCTAssertEqual(wn.partsOfSpeech(of: "king"), .noun)
        // king @ 0.6 unfiltered: monarch, emperor, queen, royal. emperor shares no POS with king; royal
        // is not in the lexicon and stays.
        let filtered = SynonymTable(queries: ["king", "prince"], vectors: v, threshold: 0.6, maxCandidates: 10, partsOfSpeech: wn)
        XCTAssertEqual(filtered.candidates(for: "king"), ["monarch", "queen", "royal"])
        // The filter comes before the cut: two candidates are monarch and queen, not monarch and emperor.
        let capped = SynonymTable(queries: ["king"], vectors: v, threshold: 0.6, maxCandidates: 2, partsOfSpeech: wn)
        XCTAssertEqual(capped.candidates(for: "king"), ["monarch", "queen"])
        // prince is not in the lexicon: nothing is filtered (royal 12/25 < 0.6 aside, all below threshold).
        let unfilteredPrince = SynonymTable(queries: ["prince"], vectors: v, threshold: 0.3, maxCandidates: 10)
        XCTAssertEqual(filtered.partOfSpeechFilter, wn.identity)
        XCTAssertEqual(SynonymTable(queries: ["prince"], vectors: v, threshold: 0.3, maxCandidates: 10, partsOfSpeech: wn).candidates(for: "prince"),
                       unfilteredPrince.candidates(for: "prince"))
        XCTAssertFalse(unfilteredPrince.candidates(for: "prince").isEmpty)
    }

    func testWordNetIndexErrorsNameFileAndLine() throws {
        let dir = try temporaryDirectory()
        let header = "  1 This software and database is being provided to you, the LICENSEE, by  \n"
        for (name, line) in [("index.noun", "run n 16 4 @ ~ + ; 16 7 00189565  \n"), ("index.adj", "good a 21 4 ! & ^ = 21 12 01123148  \n"),
                             ("index.adv", "quickly r 2 0 2 2 00085811 00086000  \n")] {
            _ = try write(header + line, to: name, in: dir)
        }
        XCTAssertThrowsError(try WordNetPOS(directory: dir)) { error in
            XCTAssertTrue("\(error)".contains("index.verb"), "\(error)")
            XCTAssertTrue("\(error)".contains("make setup"), "\(error)")
        }
        let verb = try write(header + header + "run v 41 7 ! @ ~ ^ $ + ; 41 29 02075049  \nsprint n 1 2 @ ~ 1 0 00001  \n", to: "index.verb", in: dir)
        XCTAssertThrowsError(try WordNetPOS(directory: dir)) { error in
            guard let e = error as? SynonymError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.file, verb.path)
            XCTAssertEqual(e.line, 4)
            XCTAssertTrue(e.reason.contains("sprint n"), "\(e)")
        }
        _ = try write(header + "run v 41 7 ! @ ~ ^ $ + ; 41 29 02075049  \n", to: "index.verb", in: dir)
        let wn = try WordNetPOS(directory: dir)
        XCTAssertEqual(wn.count, 3)
        XCTAssertEqual(wn.partsOfSpeech(of: "run"), [.noun, .verb])
        XCTAssertEqual(wn.partsOfSpeech(of: "good"), .adjective)
    }

    func testPackagedWordNet() throws {
        let dir = WordNetPOS.packagedDirectory(assets: Self.assets)
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("index.noun").path) else {
            throw XCTSkip("WordNet (Debian wordnet-base 3.0-37) not unpacked at \(dir.path): run 'make setup'")
        }
        let wn = try WordNetPOS(directory: dir)
        // Reference: `cat index.* | grep -v '^  ' | cut -d' ' -f1 | sort -u | wc -l` and grep per word.
        XCTAssertEqual(wn.count, 147_306)
        XCTAssertEqual(wn.partsOfSpeech(of: "run"), [.noun, .verb])
        XCTAssertEqual(wn.partsOfSpeech(of: "quickly"), .adverb)
        XCTAssertEqual(wn.partsOfSpeech(of: "good"), [.noun, .adjective, .adverb])
        XCTAssertEqual(wn.partsOfSpeech(of: "better"), [.noun, .verb, .adjective, .adverb])
        XCTAssertEqual(wn.partsOfSpeech(of: "A cappella"), [.adjective, .adverb], "multi-word lemmas use _")
        XCTAssertEqual(wn.partsOfSpeech(of: "the"), [])
        XCTAssertFalse(wn.contains("movies"), "WordNet lists base forms only")
    }

    // MARK: Packaged GloVe 6B 50-d

    /// The first 20,000 words (loading all 100,000 takes long in a debug build); loaded once.
    nonisolated(unsafe) static var packaged: GloVeVectors?

    func packagedGloVe() throws -> GloVeVectors {
        if let v = Self.packaged { return v }
        let file = GloVeVectors.packagedFile(assets: Self.assets)
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw XCTSkip("GloVe 6B 50-d (PyPI tagnews 1.5.0) not unpacked at \(file.path): run 'make setup'")
        }
        let v = try GloVeVectors(contentsOf: file, limit: 20_000)
        Self.packaged = v
        return v
    }

    func testPackagedGloVeNeighboursMatchNumpy() throws {
        let v = try packagedGloVe()
        XCTAssertEqual(v.count, 20_000)
        XCTAssertEqual(v.dimension, 50)
        XCTAssertEqual(Array(v.words.prefix(5)), ["the", ",", ".", "of", "to"])
        let unit = v.vector(of: "good")!.reduce(0) { $0 + Double($1) * Double($1) }
        XCTAssertEqual(unit, 1, accuracy: 1e-5)

        // numpy, first 20,000 words, threshold 0.8 (the study's), at most 50.
        let study: [String: [(String, Double)]] = [
            "movie": [("movies", 0.93225), ("film", 0.93101), ("films", 0.89374), ("comedy", 0.89026), ("hollywood", 0.87182), ("drama", 0.83417),
                      ("sequel", 0.82226), ("animated", 0.82166), ("remake", 0.81250), ("show", 0.81058), ("comic", 0.81038), ("horror", 0.80315)],
            "terrible": [("horrible", 0.93734), ("awful", 0.88729), ("tragic", 0.83398), ("tragedy", 0.81803), ("horrific", 0.81090)],
            "run": [("running", 0.88026), ("runs", 0.84517), ("went", 0.84497), ("start", 0.83516), ("ran", 0.82897), ("out", 0.81536),
                    ("third", 0.81013), ("home", 0.80859), ("off", 0.80303), ("got", 0.80101), ("put", 0.80057)],
        ]
        let table = SynonymTable(queries: ["movie", "terrible", "run", "qwertyuiopasdf"], vectors: v)
        for (word, expected) in study { assertNeighbours(table.neighbours(of: word), expected, accuracy: 2e-5) }
        XCTAssertEqual(table.candidates(for: "qwertyuiopasdf"), [])

        // Threshold 0.5 (TextAttack's): 2,414 words pass for "good", so the 50 cap decides. "great"
        // (cosine 0.7983, rank 159) is not among them in 50-d GloVe; "better" is first.
        let good: [(String, Double)] = [
            ("better", 0.92844), ("really", 0.92206), ("always", 0.91653), ("sure", 0.90335), ("something", 0.90142), ("think", 0.89821),
            ("way", 0.89540), ("thing", 0.89451), ("little", 0.89412), ("very", 0.89199), ("lot", 0.89196), ("kind", 0.89173),
            ("'re", 0.88870), ("definitely", 0.88320), ("enough", 0.87960), ("so", 0.87882), ("make", 0.87844), ("doing", 0.87571),
            ("certainly", 0.87530), ("things", 0.87498), ("we", 0.87286), ("you", 0.87217), ("maybe", 0.87207), ("n't", 0.87139),
            ("'m", 0.87055), ("what", 0.86902), ("everyone", 0.86845), ("going", 0.86732), ("too", 0.86707), ("'ve", 0.86685),
            ("get", 0.86582), ("makes", 0.86575), ("but", 0.86471), ("nothing", 0.86275), ("know", 0.86271), ("pretty", 0.86117),
            ("just", 0.86092), ("much", 0.86064), ("i", 0.86049), ("even", 0.85981), ("anything", 0.85928), ("everything", 0.85890),
            ("mind", 0.85836), ("obviously", 0.85813), ("happy", 0.85741), ("come", 0.85692), ("how", 0.85682), ("making", 0.85671),
            ("look", 0.85616), ("our", 0.85517),
        ]
        let loose = SynonymTable(queries: ["good"], vectors: v, threshold: SynonymTable.Options.textAttack.threshold, maxCandidates: 50)
        assertNeighbours(loose.neighbours(of: "good"), good, accuracy: 2e-5)
        XCTAssertFalse(loose.candidates(for: "good").contains("great"))
    }

    func testPackagedPartOfSpeechFilter() throws {
        let v = try packagedGloVe()
        let dir = WordNetPOS.packagedDirectory(assets: Self.assets)
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("index.noun").path) else {
            throw XCTSkip("WordNet not unpacked at \(dir.path): run 'make setup'")
        }
        let wn = try WordNetPOS(directory: dir)
        // movie is a noun; of its 12 neighbours at 0.8 only "animated" (adjective only) shares no POS;
        // "movies" and "films" are not in WordNet and stay (grep of the index files).
        let table = SynonymTable(queries: ["movie"], vectors: v, threshold: 0.8, maxCandidates: 50, partsOfSpeech: wn)
        XCTAssertEqual(table.candidates(for: "movie"),
                       ["movies", "film", "films", "comedy", "hollywood", "drama", "sequel", "remake", "show", "comic", "horror"])
    }

    // MARK: Disk cache

    func testCacheIsReusedAndACorruptFileRebuilt() throws {
        let dir = try temporaryDirectory()
        let glove = try write(Self.tinyGloVe, to: "tiny.txt", in: dir)
        let date = Date(timeIntervalSince1970: 1_700_000_000)          // whole seconds: set back exactly below
        try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: glove.path)
        let cache = dir.appendingPathComponent("cache")
        let options = SynonymTable.Options(vocabularyLimit: nil, threshold: 0.6, maxCandidates: 10)
        func build(_ queries: [String] = ["king", "queen", "unknown"], _ options: SynonymTable.Options = options) throws -> SynonymTable {
            try SynonymTable.build(queries: queries, gloveFile: glove, options: options, cacheDirectory: cache)
        }
        func cacheFiles() throws -> [URL] {
            try FileManager.default.contentsOfDirectory(at: cache, includingPropertiesForKeys: nil).filter { $0.pathExtension == "bin" }
        }

        let first = try build()
        XCTAssertEqual(first.origin, .computed)
        XCTAssertEqual(first.candidates(for: "king"), ["monarch", "emperor", "queen", "royal"])
        XCTAssertEqual(first, SynonymTable(queries: ["king", "queen"], vectors: try GloVeVectors(contentsOf: glove, limit: nil),
                                           threshold: 0.6, maxCandidates: 10))
        let files = try cacheFiles()
        XCTAssertEqual(files.count, 1)

        let second = try build(["QUEEN", "unknown", "king", "king"])
        XCTAssertEqual(second.origin, .cache, "same words in another order and case: same key")
        XCTAssertEqual(second, first)
        XCTAssertEqual(second.neighbours(of: "king").map(\.cosine.bitPattern), first.neighbours(of: "king").map(\.cosine.bitPattern))

        // One flipped byte: the checksum fails, the table is rebuilt and the file replaced.
        var bytes = try Data(contentsOf: files[0])
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: files[0])
        let rebuilt = try build()
        guard case .rebuilt(let reason) = rebuilt.origin else { return XCTFail("\(rebuilt.origin)") }
        XCTAssertTrue(reason.contains("checksum"), reason)
        XCTAssertEqual(rebuilt, first)
        XCTAssertEqual(try build().origin, .cache)

        // Truncated, and not a cache file at all.
        try Data(bytes.prefix(10)).write(to: files[0])
        XCTAssertEqual(try build().origin, .rebuilt(reason: "truncated (10 bytes)"))
        try Data(repeating: 0x41, count: 400).write(to: files[0])
        XCTAssertEqual(try build().origin, .rebuilt(reason: "not a synonym cache file (bad magic)"))
        XCTAssertEqual(try build(), first)

        // Other options or words: another key, another file.
        let strict = try build(["king"], SynonymTable.Options(vocabularyLimit: nil, threshold: 0.8, maxCandidates: 10))
        XCTAssertEqual(strict.origin, .computed)
        XCTAssertEqual(strict.candidates(for: "king"), ["monarch", "emperor", "queen"])
        XCTAssertEqual(try build(["king"], SynonymTable.Options(vocabularyLimit: 3, threshold: 0.6, maxCandidates: 10)).candidates(for: "king"),
                       ["monarch", "queen"])
        XCTAssertEqual(try cacheFiles().count, 3)
        let filtered = try SynonymTable.build(queries: ["king", "queen", "unknown"], gloveFile: glove, options: options,
                                              partsOfSpeech: WordNetPOS(["king": .noun, "emperor": .verb]), cacheDirectory: cache)
        XCTAssertEqual(filtered.origin, .computed)
        XCTAssertEqual(filtered.candidates(for: "king"), ["monarch", "queen", "royal"])
        XCTAssertEqual(try cacheFiles().count, 4)

        // The GloVe file's identity is path + size + modification time: a hit does not read the file
        // (garbage of the same size and date is not noticed), a new date is a miss.
        try Data(repeating: 0x7A, count: Self.tinyGloVe.utf8.count).write(to: glove)
        try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: glove.path)
        XCTAssertEqual(try build().origin, .cache)
        try FileManager.default.setAttributes([.modificationDate: date.addingTimeInterval(5)], ofItemAtPath: glove.path)
        XCTAssertThrowsError(try build(), "a miss reads the (now malformed) file") { error in
            XCTAssertEqual((error as? SynonymError)?.line, 1, "\(error)")
        }
    }

    func testSHA256KnownAnswers() {
        // FIPS 180-4 examples (one block, empty, two blocks) and a million 'a's.
        XCTAssertEqual(AttackSHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(AttackSHA256.hex([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(AttackSHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(AttackSHA256.hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
