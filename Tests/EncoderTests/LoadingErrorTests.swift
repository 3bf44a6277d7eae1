import Encoder
import Foundation
import XCTest

/// Bad model files give one clear error naming the file and the tensor or field.
final class LoadingErrorTests: XCTestCase {
    private func writeRaw(_ header: String, data: [UInt8], to url: URL, lengthOverride: UInt64? = nil) throws {
        var bytes = [UInt8]()
        withUnsafeBytes(of: (lengthOverride ?? UInt64(header.utf8.count)).littleEndian) { bytes += $0 }
        bytes += Array(header.utf8) + data
        try Data(bytes).write(to: url)
    }

    private func expectError(_ url: URL, contains needles: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafeTensorsFile(url: url), file: file, line: line) { error in
            let text = "\(error)"
            for n in needles { XCTAssertTrue(text.contains(n), "\"\(text)\" should mention \(n)", file: file, line: line) }
        }
    }

    func testRoundTripAndHalfPrecisions() throws {
        let dir = try Paths.temporaryDirectory()
        let url = dir.appendingPathComponent("t.safetensors")
        try SafeTensorsFile.write([("a", [2, 2], [1, -2, 0.5, 3.25])], metadata: ["format": "pt"], to: url)
        let f = try SafeTensorsFile(url: url)
        XCTAssertEqual(try f.floats("a", shape: [2, 2]), [1, -2, 0.5, 3.25])
        XCTAssertEqual(f.metadata["format"], "pt")
        // F16 1.0 = 0x3C00, -2.0 = 0xC000; BF16 0.5 = 0x3F00, 3.25 = 0x4050.
        let half = dir.appendingPathComponent("h.safetensors")
        try writeRaw(#"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}}"#,
                     data: [0x00, 0x3C, 0x00, 0xC0, 0x00, 0x3F, 0x50, 0x40], to: half)
        let h = try SafeTensorsFile(url: half)
        XCTAssertEqual(try h.floats("h"), [1, -2])
        XCTAssertEqual(try h.floats("b"), [0.5, 3.25])
    }

    func testTruncatedAndCorruptFiles() throws {
        let dir = try Paths.temporaryDirectory()
        let u = dir.appendingPathComponent("bad.safetensors")
        try Data([1, 2, 3]).write(to: u)
        expectError(u, contains: ["bad.safetensors", "shorter than the 8-byte header"])
        try writeRaw("{}", data: [], to: u, lengthOverride: 1000)
        expectError(u, contains: ["bad.safetensors", "runs past the end"])
        try writeRaw("{not json", data: [], to: u)
        expectError(u, contains: ["not valid JSON"])
        try writeRaw(#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: [0, 0, 0, 0], to: u)
        expectError(u, contains: ["tensor \"w\"", "run past"])
        try writeRaw(#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8), to: u)
        expectError(u, contains: ["tensor \"w\"", "needs 12"])
        try writeRaw(#"{"w":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}}"#, data: [0], to: u)
        expectError(u, contains: ["tensor \"w\"", "unknown dtype \"F8_E9\""])
        try writeRaw(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                     data: [UInt8](repeating: 0, count: 12), to: u)
        expectError(u, contains: ["overlap"])
        expectError(dir.appendingPathComponent("absent.safetensors"), contains: ["absent.safetensors", "no such file"])
        // An integer tensor cannot be read as floats.
        try writeRaw(#"{"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8), to: u)
        XCTAssertThrowsError(try SafeTensorsFile(url: u).floats("i")) { XCTAssertTrue("\($0)".contains("I64")) }
    }

    private func tinyFolder() throws -> URL {
        let dir = try Paths.temporaryDirectory()
        let src = Paths.fixtures.appendingPathComponent("tiny-roberta")
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        return dir
    }

    func testUnknownModelTypeNamesFileAndField() throws {
        let dir = try tinyFolder()
        let cfg = dir.appendingPathComponent("config.json")
        let text = try String(contentsOf: cfg, encoding: .utf8).replacingOccurrences(of: "\"roberta\"", with: "\"gpt2\"")
        try text.write(to: cfg, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PretrainedEncoder(directory: dir)) { e in
            XCTAssertTrue("\(e)".contains("config.json"), "\(e)")
            XCTAssertTrue("\(e)".contains("unsupported model_type \"gpt2\""), "\(e)")
        }
    }

    func testMissingAndUnexpectedTensorsAreListed() throws {
        let dir = try tinyFolder()
        let st = try SafeTensorsFile(url: dir.appendingPathComponent("model.safetensors"))
        var tensors = try st.names.filter { $0 != "encoder.layer.1.output.dense.bias" }.map { (name: $0, shape: st.tensors[$0]!.shape, values: try st.floats($0)) }
        tensors.append((name: "encoder.layer.9.extra.weight", shape: [1], values: [0]))
        // Prefixed names load the same way.
        tensors = tensors.map { (name: "roberta." + $0.name, shape: $0.shape, values: $0.values) }
        try SafeTensorsFile.write(tensors, to: dir.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try PretrainedEncoder(directory: dir)) { e in
            let t = "\(e)"
            XCTAssertTrue(t.contains("model.safetensors"), t)
            XCTAssertTrue(t.contains("missing 1 tensor(s): encoder.layer.1.output.dense.bias"), t)
            XCTAssertTrue(t.contains("unexpected 1 tensor(s): roberta.encoder.layer.9.extra.weight"), t)
        }
    }

    func testMissingModelFolderSaysMakeSetup() {
        XCTAssertThrowsError(try PretrainedEncoder(directory: URL(fileURLWithPath: "/nonexistent/model"))) { e in
            XCTAssertTrue("\(e)".contains("make setup"), "\(e)")
        }
    }
}
