import Crypto
import Encoder
import Foundation

// Adapter folders in AdapterHub's (`adapters`) layout, so that `adapters` users recognise them:
//
//   adapter_config.json    {config: BnConfig/LoRAConfig fields, hidden_size, model_class, model_name,
//                           model_type, name, version, + an "adaptermix" block of our own}
//   adapter.safetensors    {bert.|roberta.}encoder.layer.{i}.{attention.output|output}.adapters.{name}.*
//                          or …attention.self.{query|key|value}.loras.{name}.lora_{A|B}
//   head_config.json       AdapterHub's classification head (2 layers, tanh, label2id)
//   model_head.safetensors heads.{name}.{1,4}.{weight,bias}
//
// Loading also reads folders that AdapterHub's `save_adapter(..., use_safetensors=True)` wrote, and maps
// their configuration back to ours; options that this project does not implement are rejected by name.

// MARK: - Information about a saved adapter

/// Where an adapter folder came from.
public enum AdapterSource: String, Sendable, Codable {
    /// Saved by AdapterMix (has the "adaptermix" block).
    case adaptermix
    /// Saved by AdapterHub's `adapters` library.
    case adapterhub
    /// Imported from a PEFT LoRA folder.
    case peft
}

/// What an adapter folder says about the adapter besides its parameters.
public struct AdapterInfo: Sendable, Equatable {
    public var name: String
    public var source: AdapterSource
    /// The file's "version" ("adaptermix.0.1", "adapters.1.2.0", PEFT's peft_version).
    public var version: String?
    /// The base model's name or path as recorded at save time.
    public var modelName: String?
    public var domain: String?
    /// Class names, ordered: index = class id.
    public var labels: [String]
    /// SHA-256 (hex) of the base model's model.safetensors the adapter was trained on, if recorded.
    public var baseModelSHA256: String?
    public var metrics: [String: Double]
    public var seed: UInt64?
    /// The training options as JSON text (an object), if recorded.
    public var trainingJSON: String?

    public init(name: String, source: AdapterSource, version: String? = nil, modelName: String? = nil, domain: String? = nil,
                labels: [String], baseModelSHA256: String? = nil, metrics: [String: Double] = [:], seed: UInt64? = nil,
                trainingJSON: String? = nil) {
        self.name = name; self.source = source; self.version = version; self.modelName = modelName; self.domain = domain
        self.labels = labels; self.baseModelSHA256 = baseModelSHA256; self.metrics = metrics; self.seed = seed
        self.trainingJSON = trainingJSON
    }

    /// The training options as a dictionary.
    public var training: [String: Any]? {
        guard let trainingJSON, let data = trainingJSON.data(using: .utf8) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }
}

// MARK: - SHA-256

/// SHA-256 of a file as lowercase hex, read in 1 MiB pieces (for the base model's model.safetensors).
public func sha256(ofFile url: URL) throws -> String {
    let handle: FileHandle
    do { handle = try FileHandle(forReadingFrom: url) } catch {
        throw AdapterError(file: url.path, reason: "cannot open: \(error.localizedDescription)", hint: "check the path and permissions")
    }
    defer { try? handle.close() }
    var hasher = SHA256()
    while true {
        let chunk: Data?
        do { chunk = try handle.read(upToCount: 1 << 20) } catch {
            throw AdapterError(file: url.path, reason: "cannot read: \(error.localizedDescription)", hint: "")
        }
        guard let chunk, !chunk.isEmpty else { break }
        hasher.update(data: chunk)
    }
    return hasher.finalize().map { String(format: "%02x", $0) }.joined()
}

// MARK: - File names

public enum AdapterFileNames {
    public static let config = "adapter_config.json"
    public static let weights = "adapter.safetensors"
    public static let weightsPickle = "pytorch_adapter.bin"
    public static let headConfig = "head_config.json"
    public static let headWeights = "model_head.safetensors"
    public static let headWeightsPickle = "pytorch_model_head.bin"
}

// MARK: - Saving and loading

extension Adapter {
    /// The "version" written into adapter_config.json and head_config.json.
    public static let fileVersion = "adaptermix.0.1"

    /// Saves the adapter and its head as AdapterHub's `save_adapter(dir, name, with_head=True,
    /// use_safetensors=True)` would for a `BertAdapterModel` / `RobertaAdapterModel`, plus an "adaptermix"
    /// block in adapter_config.json (method, sizes, domain, ordered labels, base model SHA-256, metrics,
    /// seed, training options). `encoder` is the base model's config (model type, hidden size, layers);
    /// `modelName` is recorded as AdapterHub's "model_name".
    public func save(to dir: URL, name: String, encoder: EncoderConfig, modelName: String = "", domain: String,
                     baseModelSHA256: String, metrics: [String: Double] = [:], seed: UInt64, training: [String: Any]? = nil) throws {
        let configPath = dir.appendingPathComponent(AdapterFileNames.config).path
        guard !name.isEmpty, !name.contains("."), !name.contains("/") else {
            throw AdapterError(file: configPath, reason: "adapter name \"\(name)\" must be non-empty and contain no \".\" or \"/\"",
                               hint: "it becomes part of every tensor key (…adapters.NAME.…)")
        }
        guard layout.hidden == encoder.hiddenSize, layout.layers.count == encoder.numHiddenLayers else {
            throw AdapterError(file: configPath, reason: "the adapter is for hidden size \(layout.hidden) and \(layout.layers.count) layers; the encoder config has \(encoder.hiddenSize) and \(encoder.numHiddenLayers)",
                               hint: "pass the config of the model the adapter was trained on")
        }
        guard labels.count == layout.head.classes else {
            throw AdapterError(file: configPath, reason: "\(labels.count) labels for a head with \(layout.head.classes) classes")
        }
        try config.validate(file: configPath)
        guard baseModelSHA256.count == 64, baseModelSHA256.allSatisfy(\.isHexDigit) else {
            throw AdapterError(file: configPath, reason: "base_model_sha256 \"\(baseModelSHA256)\" is not a SHA-256 (64 hex digits)",
                               hint: "pass sha256(ofFile: <model folder>/model.safetensors)")
        }
        var trainingValue: JSONValue = .null
        if let training {
            do { trainingValue = try JSONValue(any: training) } catch {
                throw AdapterError(file: configPath, reason: "training options cannot be written as JSON: \(error)")
            }
        }
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw AdapterError(file: dir.path, reason: "cannot create the folder: \(error.localizedDescription)")
        }
        let modelType = encoder.modelType.rawValue
        let modelClass = encoder.modelType == .bert ? "BertAdapterModel" : "RobertaAdapterModel"
        let seedValue: JSONValue = seed <= UInt64(Int64.max) ? .int(Int64(seed)) : .string(String(seed))
        var block: [String: JSONValue] = [
            "method": .string(config.method.rawValue),
            "domain": .string(domain),
            "labels": .array(labels.map { .string($0) }),
            "base_model_sha256": .string(baseModelSHA256.lowercased()),
            "metrics": .object(metrics.mapValues { .double($0) }),
            "seed": seedValue,
            "training": trainingValue,
        ]
        // All of AdapterConfig, so that a round trip gives an equal config (the unused sizes included);
        // the fields that matter must agree with AdapterHub's "config" on loading.
        block["bottleneck"] = .int(Int64(config.bottleneck))
        block["non_linearity"] = .string(config.nonLinearity.rawValue)
        block["lora_r"] = .int(Int64(config.loraRank))
        block["lora_alpha"] = .number(Double(config.loraAlpha))
        block["lora_targets"] = .array(config.loraTargets.map { .string($0) })
        let top: [String: JSONValue] = [
            "config": Self.adapterHubConfig(config, hidden: layout.hidden),
            "hidden_size": .int(Int64(layout.hidden)),
            "model_class": .string(modelClass),
            "model_name": .string(modelName),
            "model_type": .string(modelType),
            "name": .string(name),
            "version": .string(Self.fileVersion),
            "adaptermix": .object(block),
        ]
        let headConfig: [String: JSONValue] = [
            "config": .object([
                "activation_function": .string("tanh"),
                "bias": .bool(true),
                "dropout_prob": .null,
                "head_type": .string("classification"),
                "label2id": .object(Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($0.element, JSONValue.int(Int64($0.offset))) })),
                "layers": .int(2),
                "num_labels": .int(Int64(labels.count)),
                "use_pooler": .bool(false),
            ]),
            "hidden_size": .int(Int64(layout.hidden)),
            "model_class": .string(modelClass),
            "model_name": .string(modelName),
            "model_type": .string(modelType),
            "name": .string(name),
            "version": .string(Self.fileVersion),
        ]
        guard Set(labels).count == labels.count else {
            throw AdapterError(file: dir.appendingPathComponent(AdapterFileNames.headConfig).path, reason: "labels \(labels) repeat a name",
                               hint: "label2id needs distinct names")
        }
        var body: [(name: String, shape: [Int], values: [Float])] = []
        var head: [(name: String, shape: [Int], values: [Float])] = []
        for t in layout.table {
            let key = t.key.replacingOccurrences(of: "{name}", with: name)
            let values = Array(UnsafeBufferPointer(start: parameters.pointer(t.offset), count: t.shape.reduce(1, *)))
            if let i = values.firstIndex(where: { !$0.isFinite }) {
                let file = t.offset >= layout.bodyCount ? AdapterFileNames.headWeights : AdapterFileNames.weights
                throw AdapterError(file: dir.appendingPathComponent(file).path, tensor: t.offset >= layout.bodyCount ? key : modelType + "." + key,
                                   reason: "holds a non-finite value (\(values[i]) at flat index \(i)); not saved", hint: "the training diverged")
            }
            if t.offset >= layout.bodyCount {
                head.append((key, t.shape, values))
            } else {
                body.append((modelType + "." + key, t.shape, values))
            }
        }
        try writeText(JSONValue.object(top).rendered() + "\n", to: dir.appendingPathComponent(AdapterFileNames.config))
        try writeText(JSONValue.object(headConfig).rendered() + "\n", to: dir.appendingPathComponent(AdapterFileNames.headConfig))
        do {
            try SafeTensorsFile.write(body, metadata: ["format": "pt"], to: dir.appendingPathComponent(AdapterFileNames.weights))
            try SafeTensorsFile.write(head, metadata: ["format": "pt"], to: dir.appendingPathComponent(AdapterFileNames.headWeights))
        } catch let e as SafeTensorsError {
            throw AdapterError(e)
        }
    }

    /// Loads an adapter folder written by `save` or by AdapterHub's `save_adapter(..., use_safetensors=True)`.
    /// `encoder` is the config of the model it will run on; `expectedBaseSHA256`, if given, must match the
    /// SHA-256 the folder records for its base model (folders that record none are accepted).
    public static func load(from dir: URL, encoder: EncoderConfig, expectedBaseSHA256: String?) throws -> (adapter: Adapter, info: AdapterInfo) {
        let configURL = dir.appendingPathComponent(AdapterFileNames.config)
        let configPath = configURL.path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else {
            throw AdapterError(file: dir.path, reason: "no such adapter folder", hint: "pass the folder that holds adapter_config.json")
        }
        let top = try readJSON(configURL)
        func bad(_ reason: String, hint: String = "") -> AdapterError { AdapterError(file: configPath, reason: reason, hint: hint) }
        guard case .object = top else { throw bad("not a JSON object") }
        if top["peft_type"] != nil {
            throw bad("this is a PEFT adapter (it has \"peft_type\")", hint: "import it with importPEFT (adaptermix import-peft)")
        }
        guard let configValue = top["config"], !configValue.isNull else {
            throw bad("missing field \"config\"", hint: "is this an AdapterHub adapter folder (save_adapter)?")
        }
        // Model type and hidden size.
        if let mt = top["model_type"]?.string, mt != encoder.modelType.rawValue {
            throw bad("\"model_type\" is \"\(mt)\" but the encoder is \(encoder.modelType.rawValue)",
                      hint: "load the adapter with the model it was trained on (\(top["model_name"]?.string ?? "see model_name"))")
        }
        if let h = top["hidden_size"]?.int, h != encoder.hiddenSize {
            throw bad("\"hidden_size\" is \(h) but the encoder's hidden size is \(encoder.hiddenSize)",
                      hint: "load the adapter with the model it was trained on (\(top["model_name"]?.string ?? "see model_name"))")
        }
        let mix = top["adaptermix"]
        let version = top["version"]?.string
        // Base model SHA-256.
        let recordedSHA = mix?["base_model_sha256"]?.string
        if let expectedBaseSHA256, let recordedSHA, recordedSHA.lowercased() != expectedBaseSHA256.lowercased() {
            let trainedOn = top["model_name"]?.string.flatMap { $0.isEmpty ? nil : $0 } ?? "another model"
            throw AdapterError(file: configPath, tensor: nil,
                               reason: "\"adaptermix.base_model_sha256\": the adapter was trained on \(trainedOn) (model.safetensors sha256 \(recordedSHA)), but this model's model.safetensors has sha256 \(expectedBaseSHA256.lowercased())",
                               hint: "load it with the base model it was trained on (--model DIR)")
        }
        // Weights.
        let weightsURL = dir.appendingPathComponent(AdapterFileNames.weights)
        let weights = try openSafeTensors(weightsURL, pickle: dir.appendingPathComponent(AdapterFileNames.weightsPickle),
                                          resave: "model.save_adapter(dir, name, use_safetensors=True)", folder: "the adapter folder")
        let hasInvWeights = weights.names.contains { $0.contains("invertible_adapters.") || $0.contains("invertible_lang_adapters.") }
        var config = try parseAdapterHubConfig(configValue, hidden: encoder.hiddenSize, version: version, hasInvertibleWeights: hasInvWeights,
                                               encoder: encoder, file: configPath)
        if let mix { config = try checkAdapterMixBlock(mix, against: config, file: configPath) }
        let name = try adapterName(top["name"]?.string, weights: weights, file: configPath)

        // Head and labels.
        let head = try readHead(dir: dir, adapterName: name, encoder: encoder, mixLabels: mix?["labels"]?.array?.compactMap(\.string))
        let layout = AdapterLayout(config: config, encoder: encoder, classes: head.labels.count)
        let parameters = ParameterBuffer(count: layout.count)
        try readBody(weights, layout: layout, name: name, encoder: encoder, into: parameters)
        for (key, values) in head.tensors {
            guard let t = layout.table.first(where: { $0.key == key }) else { continue }
            values.withUnsafeBufferPointer { parameters.pointer(t.offset).update(from: $0.baseAddress!, count: $0.count) }
        }
        var metrics: [String: Double] = [:]
        if case .object(let m)? = mix?["metrics"] { for (k, v) in m { if let d = v.number { metrics[k] = d } } }
        var seed: UInt64?
        switch mix?["seed"] {
        case .int(let i)?: seed = UInt64(exactly: i)
        case .string(let s)?: seed = UInt64(s)
        case .double(let d)?: seed = UInt64(exactly: d)
        default: seed = nil
        }
        var trainingJSON: String?
        if let t = mix?["training"], case .object = t { trainingJSON = t.rendered() }
        let info = AdapterInfo(name: name, source: mix == nil ? .adapterhub : .adaptermix, version: version,
                               modelName: top["model_name"]?.string, domain: mix?["domain"]?.string, labels: head.labels,
                               baseModelSHA256: recordedSHA, metrics: metrics, seed: seed, trainingJSON: trainingJSON)
        return (Adapter(layout: layout, labels: head.labels, parameters: parameters), info)
    }

    // MARK: AdapterHub configuration

    /// AdapterHub's `config` object for our configuration (all dataclass fields, as `to_dict()` writes them).
    static func adapterHubConfig(_ c: AdapterConfig, hidden: Int) -> JSONValue {
        switch c.method {
        case .lora:
            let short = ["query": "q", "key": "k", "value": "v"]
            let matrices = ["query", "key", "value"].filter { c.loraTargets.contains($0) }.map { JSONValue.string(short[$0]!) }
            return .object([
                "alpha": .number(Double(c.loraAlpha)), "architecture": .string("lora"), "attn_matrices": .array(matrices),
                "composition_mode": .string("add"), "dropout": .double(0), "dtype": .null, "init_weights": .string("lora"),
                "init_weights_seed": .null, "intermediate_lora": .bool(false), "leave_out": .array([]), "output_lora": .bool(false),
                "r": .int(Int64(c.loraRank)), "selfattn_lora": .bool(true), "use_dora": .bool(false), "use_gating": .bool(false),
                "vera_b": .null, "vera_d": .null,
            ])
        case .pfeiffer, .houlsby:
            let houlsby = c.method == .houlsby
            return .object([
                "adapter_residual_before_ln": .bool(false), "cross_adapter": .bool(false), "dropout": .double(0),
                "factorized_phm_W": .bool(true), "factorized_phm_rule": .bool(false), "hypercomplex_nonlinearity": .string("glorot-uniform"),
                "init_weights": .string("bert"), "init_weights_seed": .null, "inv_adapter": .null, "inv_adapter_reduction_factor": .null,
                "is_parallel": .bool(false), "learn_phm": .bool(true), "leave_out": .array([]), "ln_after": .bool(false),
                "ln_before": .bool(false), "mh_adapter": .bool(houlsby), "non_linearity": .string(c.nonLinearity.rawValue),
                "original_ln_after": .bool(true), "original_ln_before": .bool(!houlsby), "output_adapter": .bool(true),
                "phm_bias": .bool(true), "phm_c_init": .string("normal"), "phm_dim": .int(4), "phm_init_range": .double(0.0001),
                "phm_layer": .bool(false), "phm_rank": .int(1), "reduction_factor": reductionFactor(hidden: hidden, bottleneck: c.bottleneck),
                "residual_before_ln": .bool(true), "scaling": .double(1), "shared_W_phm": .bool(false), "shared_phm_rule": .bool(true),
                "stochastic_depth": .double(0), "use_gating": .bool(false),
            ])
        }
    }

    /// AdapterHub sizes a bottleneck as `int(hidden // reduction_factor)` (Python floor division, the
    /// factor may be a float): an integer factor when the bottleneck divides the hidden size, otherwise
    /// the float closest to hidden / bottleneck for which Python's floor division gives the bottleneck back.
    static func reductionFactor(hidden: Int, bottleneck: Int) -> JSONValue {
        if hidden % bottleneck == 0 { return .int(Int64(hidden / bottleneck)) }
        var rf = Double(hidden) / Double(bottleneck)
        while pythonFloorDiv(Double(hidden), rf) < Double(bottleneck) { rf = rf.nextDown }
        while pythonFloorDiv(Double(hidden), rf) > Double(bottleneck) { rf = rf.nextUp }
        return .double(rf)
    }

    /// Python's `float.__floordiv__` (CPython `float_floor_div`) for positive operands.
    static func pythonFloorDiv(_ a: Double, _ b: Double) -> Double {
        let mod = fmod(a, b)
        let div = (a - mod) / b
        guard div != 0 else { return 0 }
        var floorDiv = div.rounded(.down)
        if div - floorDiv > 0.5 { floorDiv += 1 }
        return floorDiv
    }

    /// Maps AdapterHub's `config` (a dict, or a name such as "seq_bn") to ours; rejects, by field, what
    /// this project does not implement.
    static func parseAdapterHubConfig(_ value: JSONValue, hidden: Int, version: String?, hasInvertibleWeights: Bool,
                                      encoder: EncoderConfig, file: String) throws -> AdapterConfig {
        func bad(_ field: String, _ why: String, hint: String = "") -> AdapterError {
            AdapterError(file: file, reason: "\"config.\(field)\" \(why)", hint: hint)
        }
        let notImplemented = "AdapterMix implements seq_bn (pfeiffer), double_seq_bn (houlsby) and LoRA on query/key/value with default options"
        var dict: [String: JSONValue]
        switch value {
        case .string(let s):
            switch s.lowercased() {
            case "pfeiffer", "seq_bn":
                dict = ["mh_adapter": .bool(false), "output_adapter": .bool(true), "reduction_factor": .int(16),
                        "non_linearity": .string("relu"), "original_ln_before": .bool(true)]
            case "houlsby", "double_seq_bn":
                dict = ["mh_adapter": .bool(true), "output_adapter": .bool(true), "reduction_factor": .int(16),
                        "non_linearity": .string("swish"), "original_ln_before": .bool(false)]
            case "lora":
                dict = ["architecture": .string("lora")]
            default:
                throw AdapterError(file: file, reason: "\"config\" is \"\(s)\", which AdapterMix does not implement",
                                   hint: "supported names: pfeiffer, seq_bn, houlsby, double_seq_bn, lora (without [options]; write options as a config object)")
            }
        case .object(let o):
            dict = o
        default:
            throw AdapterError(file: file, reason: "\"config\" must be an object or a config name")
        }
        func flag(_ k: String, _ def: Bool) throws -> Bool {
            guard let v = dict[k], !v.isNull else { return def }
            guard let b = v.bool else { throw bad(k, "must be true or false (is \(v.rendered()))") }
            return b
        }
        func isSet(_ k: String) -> Bool { dict[k].map { $0.isSet } ?? false }

        let architecture = dict["architecture"]?.string
        if let architecture, architecture != "lora" {
            throw bad("architecture", "is \"\(architecture)\", which AdapterMix does not implement", hint: notImplemented)
        }
        if architecture == "lora" {
            // LoRAConfig.
            for k in ["intermediate_lora", "output_lora", "use_gating", "use_dora"] where try flag(k, false) {
                throw bad(k, "is true, which AdapterMix does not implement", hint: notImplemented)
            }
            guard try flag("selfattn_lora", true) else { throw bad("selfattn_lora", "is false: no LoRA on the attention", hint: notImplemented) }
            if isSet("leave_out") { throw bad("leave_out", "is \(dict["leave_out"]!.rendered()): leaving layers out is not implemented", hint: notImplemented) }
            if let m = dict["composition_mode"]?.string, m != "add" {
                throw bad("composition_mode", "is \"\(m)\" (e.g. (IA)³); only \"add\" (LoRA) is implemented", hint: notImplemented)
            }
            for k in ["vera_d", "vera_b"] where isSet(k) { throw bad(k, "is set (VeRA), which AdapterMix does not implement", hint: notImplemented) }
            let r: Int
            if let v = dict["r"] { guard let i = v.int, i >= 1 else { throw bad("r", "must be a positive integer (is \(v.rendered()))") }; r = i } else { r = 8 }
            var alpha: Double
            if let v = dict["alpha"] { guard let a = v.number, a > 0, a.isFinite else { throw bad("alpha", "must be a positive number (is \(v.rendered()))") }; alpha = a } else { alpha = 8 }
            let long = ["q": "query", "k": "key", "v": "value"]
            var targets: [String] = ["query", "value"]
            if let v = dict["attn_matrices"] {
                guard let list = v.array?.compactMap(\.string), list.count == v.array?.count, !list.isEmpty else {
                    throw bad("attn_matrices", "must be a non-empty list of \"q\", \"k\", \"v\" (is \(v.rendered()))")
                }
                let unknown = list.filter { long[$0] == nil }
                guard unknown.isEmpty else { throw bad("attn_matrices", "has \(unknown); supported: q, k, v") }
                targets = ["query", "key", "value"].filter { t in list.contains { long[$0] == t } }
            }
            // adapters < 1.1.0 scaled LoRA by 1 whatever alpha said; their loader sets alpha := r (PR 770).
            if let version, version.hasPrefix("adapters."), versionIsBefore(String(version.dropFirst("adapters.".count)), [1, 1, 0]),
               alpha != Double(r) {
                alpha = Double(r)
            }
            var c = AdapterConfig.defaults(.lora, for: encoder)
            c.loraRank = r
            c.loraAlpha = Float(alpha)
            c.loraTargets = targets
            try c.validate(file: file)
            return c
        }

        // BnConfig.
        for k in ["mh_adapter", "output_adapter", "reduction_factor", "non_linearity"] where dict[k] == nil || dict[k]!.isNull {
            throw bad(k, "is missing (BnConfig requires it)")
        }
        let checks: [(String, String)] = [
            ("ln_before", "a LayerNorm before the adapter"), ("ln_after", "a LayerNorm after the adapter"),
            ("use_gating", "gating"), ("phm_layer", "PHM (Compacter) layers"), ("is_parallel", "parallel adapters"),
            ("cross_adapter", "cross adapters"), ("adapter_residual_before_ln", "the adapter residual before the LayerNorm"),
        ]
        for (k, what) in checks where try flag(k, false) {
            throw bad(k, "is true (\(what)), which AdapterMix does not implement", hint: notImplemented)
        }
        if isSet("leave_out") { throw bad("leave_out", "is \(dict["leave_out"]!.rendered()): leaving layers out is not implemented", hint: notImplemented) }
        if let s = dict["scaling"], !s.isNull {
            guard let x = s.number, x == 1 else {
                throw bad("scaling", "is \(s.rendered()); only 1.0 is implemented", hint: notImplemented)
            }
        }
        if isSet("inv_adapter") && hasInvertibleWeights {
            throw bad("inv_adapter", "is \(dict["inv_adapter"]!.rendered()) and the weights hold invertible adapters, which AdapterMix does not implement",
                      hint: notImplemented)
        }  // without the weights AdapterHub drops the invertible adapter too (legacy task adapters)
        guard try flag("original_ln_after", true) else {
            throw bad("original_ln_after", "is false, which AdapterMix does not implement", hint: notImplemented)
        }
        let mh = try flag("mh_adapter", false), out = try flag("output_adapter", false), lnBefore = try flag("original_ln_before", false)
        var residualBeforeLN = true
        if let v = dict["residual_before_ln"], !v.isNull {
            guard let b = v.bool else { throw bad("residual_before_ln", "is \(v.rendered()); only true is implemented", hint: notImplemented) }
            residualBeforeLN = b
        }
        let method: AdapterMethod
        switch (mh, out, lnBefore) {
        case (false, true, true): method = .pfeiffer
        case (true, true, false): method = .houlsby
        default:
            throw AdapterError(file: file, reason: "\"config\" has mh_adapter \(mh), output_adapter \(out), original_ln_before \(lnBefore), a placement AdapterMix does not implement",
                               hint: "supported: seq_bn/pfeiffer (false, true, true) and double_seq_bn/houlsby (true, true, false)")
        }
        // Without original_ln_before the residual is h either way; with it, false would make it LN(h + x).
        if !residualBeforeLN && method == .pfeiffer {
            throw bad("residual_before_ln", "is false with original_ln_before true, which AdapterMix does not implement", hint: notImplemented)
        }
        let act = dict["non_linearity"]!.string?.lowercased() ?? ""
        let nonLinearity: NonLinearity
        switch act {
        case "relu": nonLinearity = .relu
        case "swish", "silu": nonLinearity = .swish
        default: throw bad("non_linearity", "is \(dict["non_linearity"]!.rendered()); supported: relu, swish (silu)")
        }
        // Bottleneck: int(hidden // reduction_factor), at least 1; a mapping is per layer ("default" otherwise).
        let bottleneck: Int
        func size(_ v: JSONValue, _ field: String) throws -> Int {
            guard let rf = v.number, rf > 0, rf.isFinite else { throw bad(field, "must be a positive number (is \(v.rendered()))") }
            return max(1, Int(pythonFloorDiv(Double(hidden), rf)))
        }
        switch dict["reduction_factor"]! {
        case .object(let m):
            var sizes = Set<Int>()
            for l in 0..<encoder.numHiddenLayers {
                guard let v = m[String(l)] ?? m["default"] else {
                    throw bad("reduction_factor", "has no entry for layer \(l) and no \"default\"")
                }
                sizes.insert(try size(v, "reduction_factor"))
            }
            guard sizes.count == 1 else {
                throw bad("reduction_factor", "gives different bottleneck sizes per layer \(sizes.sorted()), which AdapterMix does not implement")
            }
            bottleneck = sizes.first!
        case let v:
            bottleneck = try size(v, "reduction_factor")
        }
        let c = AdapterConfig(method: method, bottleneck: bottleneck, nonLinearity: nonLinearity)
        try c.validate(file: file)
        return c
    }

    /// The "adaptermix" block must agree with AdapterHub's `config`, which is what loading uses; the sizes
    /// the method does not use (a bottleneck adapter's LoRA rank, …) come from the block.
    static func checkAdapterMixBlock(_ mix: JSONValue, against c: AdapterConfig, file: String) throws -> AdapterConfig {
        func disagree(_ field: String, _ mine: String, _ theirs: String) -> AdapterError {
            AdapterError(file: file, reason: "\"adaptermix.\(field)\" is \(mine) but \"config\" gives \(theirs)",
                         hint: "the two parts of the file disagree; was it edited by hand?")
        }
        if let m = mix["method"]?.string, m != c.method.rawValue { throw disagree("method", "\"\(m)\"", "\"\(c.method.rawValue)\"") }
        switch c.method {
        case .pfeiffer, .houlsby:
            if let b = mix["bottleneck"]?.int, b != c.bottleneck { throw disagree("bottleneck", "\(b)", "\(c.bottleneck) (hidden_size // reduction_factor)") }
        case .lora:
            if let r = mix["lora_r"]?.int, r != c.loraRank { throw disagree("lora_r", "\(r)", "\(c.loraRank)") }
            if let a = mix["lora_alpha"]?.number, Float(a) != c.loraAlpha { throw disagree("lora_alpha", "\(a)", "\(c.loraAlpha)") }
            if let t = mix["lora_targets"]?.array?.compactMap(\.string), Set(t) != Set(c.loraTargets) {
                throw disagree("lora_targets", "\(t)", "\(c.loraTargets) (attn_matrices)")
            }
        }
        var out = c
        switch c.method {
        case .pfeiffer, .houlsby:
            if let r = mix["lora_r"]?.int, r >= 1 { out.loraRank = r }
            if let a = mix["lora_alpha"]?.number, a > 0, a.isFinite { out.loraAlpha = Float(a) }
            if let t = mix["lora_targets"]?.array?.compactMap(\.string), !t.isEmpty, t.allSatisfy({ ["query", "key", "value"].contains($0) }) {
                out.loraTargets = t
            }
        case .lora:
            if let b = mix["bottleneck"]?.int, b >= 1 { out.bottleneck = b }
            if let n = mix["non_linearity"]?.string, let f = NonLinearity(rawValue: n) { out.nonLinearity = f }
        }
        return out
    }

    /// The adapter's name: the config's "name", checked against the names inside the tensor keys.
    static func adapterName(_ configured: String?, weights: SafeTensorsFile, file: String) throws -> String {
        var found = Set<String>()
        for key in weights.names {
            let k = renameLegacy(key)
            for marker in [".adapters.", ".loras."] {
                guard let r = k.range(of: marker) else { continue }
                let rest = k[r.upperBound...]
                if let dot = rest.firstIndex(of: ".") { found.insert(String(rest[..<dot])) }
            }
        }
        if let configured, !configured.isEmpty {
            // Every adapter key must carry this name (it may contain dots, so look for it whole).
            let named = weights.names.map(renameLegacy).filter { $0.contains(".adapters.") || $0.contains(".loras.") }
            if named.allSatisfy({ $0.contains(".adapters.\(configured).") || $0.contains(".loras.\(configured).") }) { return configured }
            throw AdapterError(file: weights.url.path, reason: "tensors are named for adapter(s) \(found.sorted()) but \(AdapterFileNames.config) says \"\(configured)\"",
                               hint: "one folder holds one adapter; fix \"name\" in \(AdapterFileNames.config)")
        }
        guard found.count == 1 else {
            throw AdapterError(file: file, reason: "missing field \"name\"", hint: found.isEmpty ? "" : "the tensors name \(found.sorted())")
        }
        return found.first!
    }

    static func renameLegacy(_ key: String) -> String {
        var k = key
        for old in ["attention_text_task_adapters", "attention_text_lang_adapters", "layer_text_task_adapters", "layer_text_lang_adapters"] {
            k = k.replacingOccurrences(of: old, with: "adapters")
        }
        return k.replacingOccurrences(of: "invertible_lang_adapters", with: "invertible_adapters")
    }

    // MARK: Tensors

    /// Reads the adapter body into `parameters`: keys with or without the `bert.`/`roberta.` prefix,
    /// every expected tensor present, none unexpected, shapes fitting the encoder, all values finite.
    static func readBody(_ file: SafeTensorsFile, layout: AdapterLayout, name: String, encoder: EncoderConfig,
                         into parameters: ParameterBuffer) throws {
        let path = file.url.path
        let own = encoder.modelType.rawValue + "."
        let other = ModelType.allCases.filter { $0 != encoder.modelType }.map { $0.rawValue + "." }
        var byKey: [String: String] = [:]  // layout key → file key
        var duplicated: [String] = [], unexpected: [String] = []
        let shown = file.names.contains { $0.hasPrefix(own) } ? own : ""  // how the file spells keys, for messages
        for key in file.names {
            if let p = other.first(where: { key.hasPrefix($0) }) {
                throw AdapterError(file: path, tensor: key, reason: "has the prefix \"\(p)\" but the encoder is \(encoder.modelType.rawValue)",
                                   hint: "load the adapter with the model type it was trained on")
            }
            var k = key.hasPrefix(own) ? String(key.dropFirst(own.count)) : key
            k = renameLegacy(k)
            for marker in [".adapters.", ".loras."] {
                k = k.replacingOccurrences(of: "\(marker)\(name).", with: "\(marker){name}.")
            }
            if byKey[k] != nil { duplicated.append(key) }
            byKey[k] = key
        }
        let body = layout.table.filter { $0.offset < layout.bodyCount }
        let expected = Set(body.map(\.key))
        for (k, key) in byKey where !expected.contains(k) { unexpected.append(key) }
        // Layers beyond the encoder's are the clearest message for a layer-count mismatch.
        for key in unexpected.sorted() {
            if let l = layerIndex(key), l >= encoder.numHiddenLayers {
                throw AdapterError(file: path, tensor: key, reason: "is for layer \(l) but the encoder has \(encoder.numHiddenLayers) layers",
                                   hint: "load the adapter with the model it was trained on")
            }
        }
        let missing = body.map(\.key).filter { byKey[$0] == nil }
        if !missing.isEmpty || !unexpected.isEmpty || !duplicated.isEmpty {
            var parts: [String] = []
            if !missing.isEmpty {
                parts.append("missing \(missing.count) tensor(s): \(list(missing.map { shown + $0.replacingOccurrences(of: "{name}", with: name) }))")
            }
            if !unexpected.isEmpty { parts.append("unexpected \(unexpected.count) tensor(s): \(list(unexpected.sorted()))") }
            if !duplicated.isEmpty { parts.append("tensors given twice (with and without a prefix): \(list(duplicated))") }
            let layersInFile = Set(byKey.values.compactMap(layerIndex))
            var hint = "the weights do not match \(AdapterFileNames.config) (\(layout.config.method.rawValue)) on a \(encoder.numHiddenLayers)-layer \(encoder.modelType.rawValue)"
            if !layersInFile.isEmpty && layersInFile.count != encoder.numHiddenLayers {
                hint = "the file has tensors for \(layersInFile.count) layer(s), the encoder has \(encoder.numHiddenLayers)"
            }
            throw AdapterError(file: path, tensor: (missing.first.map { shown + $0.replacingOccurrences(of: "{name}", with: name) } ?? unexpected.sorted().first),
                               reason: parts.joined(separator: "; "), hint: hint)
        }
        for t in body {
            let key = byKey[t.key]!
            let values = try readTensor(file, key, shape: t.shape, hint: shapeHint(t.key, layout: layout))
            values.withUnsafeBufferPointer { parameters.pointer(t.offset).update(from: $0.baseAddress!, count: $0.count) }
        }
    }

    static func shapeHint(_ key: String, layout: AdapterLayout) -> String {
        let c = layout.config
        switch c.method {
        case .pfeiffer, .houlsby:
            return "expected for hidden size \(layout.hidden) and bottleneck \(c.bottleneck) (from \(AdapterFileNames.config)); was the adapter trained on another model?"
        case .lora:
            return "expected for hidden size \(layout.hidden) and rank r = \(c.loraRank) (from \(AdapterFileNames.config)); was the adapter trained on another model?"
        }
    }

    static func layerIndex(_ key: String) -> Int? {
        guard let r = key.range(of: "encoder.layer.") else { return nil }
        return Int(key[r.upperBound...].prefix { $0.isNumber })
    }

    struct Head {
        var labels: [String]
        var tensors: [(key: String, values: [Float])]  // layout keys (heads.{name}.…)
    }

    /// Reads head_config.json and model_head.safetensors: AdapterHub's 2-layer tanh classification head
    /// on the first token; labels from the "adaptermix" block, else label2id, else LABEL_i.
    static func readHead(dir: URL, adapterName: String, encoder: EncoderConfig, mixLabels: [String]?) throws -> Head {
        let configURL = dir.appendingPathComponent(AdapterFileNames.headConfig)
        let weightsURL = dir.appendingPathComponent(AdapterFileNames.headWeights)
        let path = configURL.path
        guard FileManager.default.fileExists(atPath: path) else {
            throw AdapterError(file: path, reason: "no such file: the adapter was saved without its classification head",
                               hint: "save it with its head (AdapterHub: model.save_adapter(dir, name, with_head=True, use_safetensors=True))")
        }
        let top = try readJSON(configURL)
        func bad(_ field: String, _ why: String, hint: String = "") -> AdapterError { AdapterError(file: path, reason: "\"\(field)\" \(why)", hint: hint) }
        guard let c = top["config"], case .object = c else { throw bad("config", "is missing or not an object") }
        if let mt = top["model_type"]?.string, mt != encoder.modelType.rawValue {
            throw bad("model_type", "is \"\(mt)\" but the encoder is \(encoder.modelType.rawValue)")
        }
        let headOnly = "AdapterMix implements AdapterHub's default classification head (layers 2, tanh, use_pooler false)"
        if let t = c["head_type"]?.string, t != "classification" { throw bad("config.head_type", "is \"\(t)\"", hint: headOnly) }
        if let l = c["layers"], l.int != 2 { throw bad("config.layers", "is \(l.rendered())", hint: headOnly) }
        if let a = c["activation_function"], !a.isNull, a.string?.lowercased() != "tanh" { throw bad("config.activation_function", "is \(a.rendered())", hint: headOnly) }
        if c["use_pooler"]?.bool == true { throw bad("config.use_pooler", "is true", hint: headOnly) }
        let hasBias = c["bias"]?.bool ?? true
        // Labels.
        var fromLabel2id: [String]?
        if case .object(let m)? = c["label2id"] ?? top["label2id"] {
            var byId: [Int: String] = [:]
            for (label, id) in m {
                guard let i = id.int, i >= 0, i < m.count, byId[i] == nil else {
                    throw bad("config.label2id", "must map each label to a distinct id 0…\(m.count - 1) (\"\(label)\": \(id.rendered()))")
                }
                byId[i] = label
            }
            fromLabel2id = (0..<m.count).map { byId[$0]! }
        }
        let numLabels = c["num_labels"]?.int
        var labels: [String]
        if let mixLabels {
            labels = mixLabels
            if let fromLabel2id, fromLabel2id != mixLabels {
                throw bad("config.label2id", "orders the labels as \(fromLabel2id) but \(AdapterFileNames.config) \"adaptermix.labels\" says \(mixLabels)")
            }
        } else if let fromLabel2id {
            labels = fromLabel2id
        } else if let numLabels {
            labels = (0..<numLabels).map { "LABEL_\($0)" }
        } else {
            throw bad("config.num_labels", "is missing and there is no label2id")
        }
        if let numLabels, numLabels != labels.count {
            throw bad("config.num_labels", "is \(numLabels) but the labels are \(labels) (\(labels.count))")
        }
        guard !labels.isEmpty else { throw bad("config.num_labels", "is 0") }
        // Weights.
        let file = try openSafeTensors(weightsURL, pickle: dir.appendingPathComponent(AdapterFileNames.headWeightsPickle),
                                       resave: "model.save_adapter(dir, name, use_safetensors=True)", folder: "the adapter folder")
        var headName = top["name"]?.string ?? adapterName
        let names = Set(file.names.compactMap { key -> String? in
            guard key.hasPrefix("heads.") else { return nil }
            let rest = key.dropFirst("heads.".count)
            for suffix in [".1.weight", ".1.bias", ".4.weight", ".4.bias"] where rest.hasSuffix(suffix) { return String(rest.dropLast(suffix.count)) }
            return nil
        })
        if !names.contains(headName), names.count == 1 { headName = names.first! }
        let C = encoder.hiddenSize, K = labels.count
        var wanted: [(String, [Int])] = [("1.weight", [C, C]), ("1.bias", [C]), ("4.weight", [K, C])]
        if hasBias { wanted.append(("4.bias", [K])) }
        let keys = wanted.map { "heads.\(headName).\($0.0)" }
        let missing = keys.filter { file.tensors[$0] == nil }
        let unexpected = file.names.filter { !keys.contains($0) }
        if !missing.isEmpty || !unexpected.isEmpty {
            var parts: [String] = []
            if !missing.isEmpty { parts.append("missing \(missing.count) tensor(s): \(list(missing))") }
            if !unexpected.isEmpty { parts.append("unexpected \(unexpected.count) tensor(s): \(list(unexpected))") }
            throw AdapterError(file: weightsURL.path, tensor: missing.first ?? unexpected.first, reason: parts.joined(separator: "; "),
                               hint: "expected AdapterHub's 2-layer head \"\(headName)\"")
        }
        if let info = file.tensors["heads.\(headName).4.weight"], info.shape.count == 2, info.shape[0] != K, info.shape[1] == C {
            throw AdapterError(file: weightsURL.path, tensor: "heads.\(headName).4.weight",
                               reason: "the head has \(info.shape[0]) classes but the labels are \(labels) (\(K))",
                               hint: "label2id / adaptermix.labels must list one name per class")
        }
        var tensors: [(key: String, values: [Float])] = []
        for (suffix, shape) in wanted {
            let values = try readTensor(file, "heads.\(headName).\(suffix)", shape: shape,
                                        hint: "expected for hidden size \(C) and \(K) labels")
            tensors.append(("heads.{name}.\(suffix)", values))
        }
        if !hasBias { tensors.append(("heads.{name}.4.bias", [Float](repeating: 0, count: K))) }
        return Head(labels: labels, tensors: tensors)
    }
}

// MARK: - Helpers shared with PEFT.swift

extension AdapterError {
    init(_ e: SafeTensorsError) { self.init(file: e.file, tensor: e.tensor, reason: e.reason, hint: e.hint) }
}

func openSafeTensors(_ url: URL) throws -> SafeTensorsFile {
    do { return try SafeTensorsFile(url: url) } catch let e as SafeTensorsError { throw AdapterError(e) }
}

/// Opens `url`; when it is missing, says whether the folder has only the pickled `pickle` (which
/// AdapterMix does not read) and how to re-save it as safetensors.
func openSafeTensors(_ url: URL, pickle: URL, resave: String, folder: String) throws -> SafeTensorsFile {
    guard FileManager.default.fileExists(atPath: url.path) else {
        if FileManager.default.fileExists(atPath: pickle.path) {
            throw AdapterError(file: pickle.path, reason: "the folder has only the pickled \(pickle.lastPathComponent), which AdapterMix does not read",
                               hint: "re-save it with \(resave)")
        }
        throw AdapterError(file: url.path, reason: "no such file", hint: "\(folder) needs \(url.lastPathComponent)")
    }
    return try openSafeTensors(url)
}

/// A tensor as Float32 with the expected shape and only finite values.
func readTensor(_ file: SafeTensorsFile, _ key: String, shape: [Int], hint: String) throws -> [Float] {
    let path = file.url.path
    guard let info = file.tensors[key] else { throw AdapterError(file: path, tensor: key, reason: "not in the file") }
    guard info.shape == shape else {
        throw AdapterError(file: path, tensor: key, reason: "has shape \(info.shape), expected \(shape)", hint: hint)
    }
    let values: [Float]
    do { values = try file.floats(key, shape: shape) } catch let e as SafeTensorsError { throw AdapterError(e) }
    if let i = values.firstIndex(where: { !$0.isFinite }) {
        throw AdapterError(file: path, tensor: key, reason: "holds a non-finite value (\(values[i]) at flat index \(i))",
                           hint: "the training diverged or the file is damaged; retrain or re-export it")
    }
    return values
}

func list(_ names: [String], limit: Int = 12) -> String {
    names.prefix(limit).joined(separator: ", ") + (names.count > limit ? ", …" : "")
}

func readJSON(_ url: URL) throws -> JSONValue {
    guard let data = FileManager.default.contents(atPath: url.path) else {
        throw AdapterError(file: url.path, reason: "no such file", hint: "is this an adapter folder?")
    }
    do { return try JSONDecoder().decode(JSONValue.self, from: data) } catch {
        throw AdapterError(file: url.path, reason: "not valid JSON (\(error))")
    }
}

func writeText(_ text: String, to url: URL) throws {
    do { try Data(text.utf8).write(to: url, options: .atomic) } catch {
        throw AdapterError(file: url.path, reason: "cannot write: \(error.localizedDescription)", hint: "check the folder is writable")
    }
}

/// Whether a dotted version ("1.0.1", "1.1.0.dev0") is before `target`, as Python's packaging orders them.
func versionIsBefore(_ version: String, _ target: [Int]) -> Bool {
    var numbers: [Int] = []
    var rest = Substring(version)
    while let n = Int(rest.prefix { $0.isNumber }), !rest.isEmpty {
        numbers.append(n)
        rest = rest.drop { $0.isNumber }
        guard rest.hasPrefix("."), rest.dropFirst().first?.isNumber == true else { break }
        rest = rest.dropFirst()
    }
    let width = max(numbers.count, target.count)
    let a = numbers + [Int](repeating: 0, count: width - numbers.count), b = target + [Int](repeating: 0, count: width - target.count)
    if a != b { return a.lexicographicallyPrecedes(b) }
    // Equal release numbers: a pre-release or dev suffix sorts before the release.
    let suffix = rest.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: ".-_"))
    return suffix.hasPrefix("dev") || suffix.hasPrefix("a") || suffix.hasPrefix("b") || suffix.hasPrefix("rc")
}

// MARK: - JSON

/// A JSON value, decoded with JSONDecoder (booleans stay booleans) and written as Python's
/// `json.dumps(indent=2, sort_keys=True)` writes it; floats always carry a decimal point or exponent,
/// since AdapterHub rejects an integer "scaling".
enum JSONValue: Sendable, Equatable, Decodable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// An integer if `x` is integral, else a float (PEFT's and AdapterHub's alpha: `8`, not `8.0`).
    static func number(_ x: Double) -> JSONValue {
        if x.rounded() == x, abs(x) < 9e15 { return .int(Int64(x)) }
        return .double(x)
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else if let o = try? c.decode([String: JSONValue].self) { self = .object(o) }
        else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a JSON value") }
    }

    struct NotJSON: Error, CustomStringConvertible { var description: String }

    /// From Swift values: dictionaries, arrays, strings, numbers, booleans, nil / NSNull, or anything Encodable.
    init(any: Any?) throws {
        switch any {
        case nil, is NSNull: self = .null
        case let v as JSONValue: self = v
        case let v as Bool: self = .bool(v)
        case let v as Int: self = .int(Int64(v))
        case let v as Int64: self = .int(v)
        case let v as Int32: self = .int(Int64(v))
        case let v as UInt64: self = v <= UInt64(Int64.max) ? .int(Int64(v)) : .string(String(v))
        case let v as UInt32: self = .int(Int64(v))
        case let v as Double: self = .double(v)
        case let v as Float: self = .double(Double("\(v)") ?? Double(v))  // 0.001 as written, not 0.0010000000474974513
        case let v as String: self = .string(v)
        case let v as [String: Any]: self = .object(try v.mapValues { try JSONValue(any: $0) })
        case let v as [Any]: self = .array(try v.map { try JSONValue(any: $0) })
        case let v as NSNumber: self = .double(v.doubleValue)
        case let v as any Encodable:
            let data = try JSONEncoder().encode(v)
            self = try JSONDecoder().decode(JSONValue.self, from: data)
        default: throw NotJSON(description: "\(type(of: any!)) is not a JSON value")
        }
    }

    subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    var string: String? { if case .string(let s) = self { return s }; return nil }
    var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    var array: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    var isNull: Bool { self == .null }
    var number: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }
    var int: Int? {
        switch self {
        case .int(let i): return Int(exactly: i)
        case .double(let d): return Int(exactly: d)
        default: return nil
        }
    }
    /// Set in the sense of a config option: not null, false, 0-length or an empty string.
    var isSet: Bool {
        switch self {
        case .null: return false
        case .bool(let b): return b
        case .string(let s): return !s.isEmpty
        case .array(let a): return !a.isEmpty
        case .object(let o): return !o.isEmpty
        case .int, .double: return true
        }
    }

    func rendered(indent: Int = 0) -> String {
        let pad = String(repeating: " ", count: indent + 2), end = String(repeating: " ", count: indent)
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d):
            guard d.isFinite else { return "null" }
            return "\(d)"  // Swift's shortest round-trip form: "1.0", "0.0001", "1e-05"
        case .string(let s): return Self.quoted(s)
        case .array(let a):
            if a.isEmpty { return "[]" }
            return "[\n" + a.map { pad + $0.rendered(indent: indent + 2) }.joined(separator: ",\n") + "\n" + end + "]"
        case .object(let o):
            if o.isEmpty { return "{}" }
            return "{\n" + o.keys.sorted().map { pad + Self.quoted($0) + ": " + o[$0]!.rendered(indent: indent + 2) }.joined(separator: ",\n")
                + "\n" + end + "}"
        }
    }

    static func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
