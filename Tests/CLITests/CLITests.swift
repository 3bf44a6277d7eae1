import Encoder
import Foundation
import XCTest

/// Runs the real `adaptermix` executable and checks output, help text and exit codes.
final class CLITests: XCTestCase {
    static let root: URL = {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }()

    /// The executable built beside this test bundle (`swift build --build-tests` builds it).
    static let binary: URL? = {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for dir in [beside, beside.deletingLastPathComponent(), root.appendingPathComponent(".build/debug")] {
            let u = dir.appendingPathComponent("adaptermix")
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        return nil
    }()

    struct Result { var status: Int32; var stdout: String; var stderr: String }

    func run(_ args: [String], cwd: URL? = nil) throws -> Result { try Self.run(args, cwd: cwd) }

    static func run(_ args: [String], cwd: URL? = nil) throws -> Result {
        guard let binary = binary else {
            XCTFail("adaptermix executable not found next to the tests: run 'swift build --build-tests' (make test does)")
            throw XCTSkip("no binary")
        }
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        p.currentDirectoryURL = cwd ?? root
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    func testHelpListsCommands() throws {
        let r = try run(["--help"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stdout.contains("embed"), r.stdout)
        XCTAssertTrue(r.stdout.contains("bench"), r.stdout)
        let e = try run(["embed", "--help"])
        for flag in ["--model", "--pooling", "--normalize", "--max-length", "--file"] {
            XCTAssertTrue(e.stdout.contains(flag), "embed --help should list \(flag)")
        }
    }

    func testEmbedWritesJSONLinesInInputOrder() throws {
        let tiny = Self.root.appendingPathComponent("Tests/EncoderTests/Fixtures/tiny-roberta").path
        let texts = ["a much longer text, so that the order is not sorted by length", "hi", "Free entry in 2 a wkly comp"]
        let r = try run(["embed", "--model", tiny, "--normalize"] + texts)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        for (i, line) in lines.enumerated() {
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            XCTAssertEqual(obj["text"] as? String, texts[i])
            let emb = (obj["embedding"] as! [NSNumber]).map(\.doubleValue)
            XCTAssertEqual(emb.count, 32)
            XCTAssertEqual(emb.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-4, "normalised")
            XCTAssertEqual((obj["input_ids"] as! [Int]).first, 0, "<s> first")
        }
    }

    func testEmbedMatchesGoldenMiniLMSentenceEmbedding() throws {
        let model = Self.root.appendingPathComponent(".cache/assets/all-MiniLM-L6-v2/model.safetensors")
        guard FileManager.default.fileExists(atPath: model.path) else { return XCTFail("run 'make setup' first") }
        // Case 0 of Fixtures/minilm_cases.json, its golden mean_norm from sentence-transformers' recipe.
        let r = try run(["embed", "--normalize", "The quick brown fox jumps over the lazy dog."])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(obj["input_ids"] as? [Int], [101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, 102])
        let got = (obj["embedding"] as! [NSNumber]).map(\.floatValue)
        // The executable may run another BLAS kernel than the test process (it picks one for this CPU).
        let golden = try SafeTensorsFile(url: Self.root.appendingPathComponent("Tests/EncoderTests/Fixtures/minilm_hidden.safetensors"))
        let want = try golden.floats("mean_norm.0")
        XCTAssertEqual(got.count, 384)
        XCTAssertLessThan(zip(got, want).map { abs($0 - $1) }.max()!, 1e-4, "embedding differs from the sentence-transformers reference")
    }

    func testFileInputAndInvalidUTF8() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("adaptermix-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let tiny = Self.root.appendingPathComponent("Tests/EncoderTests/Fixtures/tiny-roberta").path
        let good = dir.appendingPathComponent("good.txt")
        try "first line\nsecond line\n".write(to: good, atomically: true, encoding: .utf8)
        let ok = try run(["embed", "--model", tiny, "--file", good.path])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertEqual(ok.stdout.split(separator: "\n").count, 2)

        let bad = dir.appendingPathComponent("latin1.txt")
        try Data("ok\ncaf".utf8 + [0xE9] + Data("\n".utf8)).write(to: bad)
        let r = try run(["embed", "--model", tiny, "--file", bad.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("latin1.txt: line 2 is not valid UTF-8"), r.stderr)
        XCTAssertEqual(r.stdout, "")
    }

    func testBadModelFolderIsOneClearLine() throws {
        let r = try run(["embed", "--model", "/nonexistent/folder", "hello"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("/nonexistent/folder"), r.stderr)
        XCTAssertTrue(r.stderr.contains("make setup"), r.stderr)
        XCTAssertEqual(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count, 1, r.stderr)
    }

    func testUnsupportedTokenizerComponentExitsNonZero() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("adaptermix-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let src = Self.root.appendingPathComponent("Tests/EncoderTests/Fixtures/tiny-roberta")
        for f in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        let tok = try String(contentsOf: src.appendingPathComponent("tokenizer.json"), encoding: .utf8)
            .replacingOccurrences(of: "\"type\":\"ByteLevel\"", with: "\"type\":\"Metaspace\"")
            .replacingOccurrences(of: "\"type\": \"ByteLevel\"", with: "\"type\": \"Metaspace\"")
        try tok.write(to: dir.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
        let r = try run(["embed", "--model", dir.path, "hello"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("tokenizer.json"), r.stderr)
        XCTAssertTrue(r.stderr.contains("Metaspace"), r.stderr)
    }
}
