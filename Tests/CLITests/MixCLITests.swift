import Foundation
import XCTest

/// `adaptermix fsd`, `mix` and `prune` end to end on adapters trained here on the tiny RoBERTa (fast).
final class MixCLITests: XCTestCase {
    static let tiny = CLITests.root.appendingPathComponent("Tests/EncoderTests/Fixtures/tiny-roberta").path
    static let peft = CLITests.root.appendingPathComponent("Tests/AdaptersTests/Fixtures/peft-tiny-roberta").path

    struct Trained: Sendable {
        var dir: String
        var pfeiffer1: String, pfeiffer2: String, houlsby: String, lora: String
    }

    /// Four small adapters trained once for the whole class (a few seconds each).
    static let trained: Result<Trained, Error> = Result {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("adaptermix-mix-\(UUID().uuidString)").path
        func train(_ name: String, _ method: String, _ extra: [String]) throws -> String {
            let out = dir + "/" + name
            let r = try CLITests.run(["train", "--model", tiny, "--domain", "sms-spam", "--method", method, "--max-train", "64",
                                      "--max-validation", "16", "--epochs", "1", "--max-length", "32", "--out", out, "--quiet"] + extra)
            guard r.status == 0 else { throw NSError(domain: "train", code: Int(r.status), userInfo: [NSLocalizedDescriptionKey: r.stderr]) }
            return out
        }
        return Trained(dir: dir,
                       pfeiffer1: try train("spam-a", "pfeiffer", ["--bottleneck", "8"]),
                       pfeiffer2: try train("spam-b", "pfeiffer", ["--bottleneck", "8", "--seed", "7"]),
                       houlsby: try train("spam-h", "houlsby", ["--bottleneck", "8"]),
                       lora: try train("spam-l", "lora", ["--lora-r", "4", "--lora-alpha", "8"]))
    }

    func folders() throws -> Trained { try Self.trained.get() }

    override class func tearDown() {
        if case .success(let t) = trained { try? FileManager.default.removeItem(atPath: t.dir) }
        super.tearDown()
    }

    func out(_ name: String) throws -> String { try folders().dir + "/" + name }

    func run(_ args: [String]) throws -> CLITests.Result { try CLITests.run(args) }

    func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    func config(_ dir: String) throws -> [String: Any] {
        try json(String(contentsOfFile: dir + "/adapter_config.json", encoding: .utf8))
    }

    /// eval on a few sms-spam test examples succeeds and gives an accuracy.
    func assertEvalAccepts(_ dir: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let e = try run(["eval", "--model", Self.tiny, "--adapter", dir, "--domain", "sms-spam", "--max-test", "16", "--format", "json"])
        XCTAssertEqual(e.status, 0, e.stderr, file: file, line: line)
        if e.status == 0 { XCTAssertNotNil(try json(e.stdout)["accuracy"] as? Double, file: file, line: line) }
    }

    // MARK: fsd

    func testFSDJSONCSVAndTable() throws {
        let t = try folders()
        let r = try run(["fsd", "--model", Self.tiny, t.pfeiffer1, t.pfeiffer2, t.pfeiffer1, "--format", "json", "--per-layer"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try json(r.stdout)
        XCTAssertEqual(j["adapters"] as? [String], [t.pfeiffer1, t.pfeiffer2, t.pfeiffer1], "repeated folder names fall back to the paths")
        let m = try XCTUnwrap(j["matrix"] as? [[Double]])
        XCTAssertEqual(m.count, 3)
        for i in 0..<3 {
            XCTAssertEqual(m[i].count, 3)
            XCTAssertEqual(m[i][i], 0)
            for k in 0..<3 { XCTAssertEqual(m[i][k], m[k][i]); XCTAssertTrue((0...1).contains(m[i][k])) }
        }
        XCTAssertEqual(m[0][2], 0, "an adapter against itself")
        XCTAssertGreaterThan(m[0][1], 0.05, "two seeds give different adapters")
        let layers = try XCTUnwrap(j["layers"] as? [[String: Any]])
        XCTAssertEqual(layers.count, 2)
        XCTAssertEqual(layers.compactMap { $0["parameters"] as? Int }.reduce(0, +), j["parameters"] as? Int)

        let plain = try json(try run(["fsd", "--model", Self.tiny, t.pfeiffer1, t.pfeiffer2, "--format", "json"]).stdout)
        XCTAssertEqual(plain["adapters"] as? [String], ["spam-a", "spam-b"])
        XCTAssertNil(plain["layers"])

        let csv = try run(["fsd", "--model", Self.tiny, t.pfeiffer1, t.pfeiffer2, "--format", "csv", "--per-layer"])
        XCTAssertEqual(csv.status, 0, csv.stderr)
        let lines = csv.stdout.split(separator: "\n")
        XCTAssertEqual(lines.first, "layer,adapter,spam-a,spam-b")
        XCTAssertEqual(lines.count, 1 + 2 * 3)
        let table = try run(["fsd", "--model", Self.tiny, t.pfeiffer1, t.pfeiffer2])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains("mean") && table.stdout.contains("spam-b"), table.stdout)
    }

    // MARK: mix

    func testMixStrategiesWriteFoldersThatEvalAccepts() throws {
        let t = try folders()
        let members = t.pfeiffer1 + "," + t.pfeiffer2
        let cases: [(String, [String])] = [
            ("average", []),
            ("weighted", ["--weights", "1,3"]),
            ("greedy-target", ["--l", "2"]),
            ("greedy-min", ["--l", "1"]),
            ("sparse", ["--prune-layers", "1", "--sparsity", "0.9"]),
            ("task-arithmetic", ["--lambda", "0.5"]),
            ("ties", ["--density", "0.5", "--scope", "layer"]),
            ("dare", ["--p", "0.3", "--seed", "3", "--lambda", "0.5"]),
            ("dare-ties", ["--p", "0.3", "--seed", "3"]),
        ]
        for (strategy, extra) in cases {
            let dir = try out("mix-\(strategy)")
            let r = try run(["mix", "--model", Self.tiny, "--strategy", strategy, "--target", t.pfeiffer1, "--members", members, "--out", dir] + extra)
            XCTAssertEqual(r.status, 0, "\(strategy): \(r.stderr)")
            guard r.status == 0 else { continue }
            XCTAssertTrue(r.stdout.contains("weights changing direction"), r.stdout)
            try assertEvalAccepts(dir)
            let block = try XCTUnwrap(try config(dir)["adaptermix"] as? [String: Any])
            let training = try XCTUnwrap(block["training"] as? [String: Any])
            XCTAssertEqual(training["strategy"] as? String, strategy)
            XCTAssertEqual(training["members"] as? [String], [t.pfeiffer1, t.pfeiffer2])
            XCTAssertEqual(training["target"] as? String, t.pfeiffer1)
            XCTAssertNotNil(training["weights_changing_direction"] as? Double)
            XCTAssertEqual(block["domain"] as? String, "sms-spam")
            // The mixture is an adapter like the others: fsd compares it with its members.
            let f = try run(["fsd", "--model", Self.tiny, t.pfeiffer1, dir, "--format", "json"])
            XCTAssertEqual(f.status, 0, f.stderr)
        }
        // Recorded parameters.
        let ties = try XCTUnwrap((try config(try out("mix-ties"))["adaptermix"] as? [String: Any])?["training"] as? [String: Any])
        XCTAssertEqual(ties["density"] as? Double, 0.5)
        XCTAssertEqual(ties["trim_scope"] as? String, "layer")
        let dare = try XCTUnwrap((try config(try out("mix-dare"))["adaptermix"] as? [String: Any])?["training"] as? [String: Any])
        XCTAssertEqual(dare["seed"] as? Int, 3)
        XCTAssertEqual(dare["p"] as? Double, 0.3)
        // One member, averaged: the target's folder again (same body bits, same head).
        let one = try out("mix-one")
        XCTAssertEqual(try run(["mix", "--model", Self.tiny, "--strategy", "average", "--target", t.pfeiffer1, "--members", t.pfeiffer1, "--out", one]).status, 0)
        let same = try json(try run(["fsd", "--model", Self.tiny, t.pfeiffer1, one, "--format", "json"]).stdout)
        XCTAssertEqual((same["matrix"] as? [[Double]])?[0][1], 0)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: one + "/adapter.safetensors")),
                       try Data(contentsOf: URL(fileURLWithPath: t.pfeiffer1 + "/adapter.safetensors")))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: one + "/model_head.safetensors")),
                       try Data(contentsOf: URL(fileURLWithPath: t.pfeiffer1 + "/model_head.safetensors")))
    }

    /// `mix --similarity`: AdapterSoup's selection by a similarity matrix, adapters matched by the
    /// domain in their config (relabelled copies here), then averaged.
    func testMixSelectsBySimilarity() throws {
        let f = try folders()
        // Copies of the same adapter, each claiming another domain.
        var copies: [String] = []
        for (i, d) in ["d1", "d2", "d3", "d4"].enumerated() {
            let dir = try out("sim-\(d)")
            try? FileManager.default.removeItem(atPath: dir)
            try FileManager.default.copyItem(atPath: i % 2 == 0 ? f.pfeiffer1 : f.pfeiffer2, toPath: dir)
            let cfgURL = URL(fileURLWithPath: dir + "/adapter_config.json")
            var cfg = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: cfgURL)) as? [String: Any])
            var block = try XCTUnwrap(cfg["adaptermix"] as? [String: Any])
            block["domain"] = d
            cfg["adaptermix"] = block
            try JSONSerialization.data(withJSONObject: cfg).write(to: cfgURL)
            copies.append(dir)
        }
        // Similarity to d1: d3 0.8, d4 0.5, d2 0.1.
        let simFile = try out("sim.json")
        try JSONSerialization.data(withJSONObject: ["domains": ["d1", "d2", "d3", "d4"],
                                                    "cosine": [[1, 0.1, 0.8, 0.5], [0.1, 1, 0.2, 0.3], [0.8, 0.2, 1, 0.4], [0.5, 0.3, 0.4, 1]]])
            .write(to: URL(fileURLWithPath: simFile))
        let r = try run(["mix", "--model", Self.tiny, "--strategy", "average", "--target", copies[0], "--members", copies.joined(separator: ","),
                         "--similarity", simFile, "--l", "3", "--out", try out("mix-sim")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("selected by similarity to d1: d1 (1.000), d3 (0.800), d4 (0.500)"), r.stdout)
        XCTAssertTrue(r.stdout.contains("mixed 3 adapter(s)"), r.stdout)
        try assertEvalAccepts(try out("mix-sim"))
        // A domain the matrix does not know is named.
        let bad = try run(["mix", "--model", Self.tiny, "--strategy", "average", "--target", f.pfeiffer1, "--members", copies[1],
                           "--similarity", simFile, "--l", "2", "--out", try out("mix-sim-bad")])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("its domain 'sms-spam' is not in"), bad.stderr)
    }

    func testMixRefusesIncompatibleAdaptersNamingTheFolders() throws {
        let t = try folders()
        let r = try run(["mix", "--model", Self.tiny, "--strategy", "average", "--target", t.pfeiffer1, "--members", t.pfeiffer1 + "," + t.houlsby,
                         "--out", try out("refused")])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains(t.pfeiffer1) && r.stderr.contains(t.houlsby) && r.stderr.contains("methods"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: try out("refused")))
        // Another base model recorded in a copy's config.
        let copy = try out("other-base")
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: t.pfeiffer2, toPath: copy)
        let cfgURL = URL(fileURLWithPath: copy + "/adapter_config.json")
        let text = try String(contentsOf: cfgURL, encoding: .utf8)
        let sha = try XCTUnwrap((try config(copy)["adaptermix"] as? [String: Any])?["base_model_sha256"] as? String)
        try text.replacingOccurrences(of: sha, with: String(repeating: "0", count: 64)).write(to: cfgURL, atomically: true, encoding: .utf8)
        let b = try run(["fsd", "--model", Self.tiny, t.pfeiffer1, copy])
        XCTAssertNotEqual(b.status, 0)
        XCTAssertTrue(b.stderr.contains(t.pfeiffer1) && b.stderr.contains(copy) && b.stderr.contains("base model"), b.stderr)
        // Options that do not belong to the strategy, and bad values.
        let wrong = try run(["mix", "--model", Self.tiny, "--strategy", "average", "--target", t.pfeiffer1, "--members", t.pfeiffer2, "--density", "0.3", "--out", try out("x")])
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.stderr.contains("--density"), wrong.stderr)
        let bad = try run(["mix", "--model", Self.tiny, "--strategy", "soup", "--target", t.pfeiffer1, "--members", t.pfeiffer2, "--out", try out("x")])
        XCTAssertTrue(bad.stderr.contains("greedy-target"), bad.stderr)
        let over = try run(["mix", "--model", Self.tiny, "--strategy", "average", "--target", t.pfeiffer1, "--members", t.pfeiffer2, "--out", t.pfeiffer2])
        XCTAssertNotEqual(over.status, 0)
        XCTAssertTrue(over.stderr.contains("--out"), over.stderr)
    }

    // MARK: prune

    func testPruneWritesAFolderThatEvalAccepts() throws {
        let t = try folders()
        for scope in ["adapter", "layer", "tensor"] {
            let dir = try out("pruned-\(scope)")
            let r = try run(["prune", "--model", Self.tiny, t.houlsby, "--sparsity", "0.9", "--scope", scope, "--out", dir])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("zeroed"), r.stdout)
            try assertEvalAccepts(dir)
        }
        // Houlsby, bottleneck 8, hidden 32, 2 layers: 2 × 2 × (2·8·32 + 8 + 32) = 2,208 body weights; round(0.9 · 2208) = 1987 zeroed.
        let r = try run(["prune", "--model", Self.tiny, t.houlsby, "--sparsity", "0.9", "--out", try out("pruned-count")])
        XCTAssertTrue(r.stdout.contains("zeroed 1987 of 2208"), r.stdout)
        let training = try XCTUnwrap((try config(try out("pruned-count"))["adaptermix"] as? [String: Any])?["training"] as? [String: Any])
        XCTAssertEqual(training["scope"] as? String, "adapter")
        XCTAssertEqual(training["sparsity"] as? Double, 0.9)
    }

    // MARK: PEFT

    func testPEFTFoldersWorkWithFSDMixAndPrune() throws {
        let t = try folders()
        let f = try run(["fsd", "--model", Self.tiny, Self.peft, t.lora, "--format", "json"])
        XCTAssertEqual(f.status, 0, f.stderr)
        let m = try XCTUnwrap(try json(f.stdout)["matrix"] as? [[Double]])
        XCTAssertGreaterThan(m[0][1], 0)
        for mode in ["separate", "delta", "delta-svd"] {
            let dir = try out("mix-peft-\(mode)")
            let r = try run(["mix", "--model", Self.tiny, "--strategy", "average", "--target", t.lora, "--members", Self.peft + "," + t.lora,
                             "--lora-mode", mode, "--out", dir])
            XCTAssertEqual(r.status, 0, "\(mode): \(r.stderr)")
            try assertEvalAccepts(dir)
            let block = try XCTUnwrap(try config(dir)["adaptermix"] as? [String: Any])
            XCTAssertEqual(block["lora_r"] as? Int, mode == "delta" ? 8 : 4)
        }
        // A PEFT target needs class names for eval; --labels gives them.
        let dir = try out("mix-peft-target")
        let r = try run(["mix", "--model", Self.tiny, "--strategy", "weighted", "--weights", "1,1", "--target", Self.peft, "--members", Self.peft + "," + t.lora,
                         "--labels", "x,y,z", "--out", dir])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual((try config(dir)["adaptermix"] as? [String: Any])?["labels"] as? [String], ["x", "y", "z"])
        let pruned = try out("pruned-peft")
        let p = try run(["prune", "--model", Self.tiny, Self.peft, "--sparsity", "0.5", "--scope", "tensor", "--out", pruned])
        XCTAssertEqual(p.status, 0, p.stderr)
        let back = try run(["fsd", "--model", Self.tiny, Self.peft, pruned, "--format", "json"])
        XCTAssertEqual(back.status, 0, back.stderr)
        XCTAssertEqual((try json(back.stdout)["matrix"] as? [[Double]])?[0][1], 0, "pruning never flips a sign")
        XCTAssertEqual((try config(pruned)["adaptermix"] as? [String: Any])?["labels"] as? [String], ["LABEL_0", "LABEL_1", "LABEL_2"])
    }
}
