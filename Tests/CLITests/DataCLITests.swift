import Foundation
import XCTest

/// `adaptermix data …` on the packaged domains.
final class DataCLITests: XCTestCase {
    func testListShowsAllThirteenDomains() throws {
        let r = try CLITests.run(["data", "list", "--format", "json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [[String: Any]]
        XCTAssertEqual(rows.map { $0["name"] as! String }, ["bbc-news", "newsgroups", "reuters-r8", "election-tweets", "rotten-tomatoes",
                                                             "tweet-sentiment", "sms-spam", "boolq", "privacy-qa", "medmcqa", "health-news",
                                                             "nyt-editorials", "food-reviews"])
        let sms = rows.first { $0["name"] as? String == "sms-spam" }!
        XCTAssertEqual((sms["train"] as! Int) + (sms["validation"] as! Int) + (sms["test"] as! Int) + (sms["removed_leaks"] as! Int), 4862)
        let news = rows.first { $0["name"] as? String == "newsgroups" }!
        XCTAssertEqual(news["test"] as? Int, 7528, "the official test split is kept")
    }

    func testExportIsDeterministicAndCapped() throws {
        let a = try CLITests.run(["data", "export", "sms-spam", "--split", "test", "--max-test", "20", "--seed", "7"])
        let b = try CLITests.run(["data", "export", "sms-spam", "--split", "test", "--max-test", "20", "--seed", "7"])
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertEqual(a.stdout, b.stdout)
        let lines = a.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 20)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        XCTAssertNotNil(first["id"]); XCTAssertNotNil(first["text"]); XCTAssertNotNil(first["label"])
        XCTAssertNil(first["text_pair"], "single-text domain")
        let pairs = try CLITests.run(["data", "export", "boolq", "--split", "validation", "--max-validation", "3"])
        XCTAssertTrue(pairs.stdout.contains("\"text_pair\""), pairs.stdout)
    }

    func testStatsAndUnknownDomain() throws {
        let s = try CLITests.run(["data", "stats", "bbc-news"])
        XCTAssertEqual(s.status, 0, s.stderr)
        for label in ["business", "entertainment", "politics", "sports", "tech"] { XCTAssertTrue(s.stdout.contains(label), s.stdout) }
        let u = try CLITests.run(["data", "stats", "nope"])
        XCTAssertNotEqual(u.status, 0)
        XCTAssertTrue(u.stderr.contains("unknown domain"), u.stderr)
        XCTAssertTrue(u.stderr.contains("bbc-news"), u.stderr)
    }
}
