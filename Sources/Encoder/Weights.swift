import Foundation
import Tensor

/// A flat Float32 buffer; parameters are typed views (offsets) into it.
///
/// Immutable once loaded (the base encoder is frozen), so it is shared across threads.
public final class ParameterBuffer: @unchecked Sendable {
    public let count: Int
    public let base: UnsafeMutablePointer<Float>

    public init(count: Int) {
        self.count = count
        base = .allocate(capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { base.deallocate() }

    @inline(__always) public func pointer(_ offset: Int) -> UnsafeMutablePointer<Float> { base + offset }
}

/// Offsets of one encoder layer's parameters (dimension letters: C hidden, F FFN).
public struct LayerOffsets: Sendable {
    public var qkvWeight: Int     // (3C, C): query, key, value weights stacked, as one fused GEMM
    public var qkvBias: Int       // (3C)
    public var attnOutWeight: Int // (C, C)
    public var attnOutBias: Int   // (C)
    public var attnLnWeight: Int  // (C)
    public var attnLnBias: Int    // (C)
    public var ffnInWeight: Int   // (F, C)
    public var ffnInBias: Int     // (F)
    public var ffnOutWeight: Int  // (C, F)
    public var ffnOutBias: Int    // (C)
    public var outLnWeight: Int   // (C)
    public var outLnBias: Int     // (C)
}

/// The frozen base encoder's weights: embeddings and L layers in one flat buffer.
public struct EncoderWeights: Sendable {
    public let buffer: ParameterBuffer
    public let wordEmbeddings: Int      // (V, C)
    public let positionEmbeddings: Int  // (P, C)
    public let tokenTypeEmbeddings: Int // (TV, C)
    public let embLnWeight: Int         // (C)
    public let embLnBias: Int           // (C)
    public let layers: [LayerOffsets]

    /// Every parameter with its Hugging Face name (without a `bert.`/`roberta.` prefix), shape and offset,
    /// in buffer order. This is the single place where checkpoint names are mapped.
    public static func parameterTable(_ c: EncoderConfig) -> [(name: String, shape: [Int], offset: Int)] {
        let C = c.hiddenSize, F = c.intermediateSize
        var table: [(String, [Int], Int)] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int]) {
            table.append((name, shape, offset))
            offset += shape.reduce(1, *)
        }
        add("embeddings.word_embeddings.weight", [c.vocabSize, C])
        add("embeddings.position_embeddings.weight", [c.maxPositionEmbeddings, C])
        add("embeddings.token_type_embeddings.weight", [c.typeVocabSize, C])
        add("embeddings.LayerNorm.weight", [C])
        add("embeddings.LayerNorm.bias", [C])
        for l in 0..<c.numHiddenLayers {
            let p = "encoder.layer.\(l)."
            // Query, key and value are stored back to back so that (3C, C) is one matrix.
            add(p + "attention.self.query.weight", [C, C])
            add(p + "attention.self.key.weight", [C, C])
            add(p + "attention.self.value.weight", [C, C])
            add(p + "attention.self.query.bias", [C])
            add(p + "attention.self.key.bias", [C])
            add(p + "attention.self.value.bias", [C])
            add(p + "attention.output.dense.weight", [C, C])
            add(p + "attention.output.dense.bias", [C])
            add(p + "attention.output.LayerNorm.weight", [C])
            add(p + "attention.output.LayerNorm.bias", [C])
            add(p + "intermediate.dense.weight", [F, C])
            add(p + "intermediate.dense.bias", [F])
            add(p + "output.dense.weight", [C, F])
            add(p + "output.dense.bias", [C])
            add(p + "output.LayerNorm.weight", [C])
            add(p + "output.LayerNorm.bias", [C])
        }
        return table.map { (name: $0.0, shape: $0.1, offset: $0.2) }
    }

    /// Maps a checkpoint key to the table's name: strips `bert.` / `roberta.`; returns nil for tensors
    /// that a base-encoder checkpoint may carry but the encoder does not use (pooler, LM / task heads,
    /// the `position_ids` buffer). Old TF-style `gamma`/`beta` LayerNorm names are accepted.
    public static func canonicalName(_ key: String) -> String? {
        var k = key
        for prefix in ["bert.", "roberta."] where k.hasPrefix(prefix) { k.removeFirst(prefix.count) }
        if k == "embeddings.position_ids" || k.hasPrefix("pooler.") || k.hasPrefix("cls.")
            || k.hasPrefix("lm_head.") || k.hasPrefix("classifier.") || k.hasPrefix("qa_outputs.") {
            return nil
        }
        if k.hasSuffix("LayerNorm.gamma") { k = String(k.dropLast(5)) + "weight" }
        if k.hasSuffix("LayerNorm.beta") { k = String(k.dropLast(4)) + "bias" }
        return k
    }

    /// Views over `buffer`, which must hold `parameterTable(c)`'s layout.
    public init(config c: EncoderConfig, buffer: ParameterBuffer) {
        precondition(buffer.count >= (Self.parameterTable(c).last.map { $0.offset + $0.shape.reduce(1, *) } ?? 0))
        let table = Self.parameterTable(c)
        var at: [String: Int] = [:]
        for t in table { at[t.name] = t.offset }
        self.buffer = buffer
        wordEmbeddings = at["embeddings.word_embeddings.weight"]!
        positionEmbeddings = at["embeddings.position_embeddings.weight"]!
        tokenTypeEmbeddings = at["embeddings.token_type_embeddings.weight"]!
        embLnWeight = at["embeddings.LayerNorm.weight"]!
        embLnBias = at["embeddings.LayerNorm.bias"]!
        layers = (0..<c.numHiddenLayers).map { l in
            let p = "encoder.layer.\(l)."
            return LayerOffsets(
                qkvWeight: at[p + "attention.self.query.weight"]!, qkvBias: at[p + "attention.self.query.bias"]!,
                attnOutWeight: at[p + "attention.output.dense.weight"]!, attnOutBias: at[p + "attention.output.dense.bias"]!,
                attnLnWeight: at[p + "attention.output.LayerNorm.weight"]!, attnLnBias: at[p + "attention.output.LayerNorm.bias"]!,
                ffnInWeight: at[p + "intermediate.dense.weight"]!, ffnInBias: at[p + "intermediate.dense.bias"]!,
                ffnOutWeight: at[p + "output.dense.weight"]!, ffnOutBias: at[p + "output.dense.bias"]!,
                outLnWeight: at[p + "output.LayerNorm.weight"]!, outLnBias: at[p + "output.LayerNorm.bias"]!)
        }
    }

    /// Loads weights from a safetensors checkpoint: read → map keys → verify. Missing or unexpected
    /// tensors are one error listing them; shapes must match the config.
    public static func load(from file: SafeTensorsFile, config: EncoderConfig) throws -> EncoderWeights {
        let table = parameterTable(config)
        var byName: [String: String] = [:]  // canonical → checkpoint key
        var unexpected: [String] = []
        var duplicated: [String] = []
        for key in file.names {
            guard let canon = canonicalName(key) else { continue }
            if byName[canon] != nil { duplicated.append(key) }
            byName[canon] = key
        }
        let expected = Set(table.map(\.name))
        for (canon, key) in byName where !expected.contains(canon) { unexpected.append(key) }
        let missing = table.map(\.name).filter { byName[$0] == nil }
        let path = file.url.path
        if !missing.isEmpty || !unexpected.isEmpty || !duplicated.isEmpty {
            var parts: [String] = []
            if !missing.isEmpty { parts.append("missing \(missing.count) tensor(s): \(missing.prefix(12).joined(separator: ", "))\(missing.count > 12 ? ", …" : "")") }
            if !unexpected.isEmpty { parts.append("unexpected \(unexpected.count) tensor(s): \(unexpected.sorted().prefix(12).joined(separator: ", "))\(unexpected.count > 12 ? ", …" : "")") }
            if !duplicated.isEmpty { parts.append("tensors given twice (with and without a prefix): \(duplicated.joined(separator: ", "))") }
            throw ModelError(file: path, reason: parts.joined(separator: "; "),
                             hint: "the checkpoint does not match config.json (\(config.modelType.rawValue), \(config.numHiddenLayers) layers)")
        }
        let total = table.last.map { $0.offset + $0.shape.reduce(1, *) } ?? 0
        let buffer = ParameterBuffer(count: total)
        for t in table {
            let values = try file.floats(byName[t.name]!, shape: t.shape)
            values.withUnsafeBufferPointer { buffer.pointer(t.offset).update(from: $0.baseAddress!, count: $0.count) }
        }
        return EncoderWeights(config: config, buffer: buffer)
    }

    /// A deep copy (to fold adapters into).
    public func copy(config: EncoderConfig) -> EncoderWeights {
        let b = ParameterBuffer(count: buffer.count)
        b.base.update(from: buffer.base, count: buffer.count)
        return EncoderWeights(config: config, buffer: b)
    }

    /// Random weights (normal, std 0.02; LayerNorm 1/0), for tests and benchmarks without assets.
    public static func random(config: EncoderConfig, seed: UInt64) -> EncoderWeights {
        let table = parameterTable(config)
        let total = table.last.map { $0.offset + $0.shape.reduce(1, *) } ?? 0
        let buffer = ParameterBuffer(count: total)
        var rng = SplitMix64(seed: seed)
        for t in table {
            let n = t.shape.reduce(1, *)
            let p = buffer.pointer(t.offset)
            let isLnWeight = t.name.hasSuffix("LayerNorm.weight")
            let isBiasLike = t.name.hasSuffix("LayerNorm.bias")
            for i in 0..<n { p[i] = isLnWeight ? 1 : (isBiasLike ? 0 : 0.02 * rng.nextGaussian()) }
        }
        return EncoderWeights(config: config, buffer: buffer)
    }
}
