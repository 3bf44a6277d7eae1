import Foundation
import XCTest

/// `adaptermix similarity` on real packaged domains, the command docs/similarity.md shows.
final class SimilarityCLITests: XCTestCase {
    func testTheDocumentedCommandRuns() throws {
        let doc = try String(contentsOf: CLITests.root.appendingPathComponent("docs/similarity.md"), encoding: .utf8)
        let line = try XCTUnwrap(doc.split(separator: "\n").first { $0.hasPrefix(".build/release/adaptermix similarity") })
        let args = Array(line.split(separator: " ").dropFirst().map(String.init))
        let table = try CLITests.run(args)
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains("centroid cosine similarity"), table.stdout)
        XCTAssertTrue(table.stdout.contains("topics over all the domains' documents"), table.stdout)
        // The same as JSON: a symmetric matrix with a unit diagonal, 3 topics per model, mixtures summing to 1.
        let json = try CLITests.run(args + ["--format", "json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let domains = try XCTUnwrap(obj["domains"] as? [String])
        XCTAssertEqual(domains, ["election-tweets", "rotten-tomatoes", "sms-spam"])
        let m = try XCTUnwrap(obj["cosine"] as? [[Double]])
        for i in 0..<3 {
            XCTAssertEqual(m[i][i], 1, accuracy: 1e-9)
            for j in 0..<3 {
                XCTAssertEqual(m[i][j], m[j][i], accuracy: 1e-12)
                XCTAssertTrue((-1...1).contains(m[i][j]))
            }
        }
        let topics = try XCTUnwrap(obj["topics"] as? [String: Any])
        let union = try XCTUnwrap(topics["union"] as? [String: Any])
        XCTAssertEqual((union["topics"] as? [[String]])?.count, 3)
        for (_, mix) in try XCTUnwrap(union["mixtures"] as? [String: [Double]]) {
            XCTAssertEqual(mix.reduce(0, +), 1, accuracy: 1e-9)
        }
        // The table prints the same matrix (3 decimals).
        XCTAssertTrue(table.stdout.contains(String(format: "%7.3f", m[0][1])), table.stdout)
    }
}
