import Encoder
import Foundation

/// The three adapter methods of the study, placed as AdapterHub's `adapters` places them.
public enum AdapterMethod: String, Sendable, Codable, CaseIterable {
    /// `seq_bn`: one bottleneck after the FFN output of every layer:
    /// y = LN(h + x + A(LN(h + x))) — the layer's own LayerNorm twice, the adapter's residual is h.
    case pfeiffer
    /// `double_seq_bn`: a bottleneck after the attention output and one after the FFN output:
    /// y = LN(h + A(h) + x).
    case houlsby
    /// Low-rank updates on query and value: W + (α/r)·B·A.
    case lora
}

/// Non-linearity inside a bottleneck (AdapterHub names: "relu" for pfeiffer, "swish" = SiLU for houlsby).
public enum NonLinearity: String, Sendable, Codable {
    case relu, swish
}

/// Sizes and options of one adapter. Defaults follow AdapterHub and the study (docs/adapters.md).
public struct AdapterConfig: Sendable, Codable, Equatable {
    public var method: AdapterMethod
    /// Bottleneck size R for pfeiffer / houlsby.
    public var bottleneck: Int
    public var nonLinearity: NonLinearity
    /// LoRA rank r, alpha (scaling α/r) and the matrices it adapts (query, value; key allowed).
    public var loraRank: Int
    public var loraAlpha: Float
    public var loraTargets: [String]

    enum CodingKeys: String, CodingKey {
        case method, bottleneck, nonLinearity = "non_linearity", loraRank = "lora_r", loraAlpha = "lora_alpha", loraTargets = "lora_targets"
    }

    public init(method: AdapterMethod, bottleneck: Int, nonLinearity: NonLinearity? = nil, loraRank: Int = 4, loraAlpha: Float = 4,
                loraTargets: [String] = ["query", "value"]) {
        self.method = method
        self.bottleneck = bottleneck
        self.nonLinearity = nonLinearity ?? (method == .houlsby ? .swish : .relu)
        self.loraRank = loraRank
        self.loraAlpha = loraAlpha
        self.loraTargets = loraTargets
    }

    /// The study's sizes: bottleneck 64 for the large encoders (hidden 1024) and 256 for the base
    /// ones (hidden 768, a reduction factor of 3); other encoders keep the base ratio, hidden / 3
    /// (128 for MiniLM's 384). LoRA: r = 4, α = 4 (scaling 1, as AdapterHub's r = α default).
    public static func defaults(_ method: AdapterMethod, for encoder: EncoderConfig) -> AdapterConfig {
        let C = encoder.hiddenSize
        return AdapterConfig(method: method, bottleneck: C >= 1024 ? 64 : max(1, C / 3))
    }

    public var loraScaling: Float { loraAlpha / Float(loraRank) }

    /// Checks the options, naming the field.
    public func validate(file: String = "adapter_config.json") throws {
        func bad(_ why: String) -> AdapterError { AdapterError(file: file, tensor: nil, reason: why, hint: "") }
        switch method {
        case .pfeiffer, .houlsby:
            guard bottleneck >= 1 else { throw bad("\"bottleneck\" must be at least 1 (is \(bottleneck))") }
        case .lora:
            guard loraRank >= 1 else { throw bad("\"lora_r\" must be at least 1 (is \(loraRank))") }
            guard loraAlpha.isFinite, loraAlpha > 0 else { throw bad("\"lora_alpha\" must be positive") }
            let allowed: Set<String> = ["query", "key", "value"]
            let unknown = loraTargets.filter { !allowed.contains($0) }
            guard unknown.isEmpty, !loraTargets.isEmpty else {
                throw bad("\"lora_targets\" \(loraTargets) — supported: query, key, value")
            }
        }
    }
}

/// An error about an adapter file or tensor: names the file and tensor and what to do.
public struct AdapterError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var tensor: String?
    public var reason: String
    public var hint: String

    public init(file: String, tensor: String? = nil, reason: String, hint: String = "") {
        self.file = file; self.tensor = tensor; self.reason = reason; self.hint = hint
    }

    public var description: String {
        let what = tensor.map { "\(file): tensor \"\($0)\"" } ?? file
        return "\(what): \(reason)" + (hint.isEmpty ? "" : " — \(hint)")
    }
}
