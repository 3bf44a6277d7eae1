import Adapters
import Encoder
import Foundation
import Tensor
import XCTest

/// Adapter folders (AdapterHub layout), PEFT import/export, and the errors bad files give.
final class AdapterFileTests: XCTestCase {
    var temp: URL!

    override func setUpWithError() throws {
        temp = FileManager.default.temporaryDirectory.appendingPathComponent("adaptermix-files-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: temp)
    }

    // MARK: Helpers

    static let fixtures = TestModels.root.appendingPathComponent("Tests/AdaptersTests/Fixtures")
    static let sha = String(repeating: "ab", count: 32)

    /// An adapter whose every parameter is non-zero (so the up projections and LoRA B matter).
    func randomAdapter(_ method: AdapterMethod, encoder: EncoderConfig, labels: [String] = ["ham", "spam"], seed: UInt64 = 7,
                       bottleneck: Int = 8, targets: [String] = ["query", "value"]) -> Adapter {
        var cfg = AdapterConfig(method: method, bottleneck: bottleneck, loraRank: 4, loraAlpha: 8)
        cfg.loraTargets = targets
        let a = Adapter.initialized(config: cfg, encoder: encoder, labels: labels, seed: seed)
        var rng = SplitMix64(seed: seed &+ 100)
        for i in 0..<a.parameters.count { a.parameters.base[i] = 0.2 * rng.nextGaussian() }
        return a
    }

    func params(_ a: Adapter) -> [Float] { Array(UnsafeBufferPointer(start: a.parameters.base, count: a.parameters.count)) }

    func logits(_ model: EncoderModel, _ adapter: Adapter, _ batch: EncoderBatch) throws -> [Float] {
        let m = try AdaptedEncoder(model: model, adapter: adapter)
        let ws = AdaptedWorkspace()
        return withExtendedLifetime(ws) {
            let out = m.forward(batch, workspace: ws)
            return Array(UnsafeBufferPointer(start: out, count: batch.batchSize * adapter.layout.head.classes))
        }
    }

    func maxDiff(_ a: [Float], _ b: [Float]) -> Float {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    func readJSON(_ url: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }

    func writeJSON(_ object: [String: Any], _ url: URL) throws {
        try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]).write(to: url)
    }

    /// Edits a JSON file in place.
    func editJSON(_ url: URL, _ edit: (inout [String: Any]) -> Void) throws {
        var o = try readJSON(url)
        edit(&o)
        try writeJSON(o, url)
    }

    /// Edits `config` inside adapter_config.json.
    func editConfig(_ dir: URL, _ edit: (inout [String: Any]) -> Void) throws {
        try editJSON(dir.appendingPathComponent("adapter_config.json")) { top in
            var c = top["config"] as! [String: Any]
            edit(&c)
            top["config"] = c
        }
    }

    typealias Tensors = [(name: String, shape: [Int], values: [Float])]

    func readTensors(_ url: URL) throws -> Tensors {
        let f = try SafeTensorsFile(url: url)
        return try f.names.map { ($0, f.tensors[$0]!.shape, try f.floats($0)) }
    }

    func editTensors(_ url: URL, _ edit: (inout Tensors) -> Void) throws {
        var t = try readTensors(url)
        edit(&t)
        try SafeTensorsFile.write(t, metadata: ["format": "pt"], to: url)
    }

    func copyFolder(_ from: URL, _ name: String) throws -> URL {
        let to = temp.appendingPathComponent(name)
        try? FileManager.default.removeItem(at: to)
        try FileManager.default.copyItem(at: from, to: to)
        return to
    }

    /// Asserts that `body` throws an AdapterError whose file ends with `file` and whose text mentions every `needle`.
    func assertAdapterError(_ file: String, _ needles: [String], line: UInt = #line, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("expected an error about \(file)", line: line)
        } catch let e as AdapterError {
            XCTAssertTrue(e.file.hasSuffix(file), "error names \(e.file), expected …\(file): \(e)", line: line)
            for n in needles { XCTAssertTrue(e.description.contains(n), "error does not mention \"\(n)\": \(e)", line: line) }
        } catch {
            XCTFail("expected an AdapterError, got \(error)", line: line)
        }
    }

    func tinyBatch(_ pre: PretrainedEncoder) throws -> EncoderBatch {
        EncoderBatch(try pre.encode(TestModels.texts), padId: pre.tokenizer.padId)
    }

    /// A saved tiny-RoBERTa adapter folder to damage.
    func savedFolder(_ method: AdapterMethod, name: String = "spam", labels: [String] = ["ham", "spam"]) throws -> (URL, EncoderConfig) {
        let pre = try TestModels.tinyRoberta()
        let dir = temp.appendingPathComponent("\(method)-\(UUID().uuidString.prefix(8))")
        try randomAdapter(method, encoder: pre.model.config, labels: labels).save(
            to: dir, name: name, encoder: pre.model.config, modelName: "tiny-roberta", domain: "sms", baseModelSHA256: Self.sha, seed: 7)
        return (dir, pre.model.config)
    }

    // MARK: Save → load

    func testSaveLoadRoundTripAllMethods() throws {
        let pre = try TestModels.tinyRoberta()
        let cfg = pre.model.config
        let batch = try tinyBatch(pre)
        for method in AdapterMethod.allCases {
            let adapter = randomAdapter(method, encoder: cfg, labels: ["ham", "spam", "other"])
            let dir = temp.appendingPathComponent(method.rawValue)
            try adapter.save(to: dir, name: "sms", encoder: cfg, modelName: "tiny-roberta", domain: "sms", baseModelSHA256: Self.sha,
                             metrics: ["accuracy": 0.875, "macro_f1": 0.5], seed: 42, training: ["epochs": 3, "learning_rate": 0.001, "warmup": true])
            for f in ["adapter_config.json", "adapter.safetensors", "head_config.json", "model_head.safetensors"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(f).path), "\(method): \(f)")
            }
            let (loaded, info) = try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: Self.sha)
            XCTAssertEqual(loaded.config, adapter.config, "\(method)")
            XCTAssertEqual(params(loaded), params(adapter), "\(method): parameters differ after a round trip")
            XCTAssertEqual(loaded.labels, ["ham", "spam", "other"])
            XCTAssertEqual(info.name, "sms")
            XCTAssertEqual(info.source, .adaptermix)
            XCTAssertEqual(info.version, "adaptermix.0.1")
            XCTAssertEqual(info.domain, "sms")
            XCTAssertEqual(info.baseModelSHA256, Self.sha)
            XCTAssertEqual(info.metrics, ["accuracy": 0.875, "macro_f1": 0.5])
            XCTAssertEqual(info.seed, 42)
            XCTAssertEqual(info.training?["epochs"] as? Int, 3)
            XCTAssertEqual(info.modelName, "tiny-roberta")
            XCTAssertEqual(try logits(pre.model, loaded, batch), try logits(pre.model, adapter, batch), "\(method): logits differ")
            // No expected hash (or a folder without one) loads too.
            XCTAssertNoThrow(try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: nil))
        }
    }

    func testSavedFilesHaveAdapterHubLayout() throws {
        let (pf, _) = try savedFolder(.pfeiffer, name: "sst2", labels: ["neg", "pos"])
        let top = try readJSON(pf.appendingPathComponent("adapter_config.json"))
        let c = top["config"] as! [String: Any]
        XCTAssertEqual(top["model_type"] as? String, "roberta")
        XCTAssertEqual(top["model_class"] as? String, "RobertaAdapterModel")
        XCTAssertEqual(top["hidden_size"] as? Int, 32)
        XCTAssertEqual(top["name"] as? String, "sst2")
        XCTAssertEqual(top["version"] as? String, "adaptermix.0.1")
        XCTAssertEqual(c["reduction_factor"] as? Int, 4)  // 32 / 8
        XCTAssertEqual(c["original_ln_before"] as? Bool, true)
        XCTAssertEqual(c["mh_adapter"] as? Bool, false)
        XCTAssertEqual(c["output_adapter"] as? Bool, true)
        XCTAssertEqual(c["non_linearity"] as? String, "relu")
        XCTAssertNil(c["architecture"])
        let text = try String(contentsOf: pf.appendingPathComponent("adapter_config.json"), encoding: .utf8)
        XCTAssertTrue(text.contains("\"scaling\": 1.0"), "AdapterHub needs a float scaling")
        let mix = top["adaptermix"] as! [String: Any]
        XCTAssertEqual(mix["labels"] as? [String], ["neg", "pos"])
        XCTAssertEqual(mix["bottleneck"] as? Int, 8)
        XCTAssertEqual(mix["base_model_sha256"] as? String, Self.sha)
        let keys = try SafeTensorsFile(url: pf.appendingPathComponent("adapter.safetensors")).names
        XCTAssertEqual(keys.count, 2 * 4)
        XCTAssertTrue(keys.contains("roberta.encoder.layer.1.output.adapters.sst2.adapter_up.weight"), "\(keys)")
        XCTAssertEqual(try SafeTensorsFile(url: pf.appendingPathComponent("model_head.safetensors")).names,
                       ["heads.sst2.1.bias", "heads.sst2.1.weight", "heads.sst2.4.bias", "heads.sst2.4.weight"])
        let head = try readJSON(pf.appendingPathComponent("head_config.json"))
        let hc = head["config"] as! [String: Any]
        XCTAssertEqual(hc["layers"] as? Int, 2)
        XCTAssertEqual(hc["activation_function"] as? String, "tanh")
        XCTAssertEqual(hc["num_labels"] as? Int, 2)
        XCTAssertEqual(hc["label2id"] as? [String: Int], ["neg": 0, "pos": 1])

        let (ho, _) = try savedFolder(.houlsby)
        let hoc = try readJSON(ho.appendingPathComponent("adapter_config.json"))["config"] as! [String: Any]
        XCTAssertEqual(hoc["mh_adapter"] as? Bool, true)
        XCTAssertEqual(hoc["original_ln_before"] as? Bool, false)
        XCTAssertEqual(hoc["non_linearity"] as? String, "swish")
        XCTAssertTrue(try SafeTensorsFile(url: ho.appendingPathComponent("adapter.safetensors")).names
            .contains("roberta.encoder.layer.0.attention.output.adapters.spam.adapter_down.0.weight"))

        let (lo, _) = try savedFolder(.lora)
        let loc = try readJSON(lo.appendingPathComponent("adapter_config.json"))["config"] as! [String: Any]
        XCTAssertEqual(loc["architecture"] as? String, "lora")
        XCTAssertEqual(loc["r"] as? Int, 4)
        XCTAssertEqual(loc["alpha"] as? Int, 8)
        XCTAssertEqual(loc["attn_matrices"] as? [String], ["q", "v"])
        XCTAssertTrue(try SafeTensorsFile(url: lo.appendingPathComponent("adapter.safetensors")).names
            .contains("roberta.encoder.layer.1.attention.self.value.loras.spam.lora_B"))
    }

    func testBottleneckThatDoesNotDivideTheHiddenSizeRoundTrips() throws {
        let pre = try TestModels.tinyRoberta()
        for b in [5, 7, 9, 31] {
            let dir = temp.appendingPathComponent("b\(b)")
            try randomAdapter(.houlsby, encoder: pre.model.config, bottleneck: b).save(
                to: dir, name: "x", encoder: pre.model.config, domain: "d", baseModelSHA256: Self.sha, seed: 1)
            XCTAssertEqual(try Adapter.load(from: dir, encoder: pre.model.config, expectedBaseSHA256: nil).adapter.config.bottleneck, b)
        }
    }

    func testSHA256OfFile() throws {
        let url = temp.appendingPathComponent("abc.txt")
        try Data("abc".utf8).write(to: url)
        XCTAssertEqual(try sha256(ofFile: url), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // Larger than one read (1 MiB): 3 MiB of "a".
        try Data(repeating: 0x61, count: 3 << 20).write(to: url)
        XCTAssertEqual(try sha256(ofFile: url).count, 64)
        assertAdapterError("nope.safetensors", ["cannot open"]) { _ = try sha256(ofFile: self.temp.appendingPathComponent("nope.safetensors")) }
    }

    // MARK: AdapterHub-written folders

    /// A folder as AdapterHub's save_adapter(use_safetensors=True) writes it: BnConfig as a dict, keys with
    /// the `roberta.` prefix, version "adapters.…", no adaptermix block.
    func writeAdapterHubFolder(_ dir: URL, config: [String: Any], tensors: Tensors, name: String, labels: [String]?, numLabels: Int,
                               head: Tensors, version: String = "adapters.1.2.0") throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try writeJSON(["config": config, "hidden_size": 32, "model_class": "RobertaAdapterModel", "model_name": "roberta-tiny",
                       "model_type": "roberta", "name": name, "version": version], dir.appendingPathComponent("adapter_config.json"))
        var hc: [String: Any] = ["activation_function": "tanh", "bias": true, "dropout_prob": NSNull(), "head_type": "classification",
                                 "layers": 2, "num_labels": numLabels, "use_pooler": false]
        hc["label2id"] = labels.map { Dictionary(uniqueKeysWithValues: $0.enumerated().map { ($0.element, $0.offset) }) } ?? NSNull()
        try writeJSON(["config": hc, "hidden_size": 32, "model_class": "RobertaAdapterModel", "model_name": "roberta-tiny",
                       "model_type": "roberta", "name": name, "version": version], dir.appendingPathComponent("head_config.json"))
        try SafeTensorsFile.write(tensors, metadata: ["format": "pt"], to: dir.appendingPathComponent("adapter.safetensors"))
        try SafeTensorsFile.write(head, metadata: ["format": "pt"], to: dir.appendingPathComponent("model_head.safetensors"))
    }

    static var seqBn: [String: Any] { [
        "adapter_residual_before_ln": false, "cross_adapter": false, "dropout": 0.0, "factorized_phm_W": true, "factorized_phm_rule": false,
        "hypercomplex_nonlinearity": "glorot-uniform", "init_weights": "bert", "init_weights_seed": NSNull(), "inv_adapter": NSNull(),
        "inv_adapter_reduction_factor": NSNull(), "is_parallel": false, "learn_phm": true, "leave_out": [Int](), "ln_after": false,
        "ln_before": false, "mh_adapter": false, "non_linearity": "relu", "original_ln_after": true, "original_ln_before": true,
        "output_adapter": true, "phm_bias": true, "phm_c_init": "normal", "phm_dim": 4, "phm_init_range": 0.0001, "phm_layer": false,
        "phm_rank": 1, "reduction_factor": 16, "residual_before_ln": true, "scaling": 1.0, "shared_W_phm": false,
        "shared_phm_rule": true, "stochastic_depth": 0.0, "use_gating": false,
    ] }

    /// The tensors of `adapter` with AdapterHub keys for `name`, prefixed or not.
    func hubTensors(_ adapter: Adapter, name: String, prefix: String) -> (body: Tensors, head: Tensors) {
        var body: Tensors = [], head: Tensors = []
        for t in adapter.layout.table {
            let key = t.key.replacingOccurrences(of: "{name}", with: name)
            let v = Array(UnsafeBufferPointer(start: adapter.parameters.pointer(t.offset), count: t.shape.reduce(1, *)))
            if key.hasPrefix("heads.") { head.append((key, t.shape, v)) } else { body.append((prefix + key, t.shape, v)) }
        }
        return (body, head)
    }

    func testAdapterHubFolderLoads() throws {
        let pre = try TestModels.tinyRoberta()
        let cfg = pre.model.config
        let batch = try tinyBatch(pre)
        // seq_bn with reduction_factor 16 → bottleneck 32 // 16 = 2.
        let reference = randomAdapter(.pfeiffer, encoder: cfg, labels: ["neg", "pos"], bottleneck: 2)
        for prefix in ["roberta.", ""] {
            let dir = temp.appendingPathComponent("hub\(prefix)")
            let (body, head) = hubTensors(reference, name: "sst-2", prefix: prefix)
            try writeAdapterHubFolder(dir, config: Self.seqBn, tensors: body, name: "sst-2", labels: ["neg", "pos"], numLabels: 2, head: head)
            let (a, info) = try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: Self.sha)  // no hash recorded: accepted
            XCTAssertEqual(a.config.method, .pfeiffer)
            XCTAssertEqual(a.config.bottleneck, 2)
            XCTAssertEqual(a.config.nonLinearity, .relu)
            XCTAssertEqual(a.labels, ["neg", "pos"])
            XCTAssertEqual(info.source, .adapterhub)
            XCTAssertEqual(info.name, "sst-2")
            XCTAssertNil(info.baseModelSHA256)
            XCTAssertEqual(params(a), params(reference))
            XCTAssertEqual(try logits(pre.model, a, batch), try logits(pre.model, reference, batch))
        }
        // A name with a dot in it.
        let dotted = temp.appendingPathComponent("hub-dotted")
        let (dbody, dhead) = hubTensors(reference, name: "glue.sst2", prefix: "roberta.")
        try writeAdapterHubFolder(dotted, config: Self.seqBn, tensors: dbody, name: "glue.sst2", labels: ["neg", "pos"], numLabels: 2, head: dhead)
        XCTAssertEqual(params(try Adapter.load(from: dotted, encoder: cfg, expectedBaseSHA256: nil).adapter), params(reference))
        // The config given by name, no label2id (→ LABEL_i), the legacy key names of adapter-transformers.
        let dir = temp.appendingPathComponent("hub-named")
        var (body, head) = hubTensors(reference, name: "t", prefix: "roberta.")
        body = body.map { ($0.name.replacingOccurrences(of: ".output.adapters.", with: ".output.layer_text_task_adapters."), $0.shape, $0.values) }
        try writeAdapterHubFolder(dir, config: [:], tensors: body, name: "t", labels: nil, numLabels: 2, head: head)
        try editJSON(dir.appendingPathComponent("adapter_config.json")) { $0["config"] = "pfeiffer" }
        let named = try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: nil).adapter
        XCTAssertEqual(named.labels, ["LABEL_0", "LABEL_1"])
        XCTAssertEqual(params(named), params(reference))
        // Houlsby, swish spelled silu, float reduction factor, residual_before_ln false (the same function without original_ln_before).
        let houlsby = randomAdapter(.houlsby, encoder: cfg, labels: ["a", "b", "c"], bottleneck: 5)
        var hb = Self.seqBn
        hb["mh_adapter"] = true; hb["original_ln_before"] = false; hb["non_linearity"] = "silu"; hb["reduction_factor"] = 6.0
        hb["residual_before_ln"] = false
        let hdir = temp.appendingPathComponent("hub-houlsby")
        let (hbody, hhead) = hubTensors(houlsby, name: "h", prefix: "roberta.")
        try writeAdapterHubFolder(hdir, config: hb, tensors: hbody, name: "h", labels: ["a", "b", "c"], numLabels: 3, head: hhead)
        let h = try Adapter.load(from: hdir, encoder: cfg, expectedBaseSHA256: nil).adapter
        XCTAssertEqual(h.config.method, .houlsby)
        XCTAssertEqual(h.config.bottleneck, 5)  // int(32 // 6.0)
        XCTAssertEqual(h.config.nonLinearity, .swish)
        XCTAssertEqual(try logits(pre.model, h, batch), try logits(pre.model, houlsby, batch))
        // Per-layer reduction factors that agree.
        try editConfig(hdir) { $0["reduction_factor"] = ["default": 6, "1": 6.2] }
        XCTAssertEqual(try Adapter.load(from: hdir, encoder: cfg, expectedBaseSHA256: nil).adapter.config.bottleneck, 5)
        try editConfig(hdir) { $0["reduction_factor"] = ["default": 6, "1": 4] }
        assertAdapterError("adapter_config.json", ["reduction_factor", "different bottleneck sizes"]) {
            _ = try Adapter.load(from: hdir, encoder: cfg, expectedBaseSHA256: nil)
        }
    }

    func testAdapterHubLoRAAndTheAlphaQuirk() throws {
        let pre = try TestModels.tinyRoberta()
        let cfg = pre.model.config
        let reference = randomAdapter(.lora, encoder: cfg, labels: ["a", "b"], targets: ["query", "key", "value"])
        let lora: [String: Any] = [
            "alpha": 8, "architecture": "lora", "attn_matrices": ["q", "k", "v"], "composition_mode": "add", "dropout": 0.1,
            "dtype": NSNull(), "init_weights": "lora", "init_weights_seed": NSNull(), "intermediate_lora": false, "leave_out": [Int](),
            "output_lora": false, "r": 4, "selfattn_lora": true, "use_gating": false, "vera_b": NSNull(), "vera_d": NSNull(),
        ]
        let (body, head) = hubTensors(reference, name: "lo", prefix: "roberta.")
        for (version, alpha) in [("adapters.1.2.0", Float(8)), ("adapters.1.1.0", 8), ("adapters.1.0.1", 4), ("adapters.0.2.2", 4)] {
            let dir = temp.appendingPathComponent("lora-\(version)")
            try writeAdapterHubFolder(dir, config: lora, tensors: body, name: "lo", labels: ["a", "b"], numLabels: 2, head: head, version: version)
            let a = try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: nil).adapter
            XCTAssertEqual(a.config.method, .lora)
            XCTAssertEqual(a.config.loraRank, 4)
            XCTAssertEqual(a.config.loraAlpha, alpha, "version \(version): before 1.1.0 AdapterHub loads alpha := r")
            XCTAssertEqual(a.config.loraTargets, ["query", "key", "value"])
            XCTAssertEqual(params(a), params(reference))
        }
    }

    // MARK: Bad folders

    func testBaseModelHashMismatch() throws {
        let (dir, cfg) = try savedFolder(.pfeiffer)
        assertAdapterError("adapter_config.json", ["base_model_sha256", "trained on tiny-roberta", Self.sha, String(repeating: "cd", count: 32)]) {
            _ = try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: String(repeating: "cd", count: 32))
        }
    }

    func testHeadLabelCountMismatch() throws {
        let (dir, cfg) = try savedFolder(.lora, name: "spam", labels: ["ham", "spam"])
        try editTensors(dir.appendingPathComponent("model_head.safetensors")) { t in
            t = t.map { $0.name == "heads.spam.4.weight" ? ($0.name, [3, 32], [Float](repeating: 0.1, count: 96))
                      : $0.name == "heads.spam.4.bias" ? ($0.name, [3], [0, 0, 0]) : $0 }
        }
        assertAdapterError("model_head.safetensors", ["heads.spam.4.weight", "3 classes", "ham"]) {
            _ = try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: nil)
        }
        // num_labels that contradicts the labels.
        let (dir2, _) = try savedFolder(.lora)
        try editJSON(dir2.appendingPathComponent("head_config.json")) { top in
            var c = top["config"] as! [String: Any]; c["num_labels"] = 5; top["config"] = c
        }
        assertAdapterError("head_config.json", ["num_labels", "5"]) { _ = try Adapter.load(from: dir2, encoder: cfg, expectedBaseSHA256: nil) }
        // A label2id that contradicts the adaptermix labels.
        let (dir3, _) = try savedFolder(.lora)
        try editJSON(dir3.appendingPathComponent("head_config.json")) { top in
            var c = top["config"] as! [String: Any]; c["label2id"] = ["spam": 0, "ham": 1]; top["config"] = c
        }
        assertAdapterError("head_config.json", ["label2id"]) { _ = try Adapter.load(from: dir3, encoder: cfg, expectedBaseSHA256: nil) }
    }

    func testShapesThatDoNotFitTheEncoder() throws {
        let (dir, cfg) = try savedFolder(.pfeiffer)
        // Hidden size.
        var wide = cfg; wide.hiddenSize = 64
        assertAdapterError("adapter_config.json", ["hidden_size", "32", "64"]) { _ = try Adapter.load(from: dir, encoder: wide, expectedBaseSHA256: nil) }
        // Model type.
        var bert = cfg; bert.modelType = .bert
        assertAdapterError("adapter_config.json", ["model_type", "roberta", "bert"]) { _ = try Adapter.load(from: dir, encoder: bert, expectedBaseSHA256: nil) }
        // Fewer layers than the adapter: a tensor for a layer the encoder lacks.
        var shallow = cfg; shallow.numHiddenLayers = 1
        assertAdapterError("adapter.safetensors", ["encoder.layer.1.", "layer 1", "1 layers"]) {
            _ = try Adapter.load(from: dir, encoder: shallow, expectedBaseSHA256: nil)
        }
        // More layers than the adapter: missing tensors.
        var deep = cfg; deep.numHiddenLayers = 3
        assertAdapterError("adapter.safetensors", ["missing 4 tensor(s)", "roberta.encoder.layer.2.output.adapters.spam.adapter_down.0.weight", "2 layer(s)"]) {
            _ = try Adapter.load(from: dir, encoder: deep, expectedBaseSHA256: nil)
        }
        // Bottleneck: the config says 32 // 2 = 16, the tensors are 8 wide.
        try editConfig(dir) { $0["reduction_factor"] = 2 }
        try editJSON(dir.appendingPathComponent("adapter_config.json")) { top in
            var m = top["adaptermix"] as! [String: Any]; m["bottleneck"] = 16; top["adaptermix"] = m
        }
        assertAdapterError("adapter.safetensors", ["adapter_down.0.weight", "[8, 32]", "[16, 32]", "bottleneck 16"]) {
            _ = try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: nil)
        }
        // The adaptermix block disagreeing with the config.
        try editJSON(dir.appendingPathComponent("adapter_config.json")) { top in
            var m = top["adaptermix"] as! [String: Any]; m["bottleneck"] = 8; top["adaptermix"] = m
        }
        assertAdapterError("adapter_config.json", ["adaptermix.bottleneck", "16"]) { _ = try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: nil) }
        // LoRA rank.
        let (lo, _) = try savedFolder(.lora)
        try editConfig(lo) { $0["r"] = 2 }
        try editJSON(lo.appendingPathComponent("adapter_config.json")) { top in
            var m = top["adaptermix"] as! [String: Any]; m["lora_r"] = 2; top["adaptermix"] = m
        }
        assertAdapterError("adapter.safetensors", ["lora_A", "[4, 32]", "[2, 32]", "r = 2"]) { _ = try Adapter.load(from: lo, encoder: cfg, expectedBaseSHA256: nil) }
    }

    func testNonFiniteValues() throws {
        let (dir, cfg) = try savedFolder(.houlsby)
        try editTensors(dir.appendingPathComponent("adapter.safetensors")) { t in
            for i in t.indices where t[i].name == "roberta.encoder.layer.1.attention.output.adapters.spam.adapter_up.bias" { t[i].values[3] = .nan }
        }
        assertAdapterError("adapter.safetensors", ["roberta.encoder.layer.1.attention.output.adapters.spam.adapter_up.bias", "non-finite", "index 3"]) {
            _ = try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: nil)
        }
        let (dir2, _) = try savedFolder(.lora)
        try editTensors(dir2.appendingPathComponent("model_head.safetensors")) { t in
            for i in t.indices where t[i].name == "heads.spam.1.weight" { t[i].values[0] = -.infinity }
        }
        assertAdapterError("model_head.safetensors", ["heads.spam.1.weight", "-inf"]) { _ = try Adapter.load(from: dir2, encoder: cfg, expectedBaseSHA256: nil) }
        // Nor are they saved or exported.
        let bad = randomAdapter(.lora, encoder: cfg)
        bad.parameters.pointer(bad.layout.layers[1].value!.b)[2] = .nan
        assertAdapterError("adapter.safetensors", ["roberta.encoder.layer.1.attention.self.value.loras.x.lora_B", "not saved"]) {
            try bad.save(to: self.temp.appendingPathComponent("nan"), name: "x", encoder: cfg, domain: "d", baseModelSHA256: Self.sha, seed: 1)
        }
        assertAdapterError("adapter_model.safetensors", ["base_model.model.roberta.encoder.layer.1.attention.self.value.lora_B.weight", "not exported"]) {
            try exportPEFT(bad, to: self.temp.appendingPathComponent("nan-peft"), encoder: cfg)
        }
        assertAdapterError("adapter_config.json", ["base_model_sha256", "64 hex digits"]) {
            try self.randomAdapter(.lora, encoder: cfg).save(to: self.temp.appendingPathComponent("sha"), name: "x", encoder: cfg, domain: "d",
                                                             baseModelSHA256: "/models/minilm/model.safetensors", seed: 1)
        }
    }

    func testMissingAndUnexpectedTensors() throws {
        let (dir, cfg) = try savedFolder(.lora)
        let weights = dir.appendingPathComponent("adapter.safetensors")
        let original = try readTensors(weights)
        try editTensors(weights) { t in t.removeAll { $0.name.hasSuffix("layer.0.attention.self.query.loras.spam.lora_B") } }
        assertAdapterError("adapter.safetensors", ["missing 1 tensor(s)", "roberta.encoder.layer.0.attention.self.query.loras.spam.lora_B"]) {
            _ = try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: nil)
        }
        try SafeTensorsFile.write(original + [("roberta.encoder.layer.0.attention.self.key.loras.spam.lora_A", [4, 32], [Float](repeating: 0, count: 128)),
                                              ("roberta.encoder.layer.0.output.adapters.spam.gate.weight", [1, 32], [Float](repeating: 0, count: 32))],
                                  to: weights)
        assertAdapterError("adapter.safetensors", ["unexpected 2 tensor(s)", "key.loras.spam.lora_A", "adapters.spam.gate.weight"]) {
            _ = try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: nil)
        }
        // The same tensor with and without the prefix.
        try SafeTensorsFile.write(original + [(String(original[0].name.dropFirst("roberta.".count)), original[0].shape, original[0].values)], to: weights)
        assertAdapterError("adapter.safetensors", ["given twice"]) { _ = try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: nil) }
        // A head tensor missing.
        try SafeTensorsFile.write(original, to: weights)
        try editTensors(dir.appendingPathComponent("model_head.safetensors")) { t in t.removeAll { $0.name == "heads.spam.1.bias" } }
        assertAdapterError("model_head.safetensors", ["missing 1 tensor(s)", "heads.spam.1.bias"]) {
            _ = try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: nil)
        }
    }

    func testPickleOnlyFoldersAndMissingFiles() throws {
        let (dir, cfg) = try savedFolder(.pfeiffer)
        try FileManager.default.moveItem(at: dir.appendingPathComponent("adapter.safetensors"), to: dir.appendingPathComponent("pytorch_adapter.bin"))
        assertAdapterError("pytorch_adapter.bin", ["use_safetensors=True"]) { _ = try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: nil) }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("pytorch_adapter.bin"))
        assertAdapterError("adapter.safetensors", ["no such file"]) { _ = try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: nil) }
        let (dir2, _) = try savedFolder(.pfeiffer)
        try FileManager.default.moveItem(at: dir2.appendingPathComponent("model_head.safetensors"), to: dir2.appendingPathComponent("pytorch_model_head.bin"))
        assertAdapterError("pytorch_model_head.bin", ["use_safetensors=True"]) { _ = try Adapter.load(from: dir2, encoder: cfg, expectedBaseSHA256: nil) }
        let (dir3, _) = try savedFolder(.pfeiffer)
        try FileManager.default.removeItem(at: dir3.appendingPathComponent("head_config.json"))
        assertAdapterError("head_config.json", ["without its classification head"]) { _ = try Adapter.load(from: dir3, encoder: cfg, expectedBaseSHA256: nil) }
        // A PEFT folder given to the AdapterHub loader.
        let peft = Self.fixtures.appendingPathComponent("peft-tiny-roberta")
        assertAdapterError("adapter_config.json", ["PEFT", "importPEFT"]) { _ = try Adapter.load(from: peft, encoder: cfg, expectedBaseSHA256: nil) }
    }

    func testUnsupportedAdapterHubOptionsAreRejectedByName() throws {
        let cases: [(AdapterMethod, [String: Any], [String])] = [
            (.pfeiffer, ["ln_before": true], ["config.ln_before"]),
            (.pfeiffer, ["ln_after": true], ["config.ln_after"]),
            (.pfeiffer, ["use_gating": true], ["config.use_gating"]),
            (.pfeiffer, ["scaling": 2.5], ["config.scaling", "2.5", "only 1.0"]),
            (.pfeiffer, ["scaling": "learned"], ["config.scaling", "learned"]),
            (.pfeiffer, ["phm_layer": true], ["config.phm_layer", "Compacter"]),
            (.pfeiffer, ["is_parallel": true], ["config.is_parallel"]),
            (.pfeiffer, ["leave_out": [0]], ["config.leave_out"]),
            (.pfeiffer, ["original_ln_after": false], ["config.original_ln_after"]),
            (.pfeiffer, ["residual_before_ln": "post_add"], ["config.residual_before_ln"]),
            (.pfeiffer, ["non_linearity": "gelu"], ["config.non_linearity", "gelu"]),
            (.pfeiffer, ["mh_adapter": true], ["mh_adapter true", "output_adapter true", "original_ln_before true"]),
            (.houlsby, ["output_adapter": false], ["mh_adapter true", "output_adapter false"]),
            (.pfeiffer, ["adapter_residual_before_ln": true], ["config.adapter_residual_before_ln"]),
            (.pfeiffer, ["architecture": "prefix_tuning"], ["config.architecture", "prefix_tuning"]),
            (.lora, ["intermediate_lora": true], ["config.intermediate_lora"]),
            (.lora, ["output_lora": true], ["config.output_lora"]),
            (.lora, ["selfattn_lora": false], ["config.selfattn_lora"]),
            (.lora, ["attn_matrices": ["q", "o"]], ["config.attn_matrices"]),
            (.lora, ["composition_mode": "scale"], ["config.composition_mode", "scale"]),
            (.lora, ["use_gating": true], ["config.use_gating"]),
            (.lora, ["use_dora": true], ["config.use_dora"]),
            (.lora, ["leave_out": [1]], ["config.leave_out"]),
            (.lora, ["vera_d": 0.1], ["config.vera_d"]),
        ]
        for (method, change, needles) in cases {
            let (dir, cfg) = try savedFolder(method)
            try editConfig(dir) { c in for (k, v) in change { c[k] = v } }
            assertAdapterError("adapter_config.json", needles) { _ = try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: nil) }
        }
        // An invertible adapter with its weights.
        let (dir, cfg) = try savedFolder(.pfeiffer)
        try editConfig(dir) { $0["inv_adapter"] = "nice"; $0["inv_adapter_reduction_factor"] = 2 }
        try editTensors(dir.appendingPathComponent("adapter.safetensors")) { t in
            t.append(("roberta.invertible_adapters.spam.F.0.weight", [16, 16], [Float](repeating: 0, count: 256)))
        }
        assertAdapterError("adapter_config.json", ["config.inv_adapter", "invertible"]) { _ = try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: nil) }
        // Without the weights (old task adapters), AdapterHub drops it, and so does the loader.
        try editTensors(dir.appendingPathComponent("adapter.safetensors")) { t in t.removeAll { $0.name.contains("invertible") } }
        XCTAssertNoThrow(try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: nil))
        // Unknown config names.
        try editJSON(dir.appendingPathComponent("adapter_config.json")) { $0["config"] = "seq_bn_inv" }
        assertAdapterError("adapter_config.json", ["seq_bn_inv"]) { _ = try Adapter.load(from: dir, encoder: cfg, expectedBaseSHA256: nil) }
        // Heads AdapterMix does not implement.
        for (k, v, needle) in [("use_pooler", true as Any, "use_pooler"), ("layers", 1 as Any, "layers"), ("activation_function", "relu" as Any, "activation_function"),
                               ("head_type", "multilabel_classification" as Any, "head_type")] {
            let (d, _) = try savedFolder(.lora)
            try editJSON(d.appendingPathComponent("head_config.json")) { top in
                var c = top["config"] as! [String: Any]; c[k] = v; top["config"] = c
            }
            assertAdapterError("head_config.json", ["config.\(needle)"]) { _ = try Adapter.load(from: d, encoder: cfg, expectedBaseSHA256: nil) }
        }
    }

    // MARK: PEFT

    struct PEFTCases: Decodable {
        struct Case: Decodable { var text: String; var ids: [Int]; var logits: [Float] }
        var labels: [String]
        var cases: [Case]
    }

    func testImportingRealPEFTGivesPEFTLogits() throws {
        let pre = try TestModels.tinyRoberta()
        let expected = try JSONDecoder().decode(PEFTCases.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("peft-tiny-roberta-logits.json")))
        let (adapter, info) = try importPEFT(from: Self.fixtures.appendingPathComponent("peft-tiny-roberta"), encoder: pre.model.config,
                                             modelDirectory: TestModels.root.appendingPathComponent("Tests/EncoderTests/Fixtures/tiny-roberta"),
                                             labels: expected.labels)
        XCTAssertEqual(adapter.config.method, .lora)
        XCTAssertEqual(adapter.config.loraRank, 4)
        XCTAssertEqual(adapter.config.loraAlpha, 8)
        XCTAssertEqual(adapter.config.loraTargets, ["query", "value"])
        XCTAssertEqual(adapter.labels, expected.labels)
        XCTAssertEqual(info.source, .peft)
        XCTAssertEqual(info.modelName, "Tests/EncoderTests/Fixtures/tiny-roberta")
        let encodings = try pre.encode(expected.cases.map(\.text))
        XCTAssertEqual(encodings.map(\.ids), expected.cases.map(\.ids), "tokenization differs from the fixture's")
        let got = try logits(pre.model, adapter, EncoderBatch(encodings, padId: pre.tokenizer.padId))
        let d = maxDiff(got, expected.cases.flatMap(\.logits))
        XCTAssertLessThan(d, 1e-5, "logits differ from PEFT's by \(d)")
        // Folded LoRA gives the same.
        let folded = try AdaptedEncoder(model: pre.model, adapter: adapter).foldingLoRA()
        let ws = AdaptedWorkspace()
        let out = folded.forward(EncoderBatch(encodings, padId: pre.tokenizer.padId), workspace: ws)
        XCTAssertLessThan(maxDiff(Array(UnsafeBufferPointer(start: out, count: got.count)), expected.cases.flatMap(\.logits)), 1e-5)
        withExtendedLifetime(ws) {}
    }

    func testPEFTExportReimportRoberta() throws {
        let pre = try TestModels.tinyRoberta()
        let cfg = pre.model.config
        let batch = try tinyBatch(pre)
        let (imported, _) = try importPEFT(from: Self.fixtures.appendingPathComponent("peft-tiny-roberta"), encoder: cfg, labels: ["a", "b", "c"])
        let dir = temp.appendingPathComponent("peft-out")
        try exportPEFT(imported, to: dir, encoder: cfg, baseModelName: "tiny-roberta")
        let config = try readJSON(dir.appendingPathComponent("adapter_config.json"))
        XCTAssertEqual(config["peft_type"] as? String, "LORA")
        XCTAssertEqual(config["task_type"] as? String, "SEQ_CLS")
        XCTAssertEqual(config["r"] as? Int, 4)
        XCTAssertEqual(config["lora_alpha"] as? Int, 8)
        XCTAssertEqual(config["target_modules"] as? [String], ["query", "value"])
        XCTAssertEqual(config["modules_to_save"] as? [String], ["classifier"])
        XCTAssertEqual(config["bias"] as? String, "none")
        // The same keys as PEFT's own file.
        XCTAssertEqual(try SafeTensorsFile(url: dir.appendingPathComponent("adapter_model.safetensors")).names,
                       try SafeTensorsFile(url: Self.fixtures.appendingPathComponent("peft-tiny-roberta/adapter_model.safetensors")).names)
        let (again, info) = try importPEFT(from: dir, encoder: cfg, labels: ["a", "b", "c"])
        XCTAssertEqual(info.modelName, "tiny-roberta")
        XCTAssertEqual(params(again), params(imported))
        XCTAssertEqual(try logits(pre.model, again, batch), try logits(pre.model, imported, batch))
        // A LoRA trained here, on query, key and value.
        let mine = randomAdapter(.lora, encoder: cfg, labels: ["x", "y"], targets: ["query", "key", "value"])
        try exportPEFT(mine, to: temp.appendingPathComponent("peft-qkv"), encoder: cfg)
        let back = try importPEFT(from: temp.appendingPathComponent("peft-qkv"), encoder: cfg, labels: ["x", "y"]).adapter
        XCTAssertEqual(back.config.loraTargets, ["query", "key", "value"])
        XCTAssertEqual(params(back), params(mine))
        XCTAssertEqual(try logits(pre.model, back, batch), try logits(pre.model, mine, batch))
        // Bottleneck adapters have no PEFT form.
        assertAdapterError("adapter_config.json", ["pfeiffer", "LoRA"]) {
            try exportPEFT(self.randomAdapter(.pfeiffer, encoder: cfg), to: self.temp.appendingPathComponent("no"), encoder: cfg)
        }
    }

    /// A tiny random BERT folder (config.json, model.safetensors with a pooler, `bert.` keys) and its model.
    func tinyBert(id2label: [String]? = nil) throws -> (dir: URL, model: EncoderModel, pooler: [Float]) {
        let cfg = EncoderConfig(modelType: .bert, vocabSize: 64, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 32,
                                maxPositionEmbeddings: 32, typeVocabSize: 2)
        let weights = EncoderWeights.random(config: cfg, seed: 11)
        let dir = temp.appendingPathComponent("tiny-bert")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var tensors: Tensors = EncoderWeights.parameterTable(cfg).map {
            ("bert." + $0.name, $0.shape, Array(UnsafeBufferPointer(start: weights.buffer.pointer($0.offset), count: $0.shape.reduce(1, *))))
        }
        var rng = SplitMix64(seed: 3)
        let pooler = (0..<(16 * 16 + 16)).map { _ in 0.3 * rng.nextGaussian() }
        tensors.append(("bert.pooler.dense.weight", [16, 16], Array(pooler[..<256])))
        tensors.append(("bert.pooler.dense.bias", [16], Array(pooler[256...])))
        try SafeTensorsFile.write(tensors, to: dir.appendingPathComponent("model.safetensors"))
        var json: [String: Any] = ["model_type": "bert", "vocab_size": 64, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                                   "intermediate_size": 32, "max_position_embeddings": 32, "type_vocab_size": 2, "hidden_act": "gelu"]
        if let id2label { json["id2label"] = Dictionary(uniqueKeysWithValues: id2label.enumerated().map { (String($0.offset), $0.element) }) }
        try writeJSON(json, dir.appendingPathComponent("config.json"))
        return (dir, EncoderModel(config: cfg, weights: weights), pooler)
    }

    func bertBatch() -> EncoderBatch {
        EncoderBatch([Encoding(ids: [2, 10, 11, 12, 3], typeIds: [0, 0, 0, 0, 0]), Encoding(ids: [2, 40, 3], typeIds: [0, 0, 0]),
                      Encoding(ids: [2, 5, 6, 7, 8, 9, 3], typeIds: [0, 0, 0, 1, 1, 1, 1])], padId: 0)
    }

    func testPEFTExportReimportBert() throws {
        let (modelDir, model, pooler) = try tinyBert(id2label: ["neg", "neu", "pos"])
        let cfg = model.config
        let adapter = randomAdapter(.lora, encoder: cfg, labels: ["neg", "neu", "pos"])
        let dir = temp.appendingPathComponent("peft-bert")
        try exportPEFT(adapter, to: dir, encoder: cfg)
        let config = try readJSON(dir.appendingPathComponent("adapter_config.json"))
        XCTAssertEqual(config["modules_to_save"] as? [String], ["classifier", "pooler"])
        let keys = try SafeTensorsFile(url: dir.appendingPathComponent("adapter_model.safetensors")).names
        for k in ["base_model.model.bert.pooler.dense.weight", "base_model.model.bert.pooler.dense.bias", "base_model.model.classifier.weight",
                  "base_model.model.classifier.bias", "base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight"] {
            XCTAssertTrue(keys.contains(k), k)
        }
        // Labels from the base model's id2label.
        let (again, _) = try importPEFT(from: dir, encoder: cfg, modelDirectory: modelDir)
        XCTAssertEqual(again.labels, ["neg", "neu", "pos"])
        XCTAssertEqual(params(again), params(adapter))
        XCTAssertEqual(try logits(model, again, bertBatch()), try logits(model, adapter, bertBatch()))
        // Without the pooler in the file (PEFT's default modules_to_save), it comes from the base model.
        try editTensors(dir.appendingPathComponent("adapter_model.safetensors")) { t in t.removeAll { $0.name.contains("pooler") } }
        let fromBase = try importPEFT(from: dir, encoder: cfg, modelDirectory: modelDir, labels: ["n", "u", "p"]).adapter
        let w1 = Array(UnsafeBufferPointer(start: fromBase.parameters.pointer(fromBase.layout.head.w1), count: 16 * 16 + 16))
        XCTAssertEqual(w1, pooler)
        assertAdapterError("adapter_model.safetensors", ["bert.pooler.dense.weight", "no base model folder"]) {
            _ = try importPEFT(from: dir, encoder: cfg, labels: ["n", "u", "p"])
        }
        try editTensors(modelDir.appendingPathComponent("model.safetensors")) { t in t.removeAll { $0.name.contains("pooler") } }
        assertAdapterError("model.safetensors", ["pooler.dense.weight", "no pooler"]) {
            _ = try importPEFT(from: dir, encoder: cfg, modelDirectory: modelDir, labels: ["n", "u", "p"])
        }
    }

    func testPEFTLabels() throws {
        let pre = try TestModels.tinyRoberta()
        let fixture = Self.fixtures.appendingPathComponent("peft-tiny-roberta")
        let model = TestModels.root.appendingPathComponent("Tests/EncoderTests/Fixtures/tiny-roberta")
        assertAdapterError("adapter_model.safetensors", ["base_model.model.classifier.out_proj.weight", "3 classes", "--labels"]) {
            _ = try importPEFT(from: fixture, encoder: pre.model.config, modelDirectory: model)
        }
        assertAdapterError("adapter_model.safetensors", ["classifier.out_proj.weight", "3 classes", "2 labels"]) {
            _ = try importPEFT(from: fixture, encoder: pre.model.config, labels: ["a", "b"])
        }
    }

    func testUnsupportedPEFTOptionsAreRejectedByName() throws {
        let pre = try TestModels.tinyRoberta()
        let cfg = pre.model.config
        let fixture = Self.fixtures.appendingPathComponent("peft-tiny-roberta")
        let labels = ["a", "b", "c"]
        let cases: [([String: Any], [String])] = [
            (["peft_type": "IA3"], ["peft_type", "IA3"]),
            (["task_type": "TOKEN_CLS"], ["task_type", "TOKEN_CLS"]),
            (["use_dora": true], ["use_dora", "DoRA"]),
            (["use_rslora": true], ["use_rslora"]),
            (["bias": "all"], ["bias", "all"]),
            (["lora_bias": true], ["lora_bias"]),
            (["fan_in_fan_out": true], ["fan_in_fan_out"]),
            (["rank_pattern": ["query": 8]], ["rank_pattern"]),
            (["alpha_pattern": ["value": 2]], ["alpha_pattern"]),
            (["layers_to_transform": [0]], ["layers_to_transform"]),
            (["exclude_modules": ["key"]], ["exclude_modules"]),
            (["target_modules": ["query", "dense"]], ["target_modules", "dense"]),
            (["target_modules": ".*attention.self.(query|value)"], ["target_modules", "regular expression"]),
            (["target_modules": "all-linear"], ["target_modules", "all-linear"]),
            (["init_lora_weights": "pissa"], ["init_lora_weights", "pissa"]),
            (["init_lora_weights": "olora"], ["init_lora_weights", "olora"]),
            (["modules_to_save": ["classifier", "embeddings"]], ["modules_to_save", "embeddings"]),
            (["trainable_token_indices": [1, 2]], ["trainable_token_indices"]),
            (["layer_replication": [[0, 2]]], ["layer_replication"]),
            (["r": 0], ["\"r\""]),
        ]
        for (change, needles) in cases {
            let dir = try copyFolder(fixture, "peft-bad")
            try editJSON(dir.appendingPathComponent("adapter_config.json")) { c in for (k, v) in change { c[k] = v } }
            assertAdapterError("adapter_config.json", needles) { _ = try importPEFT(from: dir, encoder: cfg, labels: labels) }
        }
        // Unknown keys are ignored, as PEFT does; init "gaussian" and false are fine.
        let ok = try copyFolder(fixture, "peft-ok")
        try editJSON(ok.appendingPathComponent("adapter_config.json")) { c in c["some_future_option"] = ["x": 1]; c["init_lora_weights"] = "gaussian" }
        XCTAssertNoThrow(try importPEFT(from: ok, encoder: cfg, labels: labels))
        // Tensors that are refused.
        let tensorCases: [(String, [Int], [String])] = [
            ("base_model.model.roberta.embeddings.word_embeddings.lora_embedding_A", [4, 512], ["embeddings.word_embeddings.lora_embedding_A", "embedding"]),
            ("base_model.model.roberta.encoder.layer.0.attention.self.query.lora_magnitude_vector", [32], ["lora_magnitude_vector", "DoRA"]),
            ("base_model.model.roberta.encoder.layer.0.attention.self.query.lora_B.bias", [32], ["query.lora_B.bias", "lora_bias"]),
            ("base_model.model.roberta.encoder.layer.0.attention.self.query.bias", [32], ["attention.self.query.bias", "bias"]),
            ("base_model.model.roberta.encoder.layer.0.attention.self.key.lora_A.weight", [4, 32], ["unexpected 1 tensor(s)", "key.lora_A.weight"]),
            ("base_model.model.roberta.encoder.layer.2.attention.self.query.lora_A.weight", [4, 32], ["layer.2.", "2 layers"]),
            ("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight", [4, 32], ["bert.encoder", "a bert model"]),
        ]
        for (name, shape, needles) in tensorCases {
            let dir = try copyFolder(fixture, "peft-bad-tensor")
            try editTensors(dir.appendingPathComponent("adapter_model.safetensors")) { t in
                t.append((name, shape, [Float](repeating: 0, count: shape.reduce(1, *))))
            }
            assertAdapterError("adapter_model.safetensors", needles) { _ = try importPEFT(from: dir, encoder: cfg, labels: labels) }
        }
        // Missing, wrongly shaped, non-finite.
        let dir = try copyFolder(fixture, "peft-missing")
        try editTensors(dir.appendingPathComponent("adapter_model.safetensors")) { t in t.removeAll { $0.name.hasSuffix("layer.1.attention.self.value.lora_A.weight") } }
        assertAdapterError("adapter_model.safetensors", ["missing 1 tensor(s)", "base_model.model.roberta.encoder.layer.1.attention.self.value.lora_A.weight"]) {
            _ = try importPEFT(from: dir, encoder: cfg, labels: labels)
        }
        let dir2 = try copyFolder(fixture, "peft-rank")
        try editJSON(dir2.appendingPathComponent("adapter_config.json")) { $0["r"] = 8 }
        assertAdapterError("adapter_model.safetensors", ["lora_A.weight", "[4, 32]", "[8, 32]", "r = 8"]) {
            _ = try importPEFT(from: dir2, encoder: cfg, labels: labels)
        }
        let dir3 = try copyFolder(fixture, "peft-nan")
        try editTensors(dir3.appendingPathComponent("adapter_model.safetensors")) { t in
            for i in t.indices where t[i].name == "base_model.model.classifier.dense.weight" { t[i].values[5] = .nan }
        }
        assertAdapterError("adapter_model.safetensors", ["base_model.model.classifier.dense.weight", "non-finite"]) {
            _ = try importPEFT(from: dir3, encoder: cfg, labels: labels)
        }
        var wide = cfg; wide.hiddenSize = 64
        assertAdapterError("adapter_model.safetensors", ["classifier.out_proj.weight", "[3, 32]"]) {
            _ = try importPEFT(from: fixture, encoder: wide, labels: labels)
        }
        let dir4 = try copyFolder(fixture, "peft-nohead")
        try editTensors(dir4.appendingPathComponent("adapter_model.safetensors")) { t in t.removeAll { $0.name.contains("classifier") } }
        assertAdapterError("adapter_model.safetensors", ["classifier", "SEQ_CLS"]) { _ = try importPEFT(from: dir4, encoder: cfg, labels: labels) }
        let dir5 = try copyFolder(fixture, "peft-bin")
        try FileManager.default.moveItem(at: dir5.appendingPathComponent("adapter_model.safetensors"), to: dir5.appendingPathComponent("adapter_model.bin"))
        assertAdapterError("adapter_model.bin", ["safe_serialization=True"]) { _ = try importPEFT(from: dir5, encoder: cfg, labels: labels) }
        // An AdapterHub folder given to the PEFT importer.
        let (hub, _) = try savedFolder(.lora)
        assertAdapterError("adapter_config.json", ["AdapterHub", "Adapter.load"]) { _ = try importPEFT(from: hub, encoder: cfg, labels: ["a", "b"]) }
    }
}
