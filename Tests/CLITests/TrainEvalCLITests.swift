import Foundation
import XCTest

/// `adaptermix train` then `eval` end to end on the tiny RoBERTa (fast), and their error paths.
final class TrainEvalCLITests: XCTestCase {
    static let tiny = CLITests.root.appendingPathComponent("Tests/EncoderTests/Fixtures/tiny-roberta").path

    func testTrainThenEvalWithFGSMAndPredictions() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("adaptermix-train-\(UUID().uuidString)")
        let t = try CLITests.run(["train", "--model", Self.tiny, "--domain", "sms-spam", "--method", "houlsby", "--bottleneck", "8",
                                  "--max-train", "96", "--max-validation", "32", "--epochs", "1", "--batch-size", "16",
                                  "--max-length", "32", "--out", dir.path, "--quiet"])
        XCTAssertEqual(t.status, 0, t.stderr)
        for f in ["adapter_config.json", "adapter.safetensors", "head_config.json", "model_head.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(f).path), f)
        }
        let preds = dir.appendingPathComponent("predictions.jsonl")
        let e = try CLITests.run(["eval", "--model", Self.tiny, "--adapter", dir.path, "--domain", "sms-spam", "--max-test", "40",
                                  "--attack", "fgsm", "--format", "json", "--predictions", preds.path])
        XCTAssertEqual(e.status, 0, e.stderr)
        let r = try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(r["n"] as? Int, 40)
        for k in ["accuracy", "macro_f1", "adversarial_accuracy", "majority_accuracy"] { XCTAssertNotNil(r[k] as? Double, k) }
        let lines = try String(contentsOf: preds, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 40)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        XCTAssertEqual((first["logits"] as? [Double])?.count, 2)
        XCTAssertNotNil(first["prediction"] as? String)

        // --data: a user's JSON-lines file in the shape `data export` writes gives the same figures.
        let exported = try CLITests.run(["data", "export", "sms-spam", "--split", "test", "--max-test", "40"])
        let file = dir.appendingPathComponent("test.jsonl")
        try exported.stdout.write(to: file, atomically: true, encoding: .utf8)
        let d = try CLITests.run(["eval", "--model", Self.tiny, "--adapter", dir.path, "--data", file.path, "--format", "json"])
        XCTAssertEqual(d.status, 0, d.stderr)
        let rd = try JSONSerialization.jsonObject(with: Data(d.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(rd["n"] as? Int, 40)
        XCTAssertEqual(rd["accuracy"] as? Double, r["accuracy"] as? Double)

        // TextFooler: accuracy under attack counts the examples the attack failed on; the predictions
        // file carries each example's outcome. (The tiny model as sentence encoder keeps it fast.)
        let tf = try CLITests.run(["eval", "--model", Self.tiny, "--adapter", dir.path, "--domain", "sms-spam", "--max-test", "4",
                                   "--max-length", "32", "--attack", "textfooler", "--sentence-model", Self.tiny, "--format", "json",
                                   "--predictions", preds.path])
        XCTAssertEqual(tf.status, 0, tf.stderr)
        let rt = try JSONSerialization.jsonObject(with: Data(tf.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(rt["attack"] as? String, "textfooler")
        let (skipped, succeeded, failed) = (rt["skipped"] as! Int, rt["succeeded"] as! Int, rt["failed"] as! Int)
        XCTAssertEqual(skipped + succeeded + failed, 4)
        XCTAssertEqual(rt["adversarial_accuracy"] as! Double, Double(failed) / 4, accuracy: 1e-12)
        for k in ["attack_success_rate", "mean_perturbed_word_fraction", "mean_queries", "examples_per_second", "queries_per_second"] {
            XCTAssertNotNil(rt[k] as? Double, k)
        }
        let attacked = try String(contentsOf: preds, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        XCTAssertEqual(attacked.count, 4)
        XCTAssertEqual(attacked.filter { ($0["attack"] as? [String: Any])?["status"] as? String == "failed" }.count, failed)

        // The head's labels must match the domain's.
        let wrong = try CLITests.run(["eval", "--model", Self.tiny, "--adapter", dir.path, "--domain", "election-tweets", "--max-test", "8"])
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.stderr.contains("labels"), wrong.stderr)
        // An adapter trained on another base model is refused, naming the file.
        let other = try CLITests.run(["eval", "--adapter", dir.path, "--domain", "sms-spam", "--max-test", "8"])
        XCTAssertNotEqual(other.status, 0)
        XCTAssertTrue(other.stderr.contains("adapter_config.json") || other.stderr.contains("adapter.safetensors"), other.stderr)
    }

    func testBadTrainConfigIsOneClearError() throws {
        let cfg = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).yaml")
        try "epochs: 2\nlearning_rat: 0.1\n".write(to: cfg, atomically: true, encoding: .utf8)
        let r = try CLITests.run(["train", "--model", Self.tiny, "--domain", "sms-spam", "--method", "lora", "--config", cfg.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains(cfg.lastPathComponent) && r.stderr.contains("learning_rat"), r.stderr)
        let m = try CLITests.run(["train", "--domain", "sms-spam", "--method", "adapterfusion"])
        XCTAssertNotEqual(m.status, 0)
        XCTAssertTrue(m.stderr.contains("pfeiffer, houlsby or lora"), m.stderr)
    }
}

extension TrainEvalCLITests {
    /// A PEFT LoRA folder (made by the real PEFT library) evaluates directly; its classes take the domain's labels.
    func testEvalAcceptsAPEFTFolder() throws {
        let peft = CLITests.root.appendingPathComponent("Tests/AdaptersTests/Fixtures/peft-tiny-roberta").path
        let r = try CLITests.run(["eval", "--model", Self.tiny, "--adapter", peft, "--domain", "nyt-editorials", "--max-test", "12", "--format", "json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(obj["n"] as? Int, 12)
        XCTAssertEqual(obj["method"] as? String, "lora")
    }
}
