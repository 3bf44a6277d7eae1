import Encoder
import Foundation

// PEFT LoRA folders (Hugging Face `peft`, `PeftModel.save_pretrained`):
//
//   adapter_config.json        LoraConfig.to_dict() (peft_type "LORA", r, lora_alpha, target_modules, …)
//   adapter_model.safetensors  base_model.model.[bert.|roberta.]encoder.layer.{i}.attention.self.{query|key|value}.lora_{A|B}.weight
//                              + the head saved through modules_to_save (task_type SEQ_CLS):
//                                BERT:    base_model.model.classifier.{weight,bias} (+ base_model.model.bert.pooler.dense.*)
//                                RoBERTa: base_model.model.classifier.{dense,out_proj}.{weight,bias}
//
// Both heads are exactly this project's 2-layer head on the first token, logits = W₂·tanh(W₁·h + b₁) + b₂:
// BertForSequenceClassification's classifier reads the pooler output tanh(pooler.dense(h_CLS)), so
// (W₁, b₁) = pooler.dense and (W₂, b₂) = classifier; RobertaClassificationHead is dense → tanh → out_proj
// on <s>, so (W₁, b₁) = classifier.dense and (W₂, b₂) = classifier.out_proj. PEFT's scaling is
// lora_alpha / r, as ours.

public enum PEFTFileNames {
    public static let config = "adapter_config.json"
    public static let weights = "adapter_model.safetensors"
    public static let weightsPickle = "adapter_model.bin"
}

private let peftKeyPrefix = "base_model.model."

/// Imports a PEFT LoRA folder into an adapter of method lora.
///
/// - `encoder`: the config of the base model the LoRA was trained on.
/// - `modelDirectory`: the base model's folder; read for BERT's pooler (`pooler.dense.*` in model.safetensors)
///   when the PEFT file does not hold it, and for `id2label` in config.json when `labels` is nil.
/// - `labels`: class names, index = class id (e.g. from `--labels`); must match the classifier's size.
public func importPEFT(from dir: URL, encoder: EncoderConfig, modelDirectory: URL? = nil, labels: [String]? = nil) throws -> (adapter: Adapter, info: AdapterInfo) {
    let configURL = dir.appendingPathComponent(PEFTFileNames.config)
    let configPath = configURL.path
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else {
        throw AdapterError(file: dir.path, reason: "no such PEFT folder", hint: "pass the folder that PeftModel.save_pretrained wrote")
    }
    let cfg = try readJSON(configURL)
    guard case .object = cfg else { throw AdapterError(file: configPath, reason: "not a JSON object") }
    if cfg["peft_type"] == nil, cfg["config"] != nil {
        throw AdapterError(file: configPath, reason: "this is an AdapterHub adapter (it has \"config\", no \"peft_type\")",
                           hint: "load it with Adapter.load (adaptermix's adapter folders)")
    }
    let (rank, alpha, targets) = try checkPEFTConfig(cfg, file: configPath)

    // Weights.
    let weightsURL = dir.appendingPathComponent(PEFTFileNames.weights)
    let file = try openSafeTensors(weightsURL, pickle: dir.appendingPathComponent(PEFTFileNames.weightsPickle),
                                   resave: "model.save_pretrained(dir, safe_serialization=True)", folder: "the PEFT folder")
    let path = weightsURL.path
    let modelType = encoder.modelType.rawValue
    let C = encoder.hiddenSize, L = encoder.numHiddenLayers

    // Sort the keys: LoRA matrices, head tensors, and what is refused.
    var lora: [String: String] = [:]  // "layer.target.A|B" → file key
    var head: [String: String] = [:]  // "classifier.weight", "classifier.dense.weight", "pooler.dense.weight", … → file key
    var unexpected: [String] = []
    let headNames: Set<String> = encoder.modelType == .bert
        ? ["classifier.weight", "classifier.bias", "pooler.dense.weight", "pooler.dense.bias"]
        : ["classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight", "classifier.out_proj.bias"]
    for key in file.names {
        var k = Substring(key)
        guard k.hasPrefix(peftKeyPrefix) else { unexpected.append(key); continue }
        k = k.dropFirst(peftKeyPrefix.count)
        for other in ModelType.allCases where other != encoder.modelType && k.hasPrefix(other.rawValue + ".") {
            throw AdapterError(file: path, tensor: key, reason: "is for a \(other.rawValue) model but the encoder is \(modelType)",
                               hint: "import the LoRA with the base model it was trained on")
        }
        if k.hasPrefix(modelType + ".") { k = k.dropFirst(modelType.count + 1) }
        if k.contains("embed") {
            throw AdapterError(file: path, tensor: key, reason: "is an embedding tensor (embeddings targeted, resized or trainable tokens), which AdapterMix does not import",
                               hint: "train the LoRA on query/key/value only")
        }
        if k.contains("lora_magnitude_vector") {
            throw AdapterError(file: path, tensor: key, reason: "is a DoRA magnitude vector (use_dora), which AdapterMix does not implement")
        }
        if k.hasSuffix(".lora_B.bias") {
            throw AdapterError(file: path, tensor: key, reason: "is a LoRA bias (lora_bias), which AdapterMix does not implement")
        }
        if headNames.contains(String(k)) { head[String(k)] = key; continue }
        // encoder.layer.{i}.attention.self.{target}.lora_{A|B}.weight
        let parts = k.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 8, parts[0] == "encoder", parts[1] == "layer", let l = Int(parts[2]), parts[3] == "attention", parts[4] == "self",
           ["query", "key", "value"].contains(parts[5]), parts[6] == "lora_A" || parts[6] == "lora_B", parts[7] == "weight" {
            guard l < L else {
                throw AdapterError(file: path, tensor: key, reason: "is for layer \(l) but the encoder has \(L) layers",
                                   hint: "import the LoRA with the base model it was trained on")
            }
            lora["\(l).\(parts[5]).\(parts[6].last!)"] = key
            continue
        }
        if k.hasSuffix(".bias") {
            throw AdapterError(file: path, tensor: key, reason: "is a base-model bias (bias \"all\" or \"lora_only\"), which AdapterMix does not import",
                               hint: "train with bias=\"none\"")
        }
        unexpected.append(key)
    }
    var expected: [String] = []
    for l in 0..<L { for t in targets { expected += ["\(l).\(t).A", "\(l).\(t).B"] } }
    unexpected += lora.filter { !expected.contains($0.key) }.map(\.value)
    let missing = expected.filter { lora[$0] == nil }.map { e -> String in
        let p = e.split(separator: ".")
        return "\(peftKeyPrefix)\(modelType).encoder.layer.\(p[0]).attention.self.\(p[1]).lora_\(p[2]).weight"
    }
    if !missing.isEmpty || !unexpected.isEmpty {
        var parts: [String] = []
        if !missing.isEmpty { parts.append("missing \(missing.count) tensor(s): \(list(missing))") }
        if !unexpected.isEmpty { parts.append("unexpected \(unexpected.count) tensor(s): \(list(unexpected.sorted()))") }
        throw AdapterError(file: path, tensor: missing.first ?? unexpected.sorted().first, reason: parts.joined(separator: "; "),
                           hint: "expected LoRA on \(targets.joined(separator: ", ")) in all \(L) layers (target_modules in \(PEFTFileNames.config))")
    }

    // Head.
    let w2Name = encoder.modelType == .bert ? "classifier.weight" : "classifier.out_proj.weight"
    let b2Name = encoder.modelType == .bert ? "classifier.bias" : "classifier.out_proj.bias"
    let w1Name = encoder.modelType == .bert ? "pooler.dense.weight" : "classifier.dense.weight"
    let b1Name = encoder.modelType == .bert ? "pooler.dense.bias" : "classifier.dense.bias"
    guard let w2Key = head[w2Name], let b2Key = head[b2Name] else {
        let task = cfg["task_type"]?.string ?? "null"
        throw AdapterError(file: path, tensor: peftKeyPrefix + w2Name,
                           reason: "no classifier in the file (task_type \(task))",
                           hint: "save the LoRA of a sequence classifier: LoraConfig(task_type=\"SEQ_CLS\") keeps the classifier via modules_to_save")
    }
    guard let info = file.tensors[w2Key], info.shape.count == 2, info.shape[1] == C, info.shape[0] >= 1 else {
        throw AdapterError(file: path, tensor: w2Key, reason: "has shape \(file.tensors[w2Key]!.shape), expected [classes, \(C)]",
                           hint: "was the LoRA trained on another model?")
    }
    let K = info.shape[0]
    // Labels: given, or the base model's id2label.
    let classLabels: [String]
    if let labels {
        guard labels.count == K else {
            throw AdapterError(file: path, tensor: w2Key, reason: "the classifier has \(K) classes but \(labels.count) labels were given (\(labels))",
                               hint: "pass one label per class, in class-id order")
        }
        classLabels = labels
    } else if let fromModel = try id2label(modelDirectory) {
        guard fromModel.labels.count == K else {
            throw AdapterError(file: path, tensor: w2Key, reason: "the classifier has \(K) classes but \(fromModel.file) id2label has \(fromModel.labels.count)",
                               hint: "pass the labels (--labels)")
        }
        classLabels = fromModel.labels
    } else {
        throw AdapterError(file: path, tensor: w2Key, reason: "the classifier has \(K) classes but no label names are known",
                           hint: "pass the labels (--labels a,b,…) in class-id order; the base model's config.json has no id2label")
    }
    guard Set(classLabels).count == classLabels.count else {
        throw AdapterError(file: path, reason: "labels \(classLabels) repeat a name", hint: "pass distinct labels")
    }
    var w1: [Float], b1: [Float]
    let w1Hint = "expected for hidden size \(C)"
    if let w1Key = head[w1Name], let b1Key = head[b1Name] {
        w1 = try readTensor(file, w1Key, shape: [C, C], hint: w1Hint)
        b1 = try readTensor(file, b1Key, shape: [C], hint: w1Hint)
    } else if encoder.modelType == .bert {
        // The pooler was frozen, so it is the base model's own.
        guard let modelDirectory else {
            throw AdapterError(file: path, tensor: peftKeyPrefix + "bert.pooler.dense.weight",
                               reason: "not in the file, and no base model folder was given to read the pooler from",
                               hint: "pass the base model folder (--model DIR)")
        }
        let baseURL = modelDirectory.appendingPathComponent("model.safetensors")
        let base = try openSafeTensors(baseURL)
        guard let wk = ["pooler.dense.weight", "bert.pooler.dense.weight"].first(where: { base.tensors[$0] != nil }),
              let bk = ["pooler.dense.bias", "bert.pooler.dense.bias"].first(where: { base.tensors[$0] != nil }) else {
            throw AdapterError(file: baseURL.path, tensor: "pooler.dense.weight",
                               reason: "the base model has no pooler, which BertForSequenceClassification's classifier reads",
                               hint: "use the checkpoint the LoRA was trained on (with its pooler), or save the LoRA with modules_to_save=[\"classifier\", \"pooler\"]")
        }
        w1 = try readTensor(base, wk, shape: [C, C], hint: w1Hint)
        b1 = try readTensor(base, bk, shape: [C], hint: w1Hint)
    } else {
        throw AdapterError(file: path, tensor: head[w1Name] == nil ? peftKeyPrefix + w1Name : peftKeyPrefix + b1Name,
                           reason: "not in the file (RobertaClassificationHead's dense layer)", hint: "save the LoRA with task_type SEQ_CLS")
    }
    let w2 = try readTensor(file, w2Key, shape: [K, C], hint: "expected for hidden size \(C) and \(K) classes")
    let b2 = try readTensor(file, b2Key, shape: [K], hint: "expected for \(K) classes")

    // The adapter.
    var config = AdapterConfig.defaults(.lora, for: encoder)
    config.loraRank = rank
    config.loraAlpha = Float(alpha)
    config.loraTargets = targets
    try config.validate(file: configPath)
    let layout = AdapterLayout(config: config, encoder: encoder, classes: K)
    let parameters = ParameterBuffer(count: layout.count)
    func put(_ values: [Float], _ offset: Int) {
        values.withUnsafeBufferPointer { parameters.pointer(offset).update(from: $0.baseAddress!, count: $0.count) }
    }
    let loraHint = "expected for hidden size \(C) and r = \(rank) (\(PEFTFileNames.config)); was the LoRA trained on another model?"
    for (l, offsets) in layout.layers.enumerated() {
        for (target, o) in [("query", offsets.query), ("key", offsets.key), ("value", offsets.value)] {
            guard let o else { continue }
            put(try readTensor(file, lora["\(l).\(target).A"]!, shape: [rank, C], hint: loraHint), o.a)
            put(try readTensor(file, lora["\(l).\(target).B"]!, shape: [C, rank], hint: loraHint), o.b)
        }
    }
    put(w1, layout.head.w1); put(b1, layout.head.b1); put(w2, layout.head.w2); put(b2, layout.head.b2)
    let adapterInfo = AdapterInfo(name: dir.standardizedFileURL.lastPathComponent, source: .peft, version: cfg["peft_version"]?.string,
                                  modelName: cfg["base_model_name_or_path"]?.string, labels: classLabels)
    return (Adapter(layout: layout, labels: classLabels, parameters: parameters), adapterInfo)
}

/// Checks a LoraConfig dict: returns r, lora_alpha and the targets (query/key/value order); rejects, by
/// field, every option that changes the LoRA's function or layout beyond W + (α/r)·B·A on query/key/value.
func checkPEFTConfig(_ cfg: JSONValue, file: String) throws -> (rank: Int, alpha: Double, targets: [String]) {
    func bad(_ field: String, _ why: String, hint: String = "") -> AdapterError {
        AdapterError(file: file, reason: "\"\(field)\" \(why)", hint: hint)
    }
    let scope = "AdapterMix imports plain LoRA (W + lora_alpha/r·B·A) on query/key/value of every layer, with the classifier"
    let peftType = cfg["peft_type"]?.string
    guard peftType == "LORA" else {
        throw bad("peft_type", "is \(cfg["peft_type"]?.rendered() ?? "missing"); only \"LORA\" is supported", hint: scope)
    }
    if let t = cfg["task_type"], !t.isNull, t.string != "SEQ_CLS" {
        throw bad("task_type", "is \(t.rendered()); only \"SEQ_CLS\" (sequence classification) is supported", hint: scope)
    }
    let r: Int
    if let v = cfg["r"] { guard let i = v.int, i >= 1 else { throw bad("r", "must be a positive integer (is \(v.rendered()))") }; r = i } else { r = 8 }
    let alpha: Double
    if let v = cfg["lora_alpha"] {
        guard let a = v.number, a > 0, a.isFinite else { throw bad("lora_alpha", "must be a positive number (is \(v.rendered()))") }
        alpha = a
    } else { alpha = 8 }
    // Options that must be off / empty / null.
    let refused: [(String, String)] = [
        ("use_dora", "DoRA"), ("use_rslora", "rsLoRA (scaling lora_alpha/√r)"), ("lora_bias", "a bias on lora_B"),
        ("fan_in_fan_out", "transposed (Conv1D) weights"), ("rank_pattern", "per-module ranks"), ("alpha_pattern", "per-module alphas"),
        ("layers_to_transform", "LoRA on some layers only"), ("exclude_modules", "excluded modules"),
        ("layer_replication", "layer replication"), ("trainable_token_indices", "trainable tokens"),
        ("target_parameters", "LoRA on parameters"), ("alora_invocation_tokens", "activated LoRA"),
        ("megatron_config", "Megatron layers"), ("use_qalora", "QALoRA"), ("velora_config", "VeLoRA"),
        ("monteclora_config", "MonteCLoRA"), ("arrow_config", "Arrow routing"), ("kasa_config", "KaSA"),
        ("use_bdlora", "BD-LoRA"),
    ]
    for (field, what) in refused {
        if let v = cfg[field], v.isSet {
            throw bad(field, "is \(v.rendered()) (\(what)), which AdapterMix does not implement", hint: scope)
        }
    }
    if let b = cfg["bias"], !b.isNull, b.string != "none" {
        throw bad("bias", "is \(b.rendered()); only \"none\" is supported (the others train the base model's biases)", hint: scope)
    }
    if let v = cfg["init_lora_weights"], !v.isNull {
        let ok = v.bool != nil || v.string?.lowercased() == "gaussian"
        guard ok else {
            throw bad("init_lora_weights", "is \(v.rendered()), an initialisation that changes the base weights or the layout (PiSSA, OLoRA, LoftQ, EVA, CorDA, …)",
                      hint: "supported: true, false, \"gaussian\"")
        }
    }
    if let v = cfg["modules_to_save"], !v.isNull {
        guard let names = v.array?.compactMap(\.string), names.count == v.array?.count else {
            throw bad("modules_to_save", "must be a list of module names (is \(v.rendered()))")
        }
        let other = names.filter { !["classifier", "score", "pooler", "bert.pooler"].contains($0) }
        guard other.isEmpty else {
            throw bad("modules_to_save", "has \(other); only the head (classifier, score, pooler) is supported", hint: scope)
        }
    }
    // target_modules: a list whose entries name query, key or value ("query", "self.query", "attention.self.query").
    var targets: [String] = []
    switch cfg["target_modules"] {
    case nil, .null?:
        targets = ["query", "value"]  // PEFT's default for bert / roberta
    case .array(let a)?:
        for v in a {
            guard let s = v.string else { throw bad("target_modules", "has \(v.rendered()), not a module name") }
            let parts = s.split(separator: ".").map(String.init)
            guard let last = parts.last, ["query", "key", "value"].contains(last),
                  Array(["attention", "self", last].suffix(parts.count)) == parts else {
                throw bad("target_modules", "has \"\(s)\"; supported: query, key, value (the attention's projections)", hint: scope)
            }
            if !targets.contains(last) { targets.append(last) }
        }
        guard !targets.isEmpty else { throw bad("target_modules", "is empty") }
    case let v?:
        throw bad("target_modules", "is \(v.rendered()), a regular expression or a wildcard; supported: a list of query, key, value", hint: scope)
    }
    return (r, alpha, ["query", "key", "value"].filter { targets.contains($0) })
}

/// id2label from the base model folder's config.json, ordered by id; nil if absent.
private func id2label(_ modelDirectory: URL?) throws -> (labels: [String], file: String)? {
    guard let modelDirectory else { return nil }
    let url = modelDirectory.appendingPathComponent("config.json")
    guard FileManager.default.fileExists(atPath: url.path) else { return nil }
    let cfg = try readJSON(url)
    guard case .object(let m)? = cfg["id2label"], !m.isEmpty else { return nil }
    var labels = [String?](repeating: nil, count: m.count)
    for (k, v) in m {
        guard let i = Int(k), i >= 0, i < m.count, labels[i] == nil, let name = v.string else {
            throw AdapterError(file: url.path, reason: "\"id2label\" must map the ids 0…\(m.count - 1) to names (\"\(k)\": \(v.rendered()))")
        }
        labels[i] = name
    }
    return (labels.map { $0! }, url.path)
}

/// Exports a LoRA adapter as a PEFT folder (task_type SEQ_CLS) that `PeftModel.from_pretrained` loads onto
/// `BertForSequenceClassification` / `RobertaForSequenceClassification` with `num_labels` = the adapter's
/// class count. The head goes through modules_to_save: ["classifier", "pooler"] for BERT (our W₁, b₁ are
/// the pooler's dense layer), ["classifier"] for RoBERTa (classifier.dense, classifier.out_proj).
/// Labels are not part of PEFT's format: set them as the base model's id2label, or pass them when importing.
public func exportPEFT(_ adapter: Adapter, to dir: URL, encoder: EncoderConfig, baseModelName: String? = nil) throws {
    let configURL = dir.appendingPathComponent(PEFTFileNames.config)
    let c = adapter.config, layout = adapter.layout
    guard c.method == .lora else {
        throw AdapterError(file: configURL.path, reason: "a \(c.method.rawValue) adapter has no PEFT form; only LoRA adapters export to PEFT",
                           hint: "save it as an AdapterHub folder (Adapter.save) instead")
    }
    guard layout.hidden == encoder.hiddenSize, layout.layers.count == encoder.numHiddenLayers else {
        throw AdapterError(file: configURL.path, reason: "the adapter is for hidden size \(layout.hidden) and \(layout.layers.count) layers; the encoder config has \(encoder.hiddenSize) and \(encoder.numHiddenLayers)",
                           hint: "pass the config of the model the adapter was trained on")
    }
    try c.validate(file: configURL.path)
    let bert = encoder.modelType == .bert
    let modelType = encoder.modelType.rawValue
    let config: [String: JSONValue] = [
        "alpha_pattern": .object([:]),
        "auto_mapping": .null,
        "base_model_name_or_path": baseModelName.map { .string($0) } ?? .null,
        "bias": .string("none"),
        "fan_in_fan_out": .bool(false),
        "inference_mode": .bool(true),
        "init_lora_weights": .bool(true),
        "layers_pattern": .null,
        "layers_to_transform": .null,
        "lora_alpha": .number(Double(c.loraAlpha)),
        "lora_dropout": .double(0),
        "modules_to_save": .array((bert ? ["classifier", "pooler"] : ["classifier"]).map { .string($0) }),
        "peft_type": .string("LORA"),
        "r": .int(Int64(c.loraRank)),
        "rank_pattern": .object([:]),
        "revision": .null,
        "target_modules": .array(["query", "key", "value"].filter { c.loraTargets.contains($0) }.map { .string($0) }),
        "task_type": .string("SEQ_CLS"),
    ]
    let p = adapter.parameters, C = layout.hidden, r = c.loraRank, K = layout.head.classes
    func values(_ offset: Int, _ count: Int) -> [Float] { Array(UnsafeBufferPointer(start: p.pointer(offset), count: count)) }
    var tensors: [(name: String, shape: [Int], values: [Float])] = []
    for (l, o) in layout.layers.enumerated() {
        for (target, lora) in [("query", o.query), ("key", o.key), ("value", o.value)] {
            guard let lora else { continue }
            let base = "\(peftKeyPrefix)\(modelType).encoder.layer.\(l).attention.self.\(target)."
            tensors.append((base + "lora_A.weight", [r, C], values(lora.a, r * C)))
            tensors.append((base + "lora_B.weight", [C, r], values(lora.b, C * r)))
        }
    }
    let h = layout.head
    let (w1, b1, w2, b2) = bert
        ? ("bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias")
        : ("classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight", "classifier.out_proj.bias")
    tensors.append((peftKeyPrefix + w1, [C, C], values(h.w1, C * C)))
    tensors.append((peftKeyPrefix + b1, [C], values(h.b1, C)))
    tensors.append((peftKeyPrefix + w2, [K, C], values(h.w2, K * C)))
    tensors.append((peftKeyPrefix + b2, [K], values(h.b2, K)))
    for t in tensors {
        if let i = t.values.firstIndex(where: { !$0.isFinite }) {
            throw AdapterError(file: dir.appendingPathComponent(PEFTFileNames.weights).path, tensor: t.name,
                               reason: "holds a non-finite value (\(t.values[i]) at flat index \(i)); not exported", hint: "the training diverged")
        }
    }
    do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
        throw AdapterError(file: dir.path, reason: "cannot create the folder: \(error.localizedDescription)")
    }
    try writeText(JSONValue.object(config).rendered() + "\n", to: configURL)
    do {
        try SafeTensorsFile.write(tensors, metadata: ["format": "pt"], to: dir.appendingPathComponent(PEFTFileNames.weights))
    } catch let e as SafeTensorsError {
        throw AdapterError(e)
    }
}
