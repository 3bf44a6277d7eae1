import Adapters
@testable import Attack
import Datasets
import Encoder
import Foundation
import Tensor
import XCTest

/// TextFooler against a real adapter on the tiny RoBERTa, with the packaged GloVe candidates and an
/// encoder's sentence similarity. Every accepted swap is re-checked against both thresholds
/// with numbers computed here, independently of the attack's own: the GloVe cosine from the raw
/// vectors, the window similarity from a separate encoder run.
final class RealAttackTests: XCTestCase {
    static let root: URL = {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { dir = dir.deletingLastPathComponent() }
        return dir
    }()

    struct Setup {
        var victim: AdapterVictim
        var examples: [Example]
        var labelIndex: [String: Int]
        var table: SynonymTable
        var vectors: GloVeVectors
        var similarity: EncoderSimilarity
        var sentence: PretrainedEncoder
        var adapter: Adapter
    }

    func setup(domain: String, count: Int) throws -> Setup {
        let glove = GloVeVectors.packagedFile()
        guard FileManager.default.fileExists(atPath: glove.path) else { throw XCTSkip("GloVe not unpacked: run make setup") }
        let tiny = try PretrainedEncoder(directory: Self.root.appendingPathComponent("Tests/EncoderTests/Fixtures/tiny-roberta"))
        let catalog = try DomainCatalog(assets: PretrainedEncoder.assetsDirectory())
        let splits = try catalog.load(domain, options: SplitOptions(seed: 42, maxTest: count))
        // A fixed random adapter (zero up-projection replaced by seeded values): a real classifier to attack.
        let adapter = Adapter.initialized(config: AdapterConfig(method: .pfeiffer, bottleneck: 8), encoder: tiny.model.config,
                                          labels: splits.labels, seed: 3)
        var rng = SplitMix64(seed: 11)
        for i in 0..<adapter.layout.count {
            adapter.parameters.base[i] = (Float(rng.next() >> 40) / Float(1 << 24) - 0.5) * (i < adapter.layout.bodyCount ? 0.6 : 2)
        }
        let victim = try AdapterVictim(pretrained: tiny, adapter: adapter, threads: 2, batchSize: 16, maxLength: 48)
        let words = splits.test.flatMap { WordSequence($0.textPair ?? $0.text).words }
        let vectors = try GloVeVectors(contentsOf: glove, limit: 30_000)  // the most frequent words: enough here, faster to load
        let table = SynonymTable(queries: words, vectors: vectors, threshold: 0.8, maxCandidates: 50)
        // The sentence encoder: the tiny RoBERTa too, so the test stays fast in a debug build (the CLI
        // uses the packaged all-MiniLM-L6-v2; the constraint's code is the same for any encoder).
        let sentence = tiny
        return Setup(victim: victim, examples: splits.test, labelIndex: Dictionary(uniqueKeysWithValues: splits.labels.enumerated().map { ($1, $0) }),
                     table: table, vectors: vectors, similarity: EncoderSimilarity(pretrained: sentence), sentence: sentence, adapter: adapter)
    }

    func cosine(_ v: GloVeVectors, _ a: String, _ b: String) -> Double? {
        guard let x = v.vector(of: a), let y = v.vector(of: b) else { return nil }
        var dot = 0.0, nx = 0.0, ny = 0.0
        for (p, q) in zip(x, y) { dot += Double(p) * Double(q); nx += Double(p) * Double(p); ny += Double(q) * Double(q) }
        return dot / (nx.squareRoot() * ny.squareRoot())
    }

    func testAcceptedSwapsRespectBothThresholdsAndRunsRepeat() throws {
        let s = try setup(domain: "sms-spam", count: 3)
        let fooler = TextFooler()
        var attacked = 0, swapsChecked = 0
        let runner = EncoderRunner(model: s.sentence.model, threads: 1)
        for (n, e) in s.examples.enumerated() {
            // Attack the victim's own answer, so every example is attacked (a random head is often wrong).
            let probs = try s.victim.probabilities([AttackInput(text: e.text)])[0]
            let label = probs.indices.max { probs[$0] < probs[$1] }!
            let out = try fooler.attack(AttackInput(text: e.text), label: label, victim: s.victim, synonyms: s.table, similarity: s.similarity)
            // Same input → same output.
            if n == 0 {
                XCTAssertEqual(try fooler.attack(AttackInput(text: e.text), label: label, victim: s.victim, synonyms: s.table, similarity: s.similarity), out)
            }
            XCTAssertLessThanOrEqual(out.queries, fooler.options.queryBudget)
            guard out.status != .skipped else { continue }
            attacked += 1
            // Replay the swaps on the original and re-check each one.
            var current = WordSequence(e.text)
            for swap in out.swaps {
                XCTAssertEqual(current[swap.position], swap.original)
                let c = try XCTUnwrap(cosine(s.vectors, swap.original.lowercased(), swap.replacement.lowercased()))
                XCTAssertGreaterThanOrEqual(c, 0.8 - 1e-6, "\(swap.original) → \(swap.replacement)")
                let next = current.replacing(swap.position, with: swap.replacement)
                // TextAttack's window of 15 words: centred (7 either side) where it fits, else
                // against the start or the end; the raw text from its first word to its last.
                let n = current.count, i = swap.position
                let (lo, hi) = i - 7 < 0 ? (0, min(14, n - 1)) : i + 7 >= n ? (max(0, n - 15), n - 1) : (i - 7, i + 7)
                func raw(_ w: WordSequence) -> String {
                    let t = w.text
                    var starts: [Int] = [], ends: [Int] = [], offset = 0
                    for (j, piece) in w.pieces.enumerated() {
                        if j % 2 == 1 { starts.append(offset); ends.append(offset + piece.count) }
                        offset += piece.count
                    }
                    return String(Array(t)[starts[lo]..<ends[hi]])
                }
                let windows = [raw(current), raw(next)]
                let emb = try runner.embed(try s.sentence.encode(windows, maxLength: 128), padId: s.sentence.tokenizer.padId, pooling: .mean, normalize: true)
                var dot = 0.0
                for i in emb[0].indices { dot += Double(emb[0][i]) * Double(emb[1][i]) }
                let angular = 1 - acos(min(1, max(-1, dot))) / Double.pi
                XCTAssertGreaterThanOrEqual(angular, 0.84 - 1e-6, "\(windows)")
                XCTAssertEqual(angular, swap.similarity, accuracy: 1e-5)
                current = next
                swapsChecked += 1
            }
            XCTAssertEqual(current.text, out.adversarial.text)
            XCTAssertFalse(out.swaps.contains { TextFooler.defaultStopWords.contains($0.original.lowercased()) })
            if out.status == .succeeded {
                XCTAssertNotEqual(try s.victim.probabilities([out.adversarial])[0].indices.max { a, b in
                    let p = try! s.victim.probabilities([out.adversarial])[0]; return p[a] < p[b] }, label)
            }
        }
        XCTAssertGreaterThan(attacked, 0, "some examples should be classified right and attacked")
        print("real attack: \(attacked) attacked, \(swapsChecked) swaps re-checked")
    }

    func testPairTasksNeverChangeTheFirstText() throws {
        let s = try setup(domain: "privacy-qa", count: 2)
        for e in s.examples {
            let input = AttackInput(text: e.text, pair: e.textPair ?? "")
            let out = try TextFooler().attack(input, label: s.labelIndex[e.label]!, victim: s.victim, synonyms: s.table, similarity: s.similarity)
            XCTAssertEqual(out.adversarial.text, e.text)
            for swap in out.swaps { XCTAssertEqual(WordSequence(e.textPair ?? "")[swap.position], swap.original) }
        }
    }

    /// The victim reads `maxLength` (48) tokens: words from `wordsSeen` on cannot change its
    /// probabilities, and the word before that one is (at least partly) read.
    func testWordsSeenMatchesTheVictimsTruncation() throws {
        let s = try setup(domain: "bbc-news", count: 2)
        for e in s.examples {
            let words = WordSequence(e.text)
            let seen = try XCTUnwrap(try s.victim.wordsSeen(AttackInput(text: e.text), words: words), "a news article is longer than 48 tokens")
            XCTAssertLessThan(seen, words.count)
            let p = try s.victim.probabilities([AttackInput(text: e.text)])[0]
            // Every word from `seen` on replaced by another: the same probabilities, bit for bit.
            var changed = words
            for i in seen..<words.count { changed = changed.replacing(i, with: "zebra") }
            XCTAssertEqual(try s.victim.probabilities([AttackInput(text: changed.text)])[0], p)
            // The last word read, replaced: the tokens the victim reads differ.
            let tokenizer = s.victim.pretrained.tokenizer
            let cutIds = try tokenizer.encode(words.replacing(seen - 1, with: "zebra").text, maxLength: 48).ids
            XCTAssertNotEqual(cutIds, try tokenizer.encode(e.text, maxLength: 48).ids)
        }
        // A short text: all words read.
        XCTAssertNil(try s.victim.wordsSeen(AttackInput(text: "a short text"), words: WordSequence("a short text")))
    }

    /// Attacking two examples at a time (two single-threaded victims) gives the outcomes of
    /// attacking them one by one, in input order.
    func testConcurrentAttacksEqualOneByOne() throws {
        let s = try setup(domain: "sms-spam", count: 4)
        let inputs = s.examples.map { AttackInput(text: $0.text) }
        let labels = s.examples.map { s.labelIndex[$0.label]! }
        let one = try zip(inputs, labels).map { try TextFooler().attack($0, label: $1, victim: s.victim, synonyms: s.table, similarity: s.similarity) }
        let tiny = s.victim.pretrained
        let victims = try (0..<2).map { _ in
            try AdapterVictim(pretrained: tiny, adapter: s.adapter, threads: 1, batchSize: 16, maxLength: 48) as VictimClassifier
        }
        let together = try TextFooler().attackAll(inputs, labels: labels, victims: victims,
                                                  similarities: [EncoderSimilarity(pretrained: s.sentence), EncoderSimilarity(pretrained: s.sentence)],
                                                  synonyms: s.table)
        XCTAssertEqual(together, one)
        XCTAssertTrue(one.contains { !$0.swaps.isEmpty }, "some swaps were made, so the comparison means something")
    }
}
