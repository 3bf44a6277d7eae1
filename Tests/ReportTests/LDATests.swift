import Foundation
@testable import Report
import Tensor
import XCTest

/// Topic modelling: the corpus filters worked by hand, a two-topic corpus the sampler must separate,
/// seed determinism, and the sampler's count invariants.
final class LDATests: XCTestCase {
    static let sportWords = ["goal", "match", "team", "score", "league", "player"]
    static let financeWords = ["stock", "market", "price", "shares", "trade", "bank"]

    /// 40 documents of 20 words: 0..<20 drawn from the sport words, 20..<40 from the finance words.
    static func twoTopicTexts() -> [String] {
        var rng = SplitMix64(seed: 7)
        return (0..<40).map { d in
            let pool = d < 20 ? sportWords : financeWords
            return (0..<20).map { _ in pool[Int(rng.next() % UInt64(pool.count))] }.joined(separator: " ")
        }
    }

    static func twoTopicCorpus() -> TopicCorpus {
        TopicCorpus(documents: twoTopicTexts(), maximumDocumentFraction: 1.0)
    }

    func assertRowsSumToOne(_ rows: [[Double]], _ what: String,
                            file: StaticString = #filePath, line: UInt = #line) {
        for (i, row) in rows.enumerated() {
            XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-9, "\(what) row \(i)", file: file, line: line)
            XCTAssertTrue(row.allSatisfy { $0 > 0 && $0 < 1 }, "\(what) row \(i) outside (0, 1)",
                          file: file, line: line)
        }
    }

    // MARK: - Corpus

    func testWordsLowercasesDropsApostrophesAndShortWords() {
        XCTAssertEqual(TopicCorpus.words(in: "Don't STOP—it’s 3pm, Café au lait!"),
                       ["dont", "stop", "its", "café", "lait"])
        XCTAssertEqual(TopicCorpus.words(in: ""), [])
        XCTAssertEqual(TopicCorpus.words(in: "a bc 12 ab3cd"), [])
    }

    func testCorpusFiltersAndIdsByHand() {
        let texts = [
            "Apple banana? APPLE, cherry's pie; an ox, the zebra.",
            "banana split with the cherry and kiwi; Zebra!",
            "Zebra stripes: apple-pie 42 ban’ana times",
            "zebra zebra kiwi... don't stop, it's late",
        ]
        // Tokens after stop-words (the, with, and, dont, its):
        //   0: apple banana apple cherrys pie zebra     2: zebra stripes apple pie banana times
        //   1: banana split cherry kiwi zebra           3: zebra zebra kiwi stop late
        // Counts: apple 3, banana 3, pie 2, kiwi 2, zebra 5 (in all 4 documents), the rest once.
        // minimumCount 2 drops the singletons; zebra is in 4/4 > 0.75 of the documents; banana's
        // 3/4 = 0.75 is not more than the limit, so it stays.
        let corpus = TopicCorpus(documents: texts, minimumCount: 2, maximumDocumentFraction: 0.75)
        XCTAssertEqual(corpus.vocabulary, ["apple", "banana", "kiwi", "pie"])
        XCTAssertEqual(corpus.vocabulary, corpus.vocabulary.sorted())
        XCTAssertEqual(corpus.documents, [[0, 1, 0, 3], [1, 2], [0, 3, 1], [2]])
        XCTAssertEqual(corpus.tokenCount, 10)

        // Without stop-words "the" (twice, in 2 of 4 documents) survives; nothing else changes.
        let noStops = TopicCorpus(documents: texts, stopWords: [], minimumCount: 2, maximumDocumentFraction: 0.75)
        XCTAssertEqual(noStops.vocabulary, ["apple", "banana", "kiwi", "pie", "the"])
        XCTAssertEqual(noStops.documents, [[0, 1, 0, 3, 4], [1, 4, 2], [0, 3, 1], [2]])

        // The default fraction 0.5 also drops banana (3/4) and keeps apple, kiwi, pie (2/4 each).
        let strict = TopicCorpus(documents: texts, minimumCount: 2)
        XCTAssertEqual(strict.vocabulary, ["apple", "kiwi", "pie"])
        XCTAssertEqual(strict.documents, [[0, 0, 2], [1], [0, 2], [1]])

        XCTAssertTrue(TopicCorpus.englishStopWords.isSuperset(of: ["the", "and", "http", "www", "com"]))
    }

    // MARK: - Sampler

    func testTwoObviousTopicsAreSeparated() {
        let corpus = Self.twoTopicCorpus()
        XCTAssertEqual(corpus.vocabulary.count, 12)
        let model = LDAModel.fit(corpus, options: LDAOptions(topics: 2, alpha: 0.1, beta: 0.01,
                                                             iterations: 200, seed: 1))
        let sport = Set(Self.sportWords), finance = Set(Self.financeWords)
        let top = (0..<2).map { Set(model.topWords($0, count: 6)) }
        XCTAssertTrue(top.contains(sport) && top.contains(finance), "top words \(top)")
        let sportTopic = top[0] == sport ? 0 : 1

        for (d, theta) in model.documentTopic.enumerated() {
            let topic = d < 20 ? sportTopic : 1 - sportTopic
            XCTAssertGreaterThan(theta[topic], 0.9, "document \(d): θ = \(theta)")
        }
        let first = model.topicMixture(documents: Array(0..<20))
        let second = model.topicMixture(documents: Array(20..<40))
        XCTAssertGreaterThan(first[sportTopic], 0.9, "\(first)")
        XCTAssertGreaterThan(second[1 - sportTopic], 0.9, "\(second)")
        XCTAssertEqual(first.reduce(0, +), 1, accuracy: 1e-9)
        XCTAssertEqual(model.topicMixture(documents: []), [0.5, 0.5])
        XCTAssertTrue(model.logLikelihood.isFinite)
    }

    func testSameSeedIsBitwiseIdenticalAndOtherSeedIsValid() {
        let corpus = Self.twoTopicCorpus()
        let options = LDAOptions(topics: 3, iterations: 30, seed: 3)
        let a = LDAModel.fit(corpus, options: options)
        let b = LDAModel.fit(corpus, options: options)
        XCTAssertEqual(a.topicWord.map { $0.map(\.bitPattern) }, b.topicWord.map { $0.map(\.bitPattern) })
        XCTAssertEqual(a.documentTopic.map { $0.map(\.bitPattern) }, b.documentTopic.map { $0.map(\.bitPattern) })
        XCTAssertEqual(a.logLikelihood.bitPattern, b.logLikelihood.bitPattern)

        var other = options
        other.seed = 99
        let c = LDAModel.fit(corpus, options: other)
        XCTAssertEqual(c.topicWord.count, 3)
        XCTAssertEqual(c.documentTopic.count, 40)
        assertRowsSumToOne(c.topicWord, "φ seed 99")
        assertRowsSumToOne(c.documentTopic, "θ seed 99")
        XCTAssertNotEqual(a.documentTopicCounts, c.documentTopicCounts, "different seeds, same state")
    }

    func testRowsSumToOneAndCountsAreConsistent() {
        // Uneven lengths, an empty document and a word-poor vocabulary exercise the edges.
        var texts = Self.twoTopicTexts()
        texts[5] = "goal match"
        texts[6] = "nothing kept here"
        let corpus = TopicCorpus(documents: texts, maximumDocumentFraction: 1.0)
        XCTAssertEqual(corpus.documents[6], [])
        let K = 4, V = corpus.vocabulary.count, D = corpus.documents.count
        let model = LDAModel.fit(corpus, options: LDAOptions(topics: K, iterations: 25, seed: 5))

        XCTAssertEqual(model.topicWord.count, K)
        XCTAssertTrue(model.topicWord.allSatisfy { $0.count == V })
        XCTAssertEqual(model.documentTopic.count, D)
        assertRowsSumToOne(model.topicWord, "φ")
        assertRowsSumToOne(model.documentTopic, "θ")
        XCTAssertEqual(model.documentTopic[6], [Double](repeating: 0.25, count: K), "empty document is uniform")

        // Σ_k n_dk = n_d, Σ_w n_kw = n_k, Σ_k n_k = N, and every count is non-negative.
        for d in 0..<D {
            let row = model.documentTopicCounts[d * K ..< (d + 1) * K]
            XCTAssertEqual(row.reduce(0) { $0 + Int($1) }, corpus.documents[d].count, "document \(d)")
        }
        for k in 0..<K {
            let row = model.topicWordCounts[k * V ..< (k + 1) * V]
            XCTAssertEqual(row.reduce(0) { $0 + Int($1) }, Int(model.topicCounts[k]), "topic \(k)")
        }
        XCTAssertEqual(model.topicCounts.reduce(0) { $0 + Int($1) }, corpus.tokenCount)
        // Σ_d n_dk = n_k too: both tables count the same assignments.
        for k in 0..<K {
            let column = (0..<D).reduce(0) { $0 + Int(model.documentTopicCounts[$1 * K + k]) }
            XCTAssertEqual(column, Int(model.topicCounts[k]), "topic \(k) over documents")
        }
        XCTAssertTrue((model.documentTopicCounts + model.topicWordCounts).allSatisfy { $0 >= 0 })

        // φ is monotone in n_kw, so the top word is the word with the largest count (lowest id on ties).
        for k in 0..<K {
            let row = Array(model.topicWordCounts[k * V ..< (k + 1) * V])
            let best = row.indices.max { row[$0] != row[$1] ? row[$0] < row[$1] : $0 > $1 }!
            XCTAssertEqual(model.topWords(k, count: 1), [corpus.vocabulary[best]])
        }
        XCTAssertEqual(model.topWords(0, count: 100).count, V)
    }

    /// Release-build timing at report scale; run with LDA_TIMING=1 (skipped otherwise).
    func testTimingAtReportScale() throws {
        guard ProcessInfo.processInfo.environment["LDA_TIMING"] == "1" else {
            throw XCTSkip("set LDA_TIMING=1 to time 13,000 documents × 30 tokens, K = 10, 200 sweeps")
        }
        // 2,000 synthetic letter-only words, 13,000 documents of 30 tokens each.
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        let lexicon = (0..<2000).map { i in "w" + String([letters[i / 676 % 26], letters[i / 26 % 26], letters[i % 26]]) }
        var rng = SplitMix64(seed: 11)
        let texts = (0..<13_000).map { _ in
            (0..<30).map { _ in lexicon[Int(rng.next() % 2000)] }.joined(separator: " ")
        }
        let corpus = TopicCorpus(documents: texts)
        let start = Date()
        let model = LDAModel.fit(corpus, options: LDAOptions(topics: 10, iterations: 200, seed: 42))
        let seconds = Date().timeIntervalSince(start)
        print("LDA timing: \(corpus.documents.count) documents, \(corpus.tokenCount) tokens, "
              + "V = \(corpus.vocabulary.count), K = 10, 200 sweeps: \(String(format: "%.2f", seconds)) s")
        XCTAssertEqual(model.documentTopic.count, 13_000)
    }
}
