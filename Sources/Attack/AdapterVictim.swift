import Adapters
import Encoder
import Foundation

/// An adapter (or a mixture) with its head on the frozen encoder, as the attack's black box: it
/// sees only texts in and probabilities out. Batches are fixed (`AdaptedRunner(fixedBatches:)`), so
/// the probabilities — and the attack's path — do not depend on the thread count.
public final class AdapterVictim: VictimClassifier {
    public let pretrained: PretrainedEncoder
    public let maxLength: Int
    let runner: AdaptedRunner
    public let classCount: Int

    public init(pretrained: PretrainedEncoder, adapter: Adapter, threads: Int, batchSize: Int = 32, maxLength: Int = 128) throws {
        self.pretrained = pretrained
        self.maxLength = maxLength
        let model = try AdaptedEncoder(model: pretrained.model, adapter: adapter)
        runner = AdaptedRunner(model: adapter.config.method == .lora ? model.foldingLoRA() : model, threads: threads,
                               batchSize: batchSize, fixedBatches: true)
        classCount = adapter.labels.count
    }

    public func probabilities(_ inputs: [AttackInput]) throws -> [[Float]] {
        guard !inputs.isEmpty else { return [] }
        let pairs = inputs.contains { $0.pair != nil } ? inputs.map { $0.pair ?? "" } : nil
        let encodings = try pretrained.encode(inputs.map(\.text), pairs: pairs, maxLength: maxLength)
        return try runner.predict(encodings, padId: pretrained.tokenizer.padId).map { softmaxProbabilities($0.logits) }
    }

    /// For a single text longer than `maxLength` tokens: how many leading words the truncation
    /// leaves (at least partly) in, found by binary search for the shortest prefix — the words
    /// before word j and the separator before it — that already gives the victim's truncated
    /// tokens. Text pairs: nil (the truncation shares the length between the two texts; every
    /// word is attacked).
    public func wordsSeen(_ input: AttackInput, words: WordSequence) throws -> Int? {
        guard input.pair == nil, words.count > 0 else { return nil }
        let limit = min(maxLength, pretrained.model.config.maxSequenceLength)
        let tokenizer = pretrained.tokenizer
        guard try tokenizer.encode(input.text, maxLength: Int(Int32.max)).count > limit else { return nil }
        let read = try tokenizer.encode(input.text, maxLength: limit).ids
        // Trailing whitespace dropped: a byte-level tokenizer would make a lone space token of it.
        func enough(_ j: Int) throws -> Bool {
            let prefix = words.textBefore(j)
            let trimmed = String(prefix.reversed().drop(while: \.isWhitespace).reversed())
            return try tokenizer.encode(trimmed, maxLength: limit).ids == read
        }
        var lo = 0, hi = words.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if try enough(mid) { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }
}

/// Softmax in double precision (then rounded), stable for large logits.
public func softmaxProbabilities(_ logits: [Float]) -> [Float] {
    guard let m = logits.max() else { return [] }
    let e = logits.map { exp(Double($0 - m)) }
    let s = e.reduce(0, +)
    return e.map { Float($0 / s) }
}
