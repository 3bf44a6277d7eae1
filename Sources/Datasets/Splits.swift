import Foundation

// Train / validation / test splits, caps and leakage removal, following the study's rules.
//
// Order. Every example gets a 64-bit key, `SplitHash.key(seed:id:)`: FNV-1a over the seed's eight
// little-endian bytes followed by the id's UTF-8 bytes, then SplitMix64's finaliser. Examples are
// ordered by (key, id's UTF-8 bytes). Only the seed and the ids decide this order, so it doesn't
// depend on the input order, the platform or the Swift version.
//
// Splitting. With an official test split, the test split is kept as given (no example is added,
// dropped or deduplicated) and validation is carved from train. Without one, each label gets an
// 8:1:1 split (by default). Within each label, in key order, the first `nTest` examples go to test,
// the next `nValidation` go to validation and the rest go to train, where
//     nTest = round(n × testFraction)   nValidation = round(n × validationFraction)
// and round() sends halves away from zero. A label with at least 3 examples gets at least one
// example in each split whose fraction is above 0. If that leaves train empty, validation gives one
// back first, then test. A label with 1 or 2 examples goes entirely to train.
// With an official test split, only validation is carved (testFraction is ignored), with the same
// rounding and the same minimum.
//
// Leakage. A text's key is its normalised text: Unicode NFKC, lowercased, whitespace runs collapsed
// to one space, trimmed; for pairs, the normalised text and pair joined by U+0000. The steps run in
// this order:
//   1. cap test;
//   2. drop every validation example whose key is also in the (capped) test split, then cap validation;
//   3. drop every train example whose key is in the test or (capped) validation split, then cap train.
// `removedLeaks` counts the examples dropped in steps 2 and 3 (before the train and validation caps).
// Repeated texts inside a single split stay, test included: an official test set stays exactly as
// published, and a carved test set follows the same rule.
//
// Caps. A cap keeps N examples of a split, stratified by label. Label l, with c_l of the split's C
// examples, gets floor(N × c_l / C). The leftover examples go one each to the labels with the largest
// fractional parts (ties go to the earlier label in sorted order). If N is at least the number of
// labels, a label that got 0 then takes one from the label with the largest quota (ties go to the
// earlier label). Each label keeps its first examples in key order.
//
// Output. Each split is sorted by key order.

public struct SplitOptions: Sendable, Equatable, Codable {
    public var seed: UInt64 = 42
    public var validationFraction = 0.1
    public var testFraction = 0.1
    public var maxTrain: Int?
    public var maxValidation: Int?
    public var maxTest: Int?

    public init(seed: UInt64 = 42, validationFraction: Double = 0.1, testFraction: Double = 0.1,
                maxTrain: Int? = nil, maxValidation: Int? = nil, maxTest: Int? = nil) {
        self.seed = seed; self.validationFraction = validationFraction; self.testFraction = testFraction
        self.maxTrain = maxTrain; self.maxValidation = maxValidation; self.maxTest = maxTest
    }
}

public struct DomainSplits: Sendable, Equatable, Codable {
    public var name: String
    /// Every label seen in the input (train and official test), sorted.
    public var labels: [String]
    public var train: [Example]
    public var validation: [Example]
    public var test: [Example]
    /// Passed through from the reader: reason → number of source rows skipped.
    public var skipped: [String: Int]
    /// How many train and validation examples were dropped because their normalised text is in
    /// test (or, for train, in validation).
    public var removedLeaks: Int

    public init(name: String, labels: [String], train: [Example], validation: [Example], test: [Example],
                skipped: [String: Int] = [:], removedLeaks: Int = 0) {
        self.name = name; self.labels = labels; self.train = train; self.validation = validation; self.test = test
        self.skipped = skipped; self.removedLeaks = removedLeaks
    }

    public subscript(split: Split) -> [Example] {
        switch split {
        case .train: return train
        case .validation: return validation
        case .test: return test
        }
    }
}

/// The order key of an example id: see the comment at the top of this file.
public enum SplitHash {
    public static func key(seed: UInt64, id: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        let prime: UInt64 = 0x0000_0100_0000_01b3
        for i in 0..<8 {
            h ^= (seed >> (8 * UInt64(i))) & 0xFF
            h = h &* prime
        }
        for b in id.utf8 {
            h ^= UInt64(b)
            h = h &* prime
        }
        // SplitMix64 finaliser.
        h = (h ^ (h >> 30)) &* 0xbf58_476d_1ce4_e5b9
        h = (h ^ (h >> 27)) &* 0x94d0_49bb_1331_11eb
        return h ^ (h >> 31)
    }

    /// Sorts examples by (key, id bytes).
    static func sorted(_ examples: [Example], seed: UInt64) -> [Example] {
        examples.map { (key: key(seed: seed, id: $0.id), example: $0) }
            .sorted { a, b in a.key != b.key ? a.key < b.key : a.example.id.utf8.lexicographicallyPrecedes(b.example.id.utf8) }
            .map(\.example)
    }
}

/// The normalised text used to find leaks: NFKC, lowercase, whitespace collapsed, trimmed; a pair's
/// two normalised texts joined by U+0000.
public func leakageKey(_ example: Example) -> String {
    func norm(_ s: String) -> String {
        let folded = s.precomposedStringWithCompatibilityMapping.lowercased()
        return folded.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
    }
    guard let pair = example.textPair else { return norm(example.text) }
    return norm(example.text) + "\u{0}" + norm(pair)
}

/// Splits a domain's examples (see the comment at the top of this file for the rules).
/// - Parameters:
///   - train: all examples, or the official training split when `test` is given.
///   - test: the official test split, kept as is; nil to carve one.
public func makeSplits(name: String, train: [Example], test: [Example]?, skipped: [String: Int],
                       options: SplitOptions) throws -> DomainSplits {
    let file = name
    let vf = options.validationFraction, tf = test == nil ? options.testFraction : 0
    guard vf >= 0, tf >= 0, vf.isFinite, tf.isFinite, vf + tf < 1 else {
        throw DatasetError(file: file, reason: "invalid split fractions: validation \(vf), test \(tf)",
                           hint: "each must be ≥ 0 and together below 1")
    }
    for (what, cap) in [("maxTrain", options.maxTrain), ("maxValidation", options.maxValidation), ("maxTest", options.maxTest)] {
        if let cap, cap < 0 { throw DatasetError(file: file, reason: "\(what) is negative (\(cap))") }
    }
    var seen = Set<String>()
    for e in train + (test ?? []) where !seen.insert(e.id).inserted {
        throw DatasetError(file: file, reason: "duplicate example id '\(e.id)'",
                           hint: "ids must be unique across train and test; derive them from file, line or row")
    }
    let labels = Set((train + (test ?? [])).map(\.label)).sorted()
    let seed = options.seed

    // 1. Split per label, in key order.
    var trainSet: [Example] = [], validationSet: [Example] = [], testSet: [Example] = test ?? []
    for (_, group) in Dictionary(grouping: train, by: \.label) {
        let ordered = SplitHash.sorted(group, seed: seed)
        let (nTest, nValidation) = cutSizes(ordered.count, validationFraction: vf, testFraction: tf)
        testSet += ordered[0..<nTest]
        validationSet += ordered[nTest..<nTest + nValidation]
        trainSet += ordered[(nTest + nValidation)...]
    }

    // 2. Caps and leakage removal.
    testSet = capped(testSet, to: options.maxTest, labels: labels, seed: seed)
    let testKeys = Set(testSet.map(leakageKey))
    var removed = 0
    validationSet = validationSet.filter { e in
        if testKeys.contains(leakageKey(e)) { removed += 1; return false }
        return true
    }
    validationSet = capped(validationSet, to: options.maxValidation, labels: labels, seed: seed)
    let validationKeys = Set(validationSet.map(leakageKey))
    trainSet = trainSet.filter { e in
        let k = leakageKey(e)
        if testKeys.contains(k) || validationKeys.contains(k) { removed += 1; return false }
        return true
    }
    trainSet = capped(trainSet, to: options.maxTrain, labels: labels, seed: seed)

    return DomainSplits(name: name, labels: labels,
                        train: SplitHash.sorted(trainSet, seed: seed),
                        validation: SplitHash.sorted(validationSet, seed: seed),
                        test: SplitHash.sorted(testSet, seed: seed),
                        skipped: skipped, removedLeaks: removed)
}

/// How many of a label's `n` examples go to test and to validation.
func cutSizes(_ n: Int, validationFraction vf: Double, testFraction tf: Double) -> (test: Int, validation: Int) {
    guard n >= 3 else { return (0, 0) }
    var nTest = Int((Double(n) * tf).rounded(.toNearestOrAwayFromZero))
    var nValidation = Int((Double(n) * vf).rounded(.toNearestOrAwayFromZero))
    if tf > 0 { nTest = max(nTest, 1) }
    if vf > 0 { nValidation = max(nValidation, 1) }
    // With n ≥ 3 and at most one each in validation and test, train keeps at least one.
    while n - nTest - nValidation < 1 {
        if nValidation > 1 { nValidation -= 1 } else if nTest > 1 { nTest -= 1 } else { break }
    }
    return (nTest, nValidation)
}

/// Keeps `cap` examples, stratified by label (largest remainder; see the top of this file).
func capped(_ examples: [Example], to cap: Int?, labels: [String], seed: UInt64) -> [Example] {
    guard let cap, cap < examples.count else { return examples }
    let groups = Dictionary(grouping: examples, by: \.label)
    let present = labels.filter { groups[$0] != nil }
    let total = examples.count
    var quota: [String: Int] = [:]
    var remainders: [(label: String, fraction: Double)] = []
    var given = 0
    for l in present {
        let exact = Double(cap) * Double(groups[l]!.count) / Double(total)
        let q = Int(exact.rounded(.down))
        quota[l] = q; given += q
        remainders.append((l, exact - Double(q)))
    }
    // Stable sort: ties keep the sorted label order.
    let byRemainder = remainders.enumerated()
        .sorted { $0.element.fraction != $1.element.fraction ? $0.element.fraction > $1.element.fraction : $0.offset < $1.offset }
        .map(\.element.label)
    for l in byRemainder.prefix(cap - given) { quota[l]! += 1 }
    if cap >= present.count {
        for l in present where quota[l] == 0 {
            // Take one from the label with the largest quota (earliest in sorted order on ties).
            guard let donor = present.max(by: { a, b in quota[a]! != quota[b]! ? quota[a]! < quota[b]! : a > b }),
                  quota[donor]! > 1 else { break }
            quota[donor]! -= 1
            quota[l] = 1
        }
    }
    var kept: [Example] = []
    for l in present { kept += SplitHash.sorted(groups[l]!, seed: seed).prefix(quota[l]!) }
    return kept
}
