import Foundation
import XCTest
@testable import Encoder

/// Golden tests against Hugging Face `tokenizers` (fixtures made by
/// scripts/fixtures/make_tokenizer_fixtures.py) plus error-reporting tests.
final class TokenizerTests: XCTestCase {
    struct Fixture: Decodable {
        let tokenizers_version: String
        let vocab_size: Int
        let cases: [Case]
    }

    struct Case: Decodable {
        let text: String
        let pair: String?
        let max_length: Int
        let ids: [Int]
        let type_ids: [Int]
        let tokens: [String]
    }

    // MARK: - Locations

    static func fixturesDirectory() throws -> URL { Paths.fixtures }

    static func miniLMTokenizerURL() throws -> URL {
        let url = Paths.minilm.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            XCTFail("missing \(url.path): run `make setup` to fetch the model assets")
            throw TokenizerError.fileNotFound(path: url.path)
        }
        return url
    }

    static func tinyRobertaURL() throws -> URL {
        try fixturesDirectory().appendingPathComponent("tiny-roberta/tokenizer.json")
    }

    func loadFixture(_ name: String) throws -> Fixture {
        let url = name.hasPrefix("/") ? URL(fileURLWithPath: name) : try Self.fixturesDirectory().appendingPathComponent(name)
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    // MARK: - Golden fixtures

    /// Encodes every case and fails with the first mismatch (and the number of mismatches).
    func checkFixture(_ tokenizer: Tokenizer, _ name: String, passMaxLength: Bool = true,
                      file: StaticString = #filePath, line: UInt = #line) throws {
        let fixture = try loadFixture(name)
        XCTAssertFalse(fixture.cases.isEmpty, "\(name) has no cases", file: file, line: line)
        XCTAssertEqual(tokenizer.vocabSize, fixture.vocab_size, "\(name): vocab size", file: file, line: line)
        var failures: [String] = []
        for (i, c) in fixture.cases.enumerated() {
            let got: Encoding
            do {
                got = try tokenizer.encode(c.text, pair: c.pair, maxLength: passMaxLength ? c.max_length : nil)
            } catch {
                failures.append("case \(i) \(describe(c)): threw \(error)")
                continue
            }
            let want = Encoding(ids: c.ids, typeIds: c.type_ids, tokens: c.tokens)
            if got != want {
                failures.append("case \(i) \(describe(c)):\n" + diff(want: want, got: got))
            }
        }
        if let first = failures.first {
            XCTFail("\(name): \(failures.count) of \(fixture.cases.count) cases differ from HF tokenizers "
                    + "\(fixture.tokenizers_version); first: \(first)", file: file, line: line)
        }
    }

    private func describe(_ c: Case) -> String {
        func clip(_ s: String) -> String { s.count > 80 ? String(s.prefix(80)) + "…" : s }
        var s = "text \(String(reflecting: clip(c.text)))"
        if let p = c.pair { s += " pair \(String(reflecting: clip(p)))" }
        return s
    }

    private func diff(want: Encoding, got: Encoding) -> String {
        let n = min(want.count, got.count)
        var at = n
        for i in 0..<n where want.ids[i] != got.ids[i] || want.typeIds[i] != got.typeIds[i] || want.tokens[i] != got.tokens[i] {
            at = i
            break
        }
        let lo = max(0, at - 3)
        func window(_ e: Encoding) -> String {
            let hi = min(e.count, at + 4)
            guard lo < hi else { return "[]" }
            return (lo..<hi).map { "\(e.tokens[$0])=\($0 < e.ids.count ? e.ids[$0] : -1)/\(e.typeIds[$0])" }
                .joined(separator: " ")
        }
        return "  lengths want \(want.count) got \(got.count); first difference at token \(at)\n"
            + "  want: \(window(want))\n  got:  \(window(got))"
    }

    func testMiniLMMatchesHuggingFace() throws {
        let tokenizer = try Tokenizer.load(contentsOf: try Self.miniLMTokenizerURL())
        try checkFixture(tokenizer, "tokenizer_minilm.json")
    }

    func testMiniLMDefaultTruncationComesFromFile() throws {
        let tokenizer = try Tokenizer.load(contentsOf: try Self.miniLMTokenizerURL())
        XCTAssertEqual(tokenizer.defaultMaxLength, 128)
        XCTAssertEqual(tokenizer.padId, 0)
        // Every fixture case was made with the file's own max_length, so nil must give the same.
        try checkFixture(tokenizer, "tokenizer_minilm.json", passMaxLength: false)
    }

    func testTinyRobertaMatchesHuggingFace() throws {
        let tokenizer = try Tokenizer.load(contentsOf: try Self.tinyRobertaURL())
        XCTAssertEqual(tokenizer.padId, 1)
        XCTAssertNil(tokenizer.defaultMaxLength)
        XCTAssertEqual(tokenizer.vocabSize, 512)
        try checkFixture(tokenizer, "tokenizer_tiny_roberta.json")
    }

    /// Sequences of normalizers and pre-tokenizers, Replace/Strip/NFKC, Whitespace(Split),
    /// BertProcessing, added-token flags and left truncation configured in the file.
    func testTinyWordPieceMatchesHuggingFace() throws {
        let url = try Self.fixturesDirectory().appendingPathComponent("tiny-wordpiece/tokenizer.json")
        let tokenizer = try Tokenizer.load(contentsOf: url)
        XCTAssertEqual(tokenizer.defaultMaxLength, 24)
        try checkFixture(tokenizer, "tokenizer_tiny_wordpiece.json")
        try checkFixture(tokenizer, "tokenizer_tiny_wordpiece.json", passMaxLength: false)
    }

    /// Character BPE with unk/fuse_unk, continuing prefix, end-of-word suffix, and a Sequence
    /// post-processor ending in TemplateProcessing with custom type ids.
    func testTinyCharBPEMatchesHuggingFace() throws {
        let url = try Self.fixturesDirectory().appendingPathComponent("tiny-bpe/tokenizer.json")
        let tokenizer = try Tokenizer.load(contentsOf: url)
        XCTAssertEqual(tokenizer.padId, 0)
        try checkFixture(tokenizer, "tokenizer_tiny_bpe.json")
    }

    /// Older files spell merges as "a b" strings instead of ["a", "b"] pairs.
    func testLegacyStringMergesGiveTheSameEncodings() throws {
        let url = try Self.tinyRobertaURL()
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        var model = try XCTUnwrap(json["model"] as? [String: Any])
        let pairs = try XCTUnwrap(model["merges"] as? [[String]])
        XCTAssertFalse(pairs.isEmpty)
        model["merges"] = pairs.map { $0.joined(separator: " ") }
        json["model"] = model
        let legacy = try load(json)
        let modern = try Tokenizer.load(contentsOf: url)
        for c in try loadFixture("tokenizer_tiny_roberta.json").cases {
            XCTAssertEqual(try legacy.encode(c.text, pair: c.pair, maxLength: 64),
                           try modern.encode(c.text, pair: c.pair, maxLength: 64), c.text)
        }
    }

    func testLoadAcceptsTheModelDirectory() throws {
        let dir = try Self.fixturesDirectory().appendingPathComponent("tiny-roberta")
        XCTAssertEqual(try Tokenizer.load(contentsOf: dir).encode("hello"),
                       try Tokenizer.load(contentsOf: dir.appendingPathComponent("tokenizer.json")).encode("hello"))
    }

    func testExplicitMaxLengthOverridesFile() throws {
        let tokenizer = try Tokenizer.load(contentsOf: try Self.miniLMTokenizerURL())
        let e = try tokenizer.encode("one two three four five six", maxLength: 5)
        XCTAssertEqual(e.tokens, ["[CLS]", "one", "two", "three", "[SEP]"])
        let p = try tokenizer.encode("one two three four five six", pair: "seven", maxLength: 6)
        XCTAssertEqual(p.tokens, ["[CLS]", "one", "two", "[SEP]", "seven", "[SEP]"])
        XCTAssertEqual(p.typeIds, [0, 0, 0, 0, 1, 1])
    }

    func testTokenizerIsSharedAcrossTasks() async throws {
        let tokenizer = try Tokenizer.load(contentsOf: try Self.tinyRobertaURL())
        let text = "Free entry in 2 a wkly comp <mask>"
        let expected = try tokenizer.encode(text)
        try await withThrowingTaskGroup(of: Encoding.self) { group in
            for _ in 0..<8 { group.addTask { try tokenizer.encode(text) } }
            for try await result in group { XCTAssertEqual(result, expected) }
        }
    }

    /// Extended parity over the whole SMS corpus; the expectations are too big to commit, so make
    /// them with `make_tokenizer_fixtures.py --corpus DIR` and set TOKENIZER_CORPUS_DIR=DIR.
    func testWholeCorpusParity() throws {
        guard let dir = ProcessInfo.processInfo.environment["TOKENIZER_CORPUS_DIR"] else {
            throw XCTSkip("set TOKENIZER_CORPUS_DIR (see scripts/fixtures/make_tokenizer_fixtures.py --corpus)")
        }
        try checkFixture(Tokenizer.load(contentsOf: Self.miniLMTokenizerURL()), dir + "/corpus_minilm.json")
        try checkFixture(Tokenizer.load(contentsOf: Self.tinyRobertaURL()), dir + "/corpus_tiny_roberta.json")
        let fixtures = try Self.fixturesDirectory()
        try checkFixture(Tokenizer.load(contentsOf: fixtures.appendingPathComponent("tiny-wordpiece/tokenizer.json")),
                         dir + "/corpus_tiny_wordpiece.json")
        try checkFixture(Tokenizer.load(contentsOf: fixtures.appendingPathComponent("tiny-bpe/tokenizer.json")),
                         dir + "/corpus_tiny_bpe.json")
    }

    /// Reports load and encode times (meaningful in release builds; asserts nothing about speed).
    func testReportSpeed() throws {
        let url = try Self.miniLMTokenizerURL()
        var start = Date()
        let tokenizer = try Tokenizer.load(contentsOf: url)
        let loadSeconds = Date().timeIntervalSince(start)
        let texts = try loadFixture("tokenizer_minilm.json").cases.map(\.text)
        let batch = (0..<512).map { texts[$0 % texts.count] }
        start = Date()
        var tokens = 0
        for text in batch { tokens += try tokenizer.encode(text).count }
        let encodeSeconds = Date().timeIntervalSince(start)
        print(String(format: "MiniLM tokenizer: load %.1f ms; 512 texts (%d tokens) in %.1f ms",
                     loadSeconds * 1000, tokens, encodeSeconds * 1000))
        XCTAssertGreaterThan(tokens, 512 * 2)
    }

    // MARK: - Errors

    /// A minimal valid WordPiece tokenizer.json as a dictionary, for error tests to break.
    func minimalTokenizer() -> [String: Any] {
        [
            "version": "1.0",
            "truncation": NSNull(),
            "padding": NSNull(),
            "added_tokens": [["id": 0, "content": "[UNK]", "special": true, "normalized": false,
                              "lstrip": false, "rstrip": false, "single_word": false]],
            "normalizer": ["type": "BertNormalizer", "lowercase": true],
            "pre_tokenizer": ["type": "BertPreTokenizer"],
            "post_processor": ["type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]],
            "decoder": NSNull(),
            "model": ["type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 100,
                      "vocab": ["[UNK]": 0, "[PAD]": 1, "[CLS]": 2, "[SEP]": 3, "hello": 4, "world": 5, "##s": 6]],
        ]
    }

    func load(_ json: [String: Any]) throws -> Tokenizer {
        let data = try JSONSerialization.data(withJSONObject: json)
        return try Tokenizer.load(data: data, name: "test/tokenizer.json")
    }

    func assertUnsupported(_ json: [String: Any], field: String, value: String,
                           file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try load(json), file: file, line: line) { error in
            guard let e = error as? TokenizerError, case let .unsupported(f, got, v, supported) = e else {
                return XCTFail("expected TokenizerError.unsupported, got \(error)", file: file, line: line)
            }
            XCTAssertEqual(f, "test/tokenizer.json", file: file, line: line)
            XCTAssertEqual(got, field, file: file, line: line)
            XCTAssertEqual(v, value, file: file, line: line)
            XCTAssertFalse(supported.isEmpty, file: file, line: line)
            let text = e.description
            for part in ["test/tokenizer.json", "\"\(value)\"", "supported:"] {
                XCTAssertTrue(text.contains(part), "\(text) lacks \(part)", file: file, line: line)
            }
        }
    }

    func testMinimalTokenizerLoads() throws {
        let t = try load(minimalTokenizer())
        let e = try t.encode("Hello worlds [UNK]!")
        XCTAssertEqual(e.tokens, ["[CLS]", "hello", "world", "##s", "[UNK]", "[UNK]", "[SEP]"])
        XCTAssertEqual(e.ids, [2, 4, 5, 6, 0, 0, 3])
        XCTAssertEqual(t.padId, 1)
    }

    func testUnsupportedNormalizer() {
        var json = minimalTokenizer()
        json["normalizer"] = ["type": "Precompiled", "precompiled_charsmap": "AAAA"]
        assertUnsupported(json, field: "normalizer.type", value: "Precompiled")
        json["normalizer"] = ["type": "Sequence", "normalizers": [["type": "NFD"], ["type": "Nmt"]]]
        assertUnsupported(json, field: "normalizer.normalizers[1].type", value: "Nmt")
    }

    func testUnsupportedPreTokenizer() {
        var json = minimalTokenizer()
        json["pre_tokenizer"] = ["type": "Metaspace", "replacement": "▁"]
        assertUnsupported(json, field: "pre_tokenizer.type", value: "Metaspace")
        XCTAssertThrowsError(try load(json)) { error in
            XCTAssertEqual("\(error)", "test/tokenizer.json: unsupported pre_tokenizer type \"Metaspace\" "
                + "(supported: BertPreTokenizer, ByteLevel, Whitespace, WhitespaceSplit, Sequence)")
        }
        json["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [["type": "WhitespaceSplit"], ["type": "Digits"]]]
        assertUnsupported(json, field: "pre_tokenizer.pretokenizers[1].type", value: "Digits")
    }

    func testUnsupportedModel() {
        var json = minimalTokenizer()
        json["model"] = ["type": "Unigram", "vocab": [["a", -1.0]]]
        assertUnsupported(json, field: "model.type", value: "Unigram")
    }

    func testUnsupportedPostProcessor() {
        var json = minimalTokenizer()
        json["post_processor"] = ["type": "FancyProcessing"]
        assertUnsupported(json, field: "post_processor.type", value: "FancyProcessing")
        json["post_processor"] = ["type": "Sequence", "processors": [["type": "ByteLevel"], ["type": "Nope"]]]
        assertUnsupported(json, field: "post_processor.processors[1].type", value: "Nope")
    }

    func testMissingAndMistypedFields() {
        var json = minimalTokenizer()
        json["model"] = ["type": "WordPiece", "unk_token": "[UNK]"]
        XCTAssertThrowsError(try load(json)) { error in
            guard case let .invalidField(_, field, _)? = error as? TokenizerError else { return XCTFail("\(error)") }
            XCTAssertEqual(field, "model.vocab")
        }
        json = minimalTokenizer()
        json["model"] = ["type": "WordPiece", "unk_token": "<oov>", "vocab": ["a": 0]]
        XCTAssertThrowsError(try load(json)) { error in
            guard case let .invalidField(_, field, _)? = error as? TokenizerError else { return XCTFail("\(error)") }
            XCTAssertEqual(field, "model.unk_token")
        }
        json = minimalTokenizer()
        json["post_processor"] = ["type": "BertProcessing", "sep": "[SEP]", "cls": ["[CLS]", 2]]
        XCTAssertThrowsError(try load(json)) { error in
            guard case let .invalidField(_, field, _)? = error as? TokenizerError else { return XCTFail("\(error)") }
            XCTAssertEqual(field, "post_processor.sep")
        }
    }

    func testMalformedJSONNamesTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("tokenizer.json")
        try Data("{\"model\": {\"type\": \"WordPiece\",".utf8).write(to: url)
        XCTAssertThrowsError(try Tokenizer.load(contentsOf: url)) { error in
            guard case let .malformedJSON(file, _)? = error as? TokenizerError else { return XCTFail("\(error)") }
            XCTAssertEqual(file, url.path)
            XCTAssertTrue("\(error)".contains(url.path))
        }
        try Data("[1, 2]".utf8).write(to: url)
        XCTAssertThrowsError(try Tokenizer.load(contentsOf: url)) { error in
            guard case .malformedJSON? = error as? TokenizerError else { return XCTFail("\(error)") }
        }
    }

    func testMissingFileSuggestsSetup() {
        let url = URL(fileURLWithPath: "/nonexistent/dir/tokenizer.json")
        XCTAssertThrowsError(try Tokenizer.load(contentsOf: url)) { error in
            XCTAssertEqual(error as? TokenizerError, .fileNotFound(path: url.path))
            XCTAssertTrue("\(error)".contains("/nonexistent/dir/tokenizer.json"))
            XCTAssertTrue("\(error)".contains("make setup"))
        }
    }
}
