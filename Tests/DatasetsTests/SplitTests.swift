import Datasets
import Foundation
import XCTest

final class SplitTests: XCTestCase {
    /// `count` examples per label, with distinct texts.
    func examples(_ counts: KeyValuePairs<String, Int>, prefix: String = "ex") -> [Example] {
        var out: [Example] = []
        var i = 0
        for (label, n) in counts {
            for _ in 0..<n {
                out.append(Example(id: "\(prefix)-\(i)", text: "\(prefix) text number \(i) about \(label)", label: label))
                i += 1
            }
        }
        return out
    }

    /// A seeded Fisher–Yates shuffle (a 64-bit LCG), so the test itself is deterministic.
    func shuffled(_ xs: [Example], seed: UInt64) -> [Example] {
        var state = seed, out = xs
        for i in stride(from: out.count - 1, to: 0, by: -1) {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            out.swapAt(i, Int((state >> 33) % UInt64(i + 1)))
        }
        return out
    }

    func ids(_ xs: [Example]) -> [String] { xs.map(\.id) }

    func split(_ train: [Example], test: [Example]? = nil, _ options: SplitOptions = SplitOptions()) throws -> DomainSplits {
        try makeSplits(name: "toy", train: train, test: test, skipped: ["empty text": 2], options: options)
    }

    // MARK: Determinism

    func testHashKeyIsPinned() {
        // Computed independently (a few lines of Python: FNV-1a over seed LE bytes + UTF-8, SplitMix64 finaliser).
        XCTAssertEqual(SplitHash.key(seed: 42, id: "abc"), 0xd092_f520_533c_92c3)
        XCTAssertEqual(SplitHash.key(seed: 0, id: ""), 0x813f_0174_a236_7c13)
        XCTAssertEqual(SplitHash.key(seed: 7, id: "food-reviews/train/12"), 0xdfd1_2df2_20a1_4b30)
        XCTAssertEqual(SplitHash.key(seed: 42, id: "é"), 0x41b4_bf41_b827_fe99)
    }

    func testSameSeedSameSplitsWhateverTheInputOrder() throws {
        let data = examples(["a": 600, "b": 300, "c": 100])
        let first = try split(data)
        let again = try split(data)
        let reordered = try split(shuffled(data, seed: 99))
        let reversed = try split(data.reversed())
        for other in [again, reordered, reversed] {
            XCTAssertEqual(ids(first.train), ids(other.train))
            XCTAssertEqual(ids(first.validation), ids(other.validation))
            XCTAssertEqual(ids(first.test), ids(other.test))
        }
        XCTAssertEqual(first.labels, ["a", "b", "c"])
        XCTAssertEqual(first.skipped, ["empty text": 2])
        XCTAssertEqual(first.removedLeaks, 0)
        // Every example lands in exactly one split.
        XCTAssertEqual(Set(ids(first.train + first.validation + first.test)), Set(ids(data)))
        XCTAssertEqual(first.train.count + first.validation.count + first.test.count, data.count)
        // Each split is in key order.
        for s in [first.train, first.validation, first.test] {
            let keys = s.map { SplitHash.key(seed: 42, id: $0.id) }
            XCTAssertEqual(keys, keys.sorted())
        }
    }

    func testDifferentSeedDifferentSplit() throws {
        let data = examples(["a": 600, "b": 300, "c": 100])
        let s1 = try split(data, SplitOptions(seed: 1))
        let s2 = try split(data, SplitOptions(seed: 2))
        XCTAssertNotEqual(Set(ids(s1.test)), Set(ids(s2.test)))
        XCTAssertNotEqual(Set(ids(s1.validation)), Set(ids(s2.validation)))
        XCTAssertEqual(s1.test.count, s2.test.count)   // same sizes, other members
    }

    // MARK: Stratification

    func testStratifiedEightOneOne() throws {
        let counts: KeyValuePairs<String, Int> = ["a": 600, "b": 301, "c": 97, "d": 5, "e": 3]
        let result = try split(examples(counts))
        for (label, n) in counts {
            let tr = result.train.filter { $0.label == label }.count
            let va = result.validation.filter { $0.label == label }.count
            let te = result.test.filter { $0.label == label }.count
            XCTAssertEqual(tr + va + te, n, label)
            XCTAssertGreaterThanOrEqual(min(tr, va, te), 1, label)
            // Within one example of the target, except where the one-per-split minimum overrides it (n = 3).
            guard n >= 5 else { continue }
            XCTAssertLessThanOrEqual(abs(Double(tr) - 0.8 * Double(n)), 1, "\(label) train \(tr) of \(n)")
            XCTAssertLessThanOrEqual(abs(Double(va) - 0.1 * Double(n)), 1, "\(label) validation \(va) of \(n)")
            XCTAssertLessThanOrEqual(abs(Double(te) - 0.1 * Double(n)), 1, "\(label) test \(te) of \(n)")
        }
        // Rounding: 600 → 60/60/480; 301 → round(30.1) = 30 each; 97 → round(9.7) = 10 each; 5 → round(0.5) = 1 each.
        XCTAssertEqual(result.test.filter { $0.label == "a" }.count, 60)
        XCTAssertEqual(result.test.filter { $0.label == "b" }.count, 30)
        XCTAssertEqual(result.validation.filter { $0.label == "c" }.count, 10)
        XCTAssertEqual(result.train.filter { $0.label == "d" }.count, 3)
    }

    func testOtherFractions() throws {
        let result = try split(examples(["a": 200, "b": 100]), SplitOptions(validationFraction: 0.25, testFraction: 0.15))
        XCTAssertEqual(result.validation.count, 75)
        XCTAssertEqual(result.test.count, 45)
        XCTAssertEqual(result.train.count, 180)
        XCTAssertThrowsError(try split(examples(["a": 10]), SplitOptions(validationFraction: 0.5, testFraction: 0.5)))
        XCTAssertThrowsError(try split(examples(["a": 10]), SplitOptions(validationFraction: -0.1)))
        // No validation wanted: none is carved, even for small labels.
        let noValidation = try split(examples(["a": 20, "b": 3]), SplitOptions(validationFraction: 0))
        XCTAssertTrue(noValidation.validation.isEmpty)
        XCTAssertEqual(noValidation.test.count, 2 + 1)
    }

    func testTinyLabels() throws {
        let result = try split(examples(["one": 1, "two": 2, "three": 3, "many": 40]))
        func where_(_ label: String) -> [Int] {
            [result.train, result.validation, result.test].map { $0.filter { $0.label == label }.count }
        }
        XCTAssertEqual(where_("one"), [1, 0, 0])
        XCTAssertEqual(where_("two"), [2, 0, 0])
        XCTAssertEqual(where_("three"), [1, 1, 1])
        XCTAssertEqual(where_("many"), [32, 4, 4])
        XCTAssertEqual(result.labels, ["many", "one", "three", "two"])
    }

    // MARK: Official test split

    func testOfficialTestSplitIsKept() throws {
        let train = examples(["pos": 450, "neg": 150], prefix: "train")
        var test = examples(["pos": 70, "neg": 30, "rare": 1], prefix: "test")
        test.append(Example(id: "test-dup", text: test[0].text, label: test[0].label))   // a repeat inside test stays
        let result = try split(train, test: test)
        XCTAssertEqual(Set(result.test), Set(test))
        XCTAssertEqual(result.test.count, test.count)
        XCTAssertEqual(result.validation.count, 45 + 15)    // 10% of each training label; no test carved
        XCTAssertEqual(result.train.count, 600 - 60)
        XCTAssertEqual(Set(ids(result.train + result.validation)), Set(ids(train)))
        XCTAssertEqual(result.labels, ["neg", "pos", "rare"])
        // The input order of the official test doesn't matter either.
        XCTAssertEqual(ids(try split(shuffled(train, seed: 3), test: Array(test.reversed())).test), ids(result.test))
    }

    // MARK: Caps

    func testCaps() throws {
        let data = examples(["a": 600, "b": 300, "c": 100])
        let full = try split(data)
        let capped = try split(data, SplitOptions(maxTrain: 101, maxValidation: 10, maxTest: 7))
        XCTAssertEqual(capped.train.count, 101)
        XCTAssertEqual(capped.validation.count, 10)
        XCTAssertEqual(capped.test.count, 7)
        // Proportional per label: train 60.6/30.3/10.1 → 60/30/10 + the leftover one to "a" (largest remainder).
        XCTAssertEqual(["a", "b", "c"].map { l in capped.train.filter { $0.label == l }.count }, [61, 30, 10])
        XCTAssertEqual(["a", "b", "c"].map { l in capped.validation.filter { $0.label == l }.count }, [6, 3, 1])
        // Test 4.2/2.1/0.7 → 4/2/0, leftover to "c" (0.7 is the largest remainder).
        XCTAssertEqual(["a", "b", "c"].map { l in capped.test.filter { $0.label == l }.count }, [4, 2, 1])
        // A cap keeps each label's first examples in key order: a prefix of the uncapped split's label list.
        for (small, big) in [(capped.train, full.train), (capped.validation, full.validation), (capped.test, full.test)] {
            for l in ["a", "b", "c"] {
                let s = small.filter { $0.label == l }.map(\.id), b = big.filter { $0.label == l }.map(\.id)
                XCTAssertEqual(s, Array(b.prefix(s.count)), l)
            }
        }
        // A cap above the size changes nothing; a zero cap empties the split.
        let loose = try split(data, SplitOptions(maxTrain: 10_000, maxTest: 0))
        XCTAssertEqual(ids(loose.train), ids(full.train))
        XCTAssertTrue(loose.test.isEmpty)
        XCTAssertThrowsError(try split(data, SplitOptions(maxValidation: -1)))
    }

    func testCapKeepsEveryLabel() throws {
        // 792 / 8 training examples, cap 20: 19.8 / 0.2 → 20 / 0 by remainders, then "b" takes one.
        let capped = try split(examples(["a": 990, "b": 10]), SplitOptions(maxTrain: 20))
        XCTAssertEqual(["a", "b"].map { l in capped.train.filter { $0.label == l }.count }, [19, 1])
    }

    // MARK: Leakage

    func testLeakageAgainstOfficialTest() throws {
        var train = examples(["pos": 40, "neg": 40], prefix: "train")
        let test = [Example(id: "t1", text: "Great Product!", label: "pos"),
                    Example(id: "t2", text: "Terrible.\tNever again.", label: "neg"),
                    Example(id: "t3", text: "Question?", textPair: "Answer", label: "pos")]
        train += [Example(id: "leak1", text: "great   product!", label: "pos"),
                  Example(id: "leak2", text: "  GREAT PRODUCT!\n", label: "neg"),      // label differs: still a leak
                  Example(id: "leak3", text: "ＧＲＥＡＴ Product!", label: "pos"),       // fullwidth: NFKC folds it
                  Example(id: "leak4", text: "terrible. never again.", label: "neg"),
                  Example(id: "leak5", text: "question?", textPair: " ANSWER ", label: "pos"),
                  Example(id: "keep1", text: "Question?", textPair: "Another answer", label: "pos"),
                  Example(id: "keep2", text: "Great Product!!", label: "pos")]
        let result = try split(train, test: test)
        let kept = Set(ids(result.train + result.validation))
        for id in ["leak1", "leak2", "leak3", "leak4", "leak5"] { XCTAssertFalse(kept.contains(id), id) }
        XCTAssertTrue(kept.contains("keep1") && kept.contains("keep2"))
        XCTAssertEqual(result.removedLeaks, 5)
        XCTAssertEqual(result.test.count, 3)
        XCTAssertEqual(result.train.count + result.validation.count, 80 + 2)
    }

    func testLeakageBetweenTrainAndValidation() throws {
        let base = examples(["a": 50, "b": 50])
        let first = try split(base)
        XCTAssertEqual(first.removedLeaks, 0)
        // Give one train example a validation example's text (other case and spacing), and one
        // validation and one train example a test example's text. Assignment depends only on ids and
        // label counts, so these examples stay where they were.
        let v = first.validation[0], t = first.test[0]
        let trainVictim = first.train[0].id, trainVictim2 = first.train[1].id, validationVictim = first.validation[1].id
        let edited = base.map { e -> Example in
            var e = e
            if e.id == trainVictim { e.text = "  " + v.text.uppercased().replacingOccurrences(of: " ", with: "   ") }
            if e.id == trainVictim2 || e.id == validationVictim { e.text = t.text.uppercased() + "\n" }
            return e
        }
        let second = try split(edited)
        XCTAssertEqual(second.removedLeaks, 3)
        XCTAssertFalse(ids(second.train).contains(trainVictim))
        XCTAssertFalse(ids(second.train).contains(trainVictim2))
        XCTAssertFalse(ids(second.validation).contains(validationVictim))
        XCTAssertTrue(ids(second.validation).contains(v.id))
        XCTAssertEqual(ids(second.test), ids(first.test))
        XCTAssertEqual(second.train.count, first.train.count - 2)
        XCTAssertEqual(second.validation.count, first.validation.count - 1)
    }

    func testLeakageKey() {
        XCTAssertEqual(leakageKey(Example(id: "x", text: "  Ｈｅｌｌｏ,\u{00A0}WORLD \n", label: "l")), "hello, world")
        XCTAssertEqual(leakageKey(Example(id: "x", text: "Cafe\u{0301}", label: "l")), "café")
        XCTAssertNotEqual(leakageKey(Example(id: "x", text: "a b", label: "l")),
                          leakageKey(Example(id: "y", text: "a", textPair: "b", label: "l")))
    }

    // MARK: Errors

    func testDuplicateIds() {
        var data = examples(["a": 10])
        data.append(Example(id: "ex-3", text: "another text", label: "a"))
        XCTAssertThrowsError(try split(data)) { error in
            XCTAssertTrue("\(error)".contains("duplicate example id 'ex-3'"), "\(error)")
            XCTAssertEqual((error as? DatasetError)?.file, "toy")
        }
        // Across the official train and test too.
        XCTAssertThrowsError(try split(examples(["a": 10]), test: [Example(id: "ex-0", text: "t", label: "a")]))
    }
}
