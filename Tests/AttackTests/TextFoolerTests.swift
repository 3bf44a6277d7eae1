@testable import Attack
import Foundation
import XCTest

/// A fixed linear bag-of-words model: class 1's logit is the sum of its words' weights (class 0's
/// is 0), so every probability in the expected attack can be worked out by hand.
struct BagOfWords: VictimClassifier {
    let weights: [String: Float]
    var classCount: Int { 2 }
    func score(_ text: String) -> Float { WordSequence(text).words.reduce(0) { $0 + (weights[$1.lowercased()] ?? 0) } }
    func probabilities(_ inputs: [AttackInput]) throws -> [[Float]] {
        inputs.map { input in
            let s = score(input.pair ?? input.text)
            let p1 = 1 / (1 + exp(-s))
            return [1 - p1, p1]
        }
    }
}

struct DictionarySynonyms: SynonymSource {
    let table: [String: [String]]
    func candidates(for word: String) -> [String] { table[word] ?? [] }
}

/// Similarity 1, except windows containing a vetoed word (to exercise the constraint).
struct FakeSimilarity: SentenceSimilarity {
    var veto: Set<String> = []
    func similarity(_ pairs: [(String, String)]) throws -> [Double] {
        pairs.map { _, b in WordSequence(b).words.contains { veto.contains($0.lowercased()) } ? 0.5 : 1 }
    }
}

final class TextFoolerTests: XCTestCase {
    let victim = BagOfWords(weights: ["great": 2, "fun": 1, "movie": 0.2, "good": 0.5, "fine": -0.5, "amusing": 0.2, "film": -1])
    let synonyms = DictionarySynonyms(table: ["great": ["good", "fine"], "fun": ["amusing"], "movie": ["film"], "the": ["a"]])

    func testWordSequenceRoundTripsAndReplaces() {
        let s = WordSequence("  Don't stop: state-of-the-art, 42 times!")
        XCTAssertEqual(s.words, ["Don't", "stop", "state-of-the-art", "42", "times"])
        XCTAssertEqual(s.text, "  Don't stop: state-of-the-art, 42 times!")
        XCTAssertEqual(s.replacing(1, with: "halt").text, "  Don't halt: state-of-the-art, 42 times!")
        XCTAssertEqual(WordSequence("a b c").replacing(1, with: "").text, "a c")
        XCTAssertEqual(WordSequence("").count, 0)
        XCTAssertEqual(WordSequence("one").words, ["one"])
        XCTAssertEqual(WordSequence("a b c d e f g").window(2, 5), "c d e")
        XCTAssertEqual(WordSequence("Hi, you: there!").textBefore(2), "Hi, you: ")
        XCTAssertEqual(WordSequence("Hi, you: there!").textBefore(0), "")
    }

    /// TextAttack's `text_window_around_index`, worked by hand for 10 words and a window of 5
    /// (half = 2): centred in the middle, pushed against either end near the edges; separators kept.
    func testWindowAroundAWordAsTextAttackPlacesIt() {
        let s = WordSequence("w0 w1, w2 w3 w4 w5 w6 w7 w8 w9.")
        XCTAssertEqual(s.window(around: 0, size: 5), "w0 w1, w2 w3 w4")
        XCTAssertEqual(s.window(around: 1, size: 5), "w0 w1, w2 w3 w4")
        XCTAssertEqual(s.window(around: 2, size: 5), "w0 w1, w2 w3 w4")
        XCTAssertEqual(s.window(around: 5, size: 5), "w3 w4 w5 w6 w7")
        XCTAssertEqual(s.window(around: 8, size: 5), "w5 w6 w7 w8 w9")
        XCTAssertEqual(s.window(around: 9, size: 5), "w5 w6 w7 w8 w9")
        // Even sizes: half = 1.5, so one more word before the centre than after it.
        XCTAssertEqual(s.window(around: 5, size: 4), "w3 w4 w5 w6")
        // Shorter than the window: the whole text, start to end of the words.
        XCTAssertEqual(WordSequence(" a, b ").window(around: 1, size: 15), "a, b")
    }

    /// Only the first `maxWords` words are ranked and tried; a victim that reports a truncation
    /// limits them the same way.
    func testWordsPastTheLimitAreLeftAlone() throws {
        var options = TextFoolerOptions()
        options.maxWords = 3  // "The movie was": only "movie" may change
        let out = try TextFooler(options: options).attack(AttackInput(text: "The movie was great and fun."), label: 1, victim: victim,
                                                          synonyms: synonyms, similarity: FakeSimilarity())
        XCTAssertEqual(out.status, .failed)
        XCTAssertEqual(out.adversarial.text, "The film was great and fun.")
        XCTAssertEqual(out.queries, 1 + 1 + 1)  // original, deleting "movie", its one candidate
        struct Truncating: VictimClassifier {
            let inner: BagOfWords
            var classCount: Int { 2 }
            func probabilities(_ inputs: [AttackInput]) throws -> [[Float]] { try inner.probabilities(inputs) }
            func wordsSeen(_ input: AttackInput, words: WordSequence) throws -> Int? { 3 }
        }
        let cut = try TextFooler().attack(AttackInput(text: "The movie was great and fun."), label: 1,
                                          victim: Truncating(inner: victim), synonyms: synonyms, similarity: FakeSimilarity())
        XCTAssertEqual(cut.adversarial.text, "The film was great and fun.")
        var all = TextFoolerOptions()
        all.skipUnseenWords = false
        let uncut = try TextFooler(options: all).attack(AttackInput(text: "The movie was great and fun."), label: 1,
                                                        victim: Truncating(inner: victim), synonyms: synonyms, similarity: FakeSimilarity())
        XCTAssertEqual(uncut.status, .succeeded)
    }

    /// By hand: deleting "great" lowers p(pos) most, then "fun", then "movie". "great" → "fine"
    /// (score 3.2 → 0.7: the larger drop, no flip), then "fun" → "amusing" (0.7 → −0.1: flipped).
    func testFindsTheExpectedAdversarialText() throws {
        let out = try TextFooler().attack(AttackInput(text: "The movie was great and fun."), label: 1, victim: victim,
                                          synonyms: synonyms, similarity: FakeSimilarity())
        XCTAssertEqual(out.status, .succeeded)
        XCTAssertEqual(out.adversarial.text, "The movie was fine and amusing.")
        XCTAssertEqual(out.swaps.map(\.original), ["great", "fun"])
        XCTAssertEqual(out.swaps.map(\.replacement), ["fine", "amusing"])
        XCTAssertEqual(out.finalLabel, 0)
        // 1 original + 3 deletions (movie, great, fun: the stop-words are not ranked) + 2 candidates
        // for "great" + 1 for "fun".
        XCTAssertEqual(out.queries, 7)
        XCTAssertEqual(out.wordCount, 6)
        XCTAssertEqual(out.perturbedFraction, 2.0 / 6.0, accuracy: 1e-12)
        XCTAssertFalse(out.correctAfterAttack)
    }

    /// The similarity constraint vetoes "fine": "great" → "good" (3.2 → 1.7), "fun" → "amusing"
    /// (→ 0.9), "movie" → "Film" (→ −0.3: flipped; the capital is kept).
    func testSimilarityConstraintChangesThePath() throws {
        let out = try TextFooler().attack(AttackInput(text: "The movie was great and fun."), label: 1, victim: victim,
                                          synonyms: synonyms, similarity: FakeSimilarity(veto: ["fine"]))
        XCTAssertEqual(out.status, .succeeded)
        XCTAssertEqual(out.adversarial.text, "The film was good and amusing.")
        XCTAssertTrue(out.swaps.allSatisfy { $0.similarity >= 0.84 })
        // "The" is a stop-word: never swapped although it has a candidate.
        XCTAssertFalse(out.swaps.contains { $0.original == "The" })
    }

    func testPairsOnlyChangeTheSecondTextAndSkippedAndFailedCases() throws {
        let pair = AttackInput(text: "great great great", pair: "The movie was great and fun.")
        let out = try TextFooler().attack(pair, label: 1, victim: victim, synonyms: synonyms, similarity: FakeSimilarity())
        XCTAssertEqual(out.adversarial.text, pair.text)
        XCTAssertEqual(out.adversarial.pair, "The movie was fine and amusing.")
        // Already wrong: skipped, one query.
        let wrong = try TextFooler().attack(AttackInput(text: "fine"), label: 1, victim: victim, synonyms: synonyms, similarity: FakeSimilarity())
        XCTAssertEqual(wrong.status, .skipped)
        XCTAssertEqual(wrong.queries, 1)
        // No candidate flips "great great": failed, still correct.
        let robust = BagOfWords(weights: ["great": 5, "good": 4, "fine": 3])
        let failed = try TextFooler().attack(AttackInput(text: "great great"), label: 1, victim: robust, synonyms: synonyms,
                                             similarity: FakeSimilarity())
        XCTAssertEqual(failed.status, .failed)
        XCTAssertTrue(failed.correctAfterAttack)
        XCTAssertEqual(failed.adversarial.text, "fine fine")  // each swap still took the largest drop
    }

    func testQueryBudgetIsRespected() throws {
        var options = TextFoolerOptions()
        options.queryBudget = 5
        let out = try TextFooler(options: options).attack(AttackInput(text: "The movie was great and fun."), label: 1, victim: victim,
                                                          synonyms: synonyms, similarity: FakeSimilarity())
        XCTAssertLessThanOrEqual(out.queries, 5)
        XCTAssertNotEqual(out.status, .succeeded)
    }

    func testAngularSimilarity() {
        XCTAssertEqual(EncoderSimilarity.angular([1, 0], [1, 0]), 1, accuracy: 1e-12)
        XCTAssertEqual(EncoderSimilarity.angular([1, 0], [0, 1]), 0.5, accuracy: 1e-12)
        XCTAssertEqual(EncoderSimilarity.angular([1, 0], [-1, 0]), 0, accuracy: 1e-12)
        let c = Float(cos(Double.pi / 3)), s = Float(sin(Double.pi / 3))
        XCTAssertEqual(EncoderSimilarity.angular([1, 0], [c, s]), 1 - 1.0 / 3.0, accuracy: 1e-6)
    }
}
