import Datasets
import Foundation
import XCTest

/// User-declared domains in YAML: loading, splitting and each bad-input case.
final class CatalogTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("adaptermix-catalog-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ text: String) throws -> URL {
        let u = dir.appendingPathComponent(name)
        try text.write(to: u, atomically: true, encoding: .utf8)
        return u
    }

    func reviews(_ n: Int) -> String {
        "review,stars\n" + (0..<n).map { "\"text number \($0), a review\",\($0 % 3 == 0 ? "neg" : "pos")" }.joined(separator: "\n") + "\n"
    }

    func testUserDomainLoadsAndSplits() throws {
        _ = try write("train.csv", reviews(60))
        _ = try write("test.csv", "review,stars\n\"held out one\",neg\n\"held out two\",pos\n")
        let yaml = try write("domains.yaml", """
        domains:
          - name: my-reviews
            format: csv
            train: train.csv
            test: test.csv
            text: review
            label: stars
            labels: [neg, pos]
          - name: no-test
            format: csv
            train: train.csv
            text: review
            label: stars
        """)
        let catalog = try DomainCatalog(assets: dir, userFile: yaml)
        XCTAssertEqual(catalog.domains.count, DomainRegistry.builtIn.count + 2)
        let s = try catalog.load("my-reviews")
        XCTAssertEqual(s.test.count, 2, "the declared test file is kept as the test split")
        XCTAssertEqual(s.train.count + s.validation.count, 60)
        XCTAssertEqual(s.labels, ["neg", "pos"])
        let t = try catalog.load("no-test")
        XCTAssertEqual(t.train.count + t.validation.count + t.test.count, 60)
        XCTAssertEqual(t.test.count, 6, "8:1:1 of 60")
    }

    func testBadDeclarationsNameFileAndField() throws {
        _ = try write("train.csv", reviews(10))
        let cases: [(String, String)] = [
            ("domains:\n  - name: x\n    format: xls\n    train: train.csv\n    text: review\n    label: stars\n", "domains[0].format: unknown format \"xls\""),
            ("domains:\n  - name: x\n    format: csv\n    train: train.csv\n    text: review\n    label: stars\n    colour: red\n", "domains[0]: unknown key \"colour\""),
            ("domains:\n  - name: x\n    format: csv\n    train: train.csv\n    label: stars\n", "domains[0]: missing \"text\""),
            ("domains:\n  - name: sms-spam\n    format: csv\n    train: train.csv\n    text: review\n    label: stars\n", "already a domain"),
            ("domain: []\n", "expected a top-level \"domains:\" list"),
            ("domains: [\n", "not valid YAML"),
        ]
        for (i, (yaml, needle)) in cases.enumerated() {
            let f = try write("bad\(i).yaml", yaml)
            XCTAssertThrowsError(try DomainCatalog(assets: dir, userFile: f), "case \(i)") { e in
                XCTAssertTrue("\(e)".contains("bad\(i).yaml"), "\(e)")
                XCTAssertTrue("\(e)".contains(needle), "case \(i): \(e)")
            }
        }
    }

    func testErrorsInTheDataNameTheFileAndLine() throws {
        _ = try write("train.csv", "review,stars\n\"fine\",pos\n\"an unknown one\",meh\n")
        let missing = try write("missing.yaml", "domains:\n  - name: a\n    format: csv\n    train: nope.csv\n    text: review\n    label: stars\n")
        XCTAssertThrowsError(try DomainCatalog(assets: dir, userFile: missing).load("a")) { XCTAssertTrue("\($0)".contains("nope.csv"), "\($0)") }
        let labels = try write("labels.yaml", "domains:\n  - name: b\n    format: csv\n    train: train.csv\n    text: review\n    label: stars\n    labels: [pos, neg]\n")
        XCTAssertThrowsError(try DomainCatalog(assets: dir, userFile: labels).load("b")) { e in
            XCTAssertTrue("\(e)".contains("train.csv:3"), "\(e)")
            XCTAssertTrue("\(e)".contains("meh"), "\(e)")
        }
    }

    func testUnknownDomainListsTheKnownOnes() throws {
        XCTAssertThrowsError(try DomainCatalog(assets: dir).load("nope")) { e in
            XCTAssertTrue("\(e)".contains("bbc-news"), "\(e)")
        }
    }
}
