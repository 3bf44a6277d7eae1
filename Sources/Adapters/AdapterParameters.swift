import Encoder
import Foundation
import Tensor

/// Offsets of one bottleneck (down (R, C) + bias, up (C, R) + bias) in an adapter's flat buffer.
public struct BottleneckOffsets: Sendable {
    public var downWeight: Int  // (R, C)
    public var downBias: Int    // (R)
    public var upWeight: Int    // (C, R)
    public var upBias: Int      // (C)
}

/// Offsets of one LoRA pair: A (r, C), B (C, r).
public struct LoRAOffsets: Sendable {
    public var a: Int
    public var b: Int
}

public struct AdapterLayerOffsets: Sendable {
    public var attention: BottleneckOffsets?  // houlsby: after the attention output
    public var ffn: BottleneckOffsets?        // pfeiffer, houlsby: after the FFN output
    public var query: LoRAOffsets?
    public var key: LoRAOffsets?
    public var value: LoRAOffsets?
}

/// The classification head, AdapterHub's default 2-layer head on the first token:
/// logits = W₂·tanh(W₁·h_CLS + b₁) + b₂.
public struct HeadOffsets: Sendable {
    public var w1: Int  // (C, C)
    public var b1: Int  // (C)
    public var w2: Int  // (K, C)
    public var b2: Int  // (K)
    public var classes: Int
}

/// Where every adapter and head parameter lives in one flat buffer, with its AdapterHub key
/// (`{name}` stands for the adapter's name). Gradients and AdamW moments share this layout.
public struct AdapterLayout: Sendable {
    public let config: AdapterConfig
    public let hidden: Int
    public let layers: [AdapterLayerOffsets]
    public let head: HeadOffsets
    public let table: [(key: String, shape: [Int], offset: Int)]
    public var count: Int { table.last.map { $0.offset + $0.shape.reduce(1, *) } ?? 0 }
    /// Parameters of the adapter body (everything but the head), the part that mixing averages.
    public var bodyCount: Int { head.w1 }

    public init(config: AdapterConfig, encoder: EncoderConfig, classes: Int) {
        self.config = config
        let C = encoder.hiddenSize, R = config.bottleneck, r = config.loraRank
        hidden = C
        var table: [(String, [Int], Int)] = []
        var offset = 0
        func add(_ key: String, _ shape: [Int]) -> Int {
            table.append((key, shape, offset))
            defer { offset += shape.reduce(1, *) }
            return offset
        }
        func bottleneck(_ prefix: String) -> BottleneckOffsets {
            BottleneckOffsets(downWeight: add(prefix + "adapter_down.0.weight", [R, C]), downBias: add(prefix + "adapter_down.0.bias", [R]),
                              upWeight: add(prefix + "adapter_up.weight", [C, R]), upBias: add(prefix + "adapter_up.bias", [C]))
        }
        func lora(_ l: Int, _ target: String) -> LoRAOffsets? {
            guard config.method == .lora, config.loraTargets.contains(target) else { return nil }
            let p = "encoder.layer.\(l).attention.self.\(target).loras.{name}."
            return LoRAOffsets(a: add(p + "lora_A", [r, C]), b: add(p + "lora_B", [C, r]))
        }
        var layers: [AdapterLayerOffsets] = []
        for l in 0..<encoder.numHiddenLayers {
            var o = AdapterLayerOffsets()
            switch config.method {
            case .houlsby:
                o.attention = bottleneck("encoder.layer.\(l).attention.output.adapters.{name}.")
                o.ffn = bottleneck("encoder.layer.\(l).output.adapters.{name}.")
            case .pfeiffer:
                o.ffn = bottleneck("encoder.layer.\(l).output.adapters.{name}.")
            case .lora:
                o.query = lora(l, "query")
                o.key = lora(l, "key")
                o.value = lora(l, "value")
            }
            layers.append(o)
        }
        self.layers = layers
        head = HeadOffsets(w1: add("heads.{name}.1.weight", [C, C]), b1: add("heads.{name}.1.bias", [C]),
                           w2: add("heads.{name}.4.weight", [classes, C]), b2: add("heads.{name}.4.bias", [classes]),
                           classes: classes)
        self.table = table.map { (key: $0.0, shape: $0.1, offset: $0.2) }
    }
}

/// One domain's adapter and head: configuration, labels, and parameters in one flat buffer.
public final class Adapter: @unchecked Sendable {  // parameters mutate only during training, on one thread
    public let layout: AdapterLayout
    public let labels: [String]
    public let parameters: ParameterBuffer
    public var config: AdapterConfig { layout.config }

    public init(layout: AdapterLayout, labels: [String], parameters: ParameterBuffer) {
        precondition(parameters.count == layout.count)
        self.layout = layout
        self.labels = labels
        self.parameters = parameters
    }

    /// A fresh adapter: bottleneck down ~ N(0, 0.02), up = 0 (so the encoder's output is unchanged,
    /// AdapterHub's "mam_adapter" choice for the up projection); LoRA A ~ U(±1/√C) (kaiming_uniform,
    /// a = √5), B = 0; head ~ N(0, 0.02), biases 0.
    public static func initialized(config: AdapterConfig, encoder: EncoderConfig, labels: [String], seed: UInt64) -> Adapter {
        let layout = AdapterLayout(config: config, encoder: encoder, classes: labels.count)
        let p = ParameterBuffer(count: layout.count)
        var rng = SplitMix64(seed: seed)
        let bound = 1 / Float(encoder.hiddenSize).squareRoot()
        for t in layout.table {
            let n = t.shape.reduce(1, *), ptr = p.pointer(t.offset)
            if t.key.hasSuffix("adapter_down.0.weight") || (t.key.hasPrefix("heads.") && t.key.hasSuffix(".weight")) {
                for i in 0..<n { ptr[i] = 0.02 * rng.nextGaussian() }
            } else if t.key.hasSuffix("lora_A") {
                for i in 0..<n { ptr[i] = bound * (2 * Float(rng.next() >> 40) / Float(1 << 24) - 1) }
            }  // everything else (up projections, LoRA B, biases) starts at zero
        }
        return Adapter(layout: layout, labels: labels, parameters: p)
    }
}
