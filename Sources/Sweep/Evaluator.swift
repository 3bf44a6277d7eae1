import Foundation

/// One work item's outcome, as an evaluator produces it on a worker.
public struct ItemOutcome: Sendable, Equatable {
    public var key: String
    /// Per test example: was the prediction right. Empty when `error` is set.
    public var correctness: [Bool]
    /// Set when this item could not be evaluated (the reason, naming the file, tensor or domain).
    public var error: String?
    /// The mixture's mean FSD over its member pairs (nil for one member or when not computed).
    public var meanFSD: Double?
    /// Fraction of the target adapter's weights whose sign the mixture flips (nil when not computed).
    public var weightsChangingDirection: Double?
    /// Seconds spent running the encoder for this item (forward, and backward for FGSM).
    public var seconds: Double

    public init(key: String, correctness: [Bool], error: String? = nil, meanFSD: Double? = nil,
                weightsChangingDirection: Double? = nil, seconds: Double) {
        self.key = key
        self.correctness = correctness
        self.error = error
        self.meanFSD = meanFSD
        self.weightsChangingDirection = weightsChangingDirection
        self.seconds = seconds
    }

    public static func failed(_ key: String, _ reason: String) -> ItemOutcome {
        ItemOutcome(key: key, correctness: [], error: reason, seconds: 0)
    }
}

/// Where a shard's time went on the worker.
public struct ShardTiming: Sendable, Equatable, Codable {
    /// Loading and tokenising a target's test split, loading adapters, sign packs (first use only).
    public var setup: Double
    /// Merging mixtures (and their FSD figures).
    public var merge: Double
    /// Running the encoder (the sum of the items' `seconds`).
    public var evaluate: Double

    public init(setup: Double = 0, merge: Double = 0, evaluate: Double = 0) {
        self.setup = setup
        self.merge = merge
        self.evaluate = evaluate
    }

    public static func + (a: ShardTiming, b: ShardTiming) -> ShardTiming {
        ShardTiming(setup: a.setup + b.setup, merge: a.merge + b.merge, evaluate: a.evaluate + b.evaluate)
    }
}

/// Evaluates the work items of one shard (one target). Called from one thread at a time; an
/// evaluator may use several threads inside `evaluate`.
public protocol ShardEvaluator: AnyObject {
    /// One outcome per item, in the order given. Never throws: an item that cannot be evaluated
    /// gets an outcome with `error` set (a whole-shard problem gives every item that error).
    func evaluate(target: String, items: [WorkItem]) -> (outcomes: [ItemOutcome], timing: ShardTiming)
}

/// The built-in no-op evaluator (`--evaluator noop`): fixed results, instantly, for measuring the
/// machinery alone. Each item gets `examples` correctness bits taken from its own key (the key's
/// hex digits, one bit per bit of the key, repeated), so results are deterministic, differ between
/// items, and a wrong key↔result pairing shows up in the numbers.
public final class NoopEvaluator: ShardEvaluator {
    public let examples: Int

    public init(examples: Int = 64) { self.examples = max(1, examples) }

    public static func correctness(key: String, examples: Int) -> [Bool] {
        let digits = Array(key.utf8).map { c -> UInt8 in
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x61...0x66: return c - 0x61 + 10
            default: return c & 0x0F
            }
        }
        guard !digits.isEmpty else { return [Bool](repeating: false, count: examples) }
        return (0..<examples).map { i in digits[(i / 4) % digits.count] & (1 << UInt8(i % 4)) != 0 }
    }

    public func evaluate(target: String, items: [WorkItem]) -> (outcomes: [ItemOutcome], timing: ShardTiming) {
        (items.map { ItemOutcome(key: $0.key, correctness: Self.correctness(key: $0.key, examples: examples), seconds: 0) },
         ShardTiming())
    }
}
