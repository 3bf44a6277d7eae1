import Encoder
import Foundation
import XCTest

/// Locations of fixtures and packaged assets for the tests.
enum Paths {
    static let fixtures: URL = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!

    /// The package root, found from this file's path.
    static let root: URL = {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }()

    static var minilm: URL { root.appendingPathComponent(".cache/assets/all-MiniLM-L6-v2") }

    static func requireMiniLM() throws -> URL {
        guard FileManager.default.fileExists(atPath: minilm.appendingPathComponent("model.safetensors").path) else {
            XCTFail("the packaged all-MiniLM-L6-v2 is missing at \(minilm.path): run 'make setup'")
            throw XCTSkip("assets missing")
        }
        return minilm
    }

    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("adaptermix-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}

/// One golden case written by scripts/fixtures/make_encoder_fixtures.py.
struct EncoderCase: Decodable {
    var text: String
    var pair: String?
    var max_length: Int
    var ids: [Int]
    var type_ids: [Int]

    static func load(_ name: String) throws -> [EncoderCase] {
        try JSONDecoder().decode([EncoderCase].self, from: Data(contentsOf: Paths.fixtures.appendingPathComponent(name)))
    }
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "length \(a.count) vs \(b.count)")
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
