import Adapters
import ArgumentParser
import Datasets
import Dispatch
import Encoder
import Foundation
import Sweep
import Tensor

/// `adaptermix bench sweep`: a fixed set of mixtures evaluated clean, in this process, by the
/// sweep's evaluator — mixtures/s, sequences/s and the share of time in each stage. The work:
/// the first `--mixtures` mixtures, in plan order, of the domains' exhaustive plan (targets in
/// sorted order), each on its target's first `--test` test examples. `bench/sweep_peer.py` does
/// the same work with PyTorch (merge by averaging, then length-sorted batches).
struct BenchSweep: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sweep", abstract: "Mixture evaluation throughput (the sweep's evaluator, clean).")

    @OptionGroup var threadOptions: ThreadOptions

    @Option(help: "Domains (their Pfeiffer adapters in --adapters; trained by bench/sweep.sh when missing).")
    var domains: String = "election-tweets,rotten-tomatoes,sms-spam,tweet-sentiment,bbc-news"

    @Option(help: ArgumentHelp("Adapter folder (<dir>/<domain>-pfeiffer).", valueName: "DIR"))
    var adapters: String = "out/demo/adapters"

    @Option(help: "Mixtures to evaluate.")
    var mixtures: Int = 64

    @Option(help: "Test examples per target.")
    var test: Int = 200

    @Option(name: .customLong("max-length")) var maxLength: Int = 64

    @Flag(name: .customLong("no-shared-prefix"), help: "Compute every mixture's embeddings and first layer again (the plain path).")
    var noSharedPrefix = false

    @Flag(name: .customLong("full-last-layer"), help: "Compute the last layer for every token (the plain path), not for the first tokens only.")
    var fullLastLayer = false

    @Flag(name: .customLong("no-pool"), help: "Evaluate one mixture at a time (threads wait at the end of each), not several in one pool of tasks.")
    var noPool = false

    @Option(help: "Adapter method: pfeiffer, houlsby or lora (folders <adapters>/<domain>-<method>).")
    var method: String = "pfeiffer"

    @Flag(name: .customLong("lora-fold"), help: "LoRA: fold each mixture into the base weights instead of the low-rank products per token.")
    var loraFold = false

    @Flag(help: "Print one JSON object.")
    var json = false

    @Option(help: ArgumentHelp("Write each mixture's per-example predictions as JSON lines (for comparing with the peer).", valueName: "FILE"))
    var predictions: String?

    func run() throws {
        try reportingErrors {
            let list = domains.split(separator: ",").map(String.init)
            guard let adapterMethod = AdapterMethod(rawValue: method) else { throw CLIError("--method must be pfeiffer, houlsby or lora") }
            let config = SweepConfig(baseModel: PretrainedEncoder.defaultModelDirectory().path, domains: list, adapterMethod: adapterMethod, adapterDir: adapters,
                                     conditions: [.clean], testCap: test, batchSize: 32, shardSize: 1 << 20, seed: 42, maxLength: maxLength)
            try config.checkArtifactsExist()
            let catalog = try DomainCatalog(assets: PretrainedEncoder.assetsDirectory())
            let artifacts = try ArtifactHashes.compute(for: config, catalog: catalog)
            let plan = try SweepPlan(config: config, artifacts: artifacts)
            let items = Array(plan.allItems().prefix(mixtures))
            let evaluator = try MixtureEvaluator(config: config, artifacts: artifacts, catalog: catalog, threads: threadOptions.threads, filesVerified: true)
            evaluator.sharePrefix = !noSharedPrefix
            evaluator.foldLoRA = loraFold
            evaluator.clsOnly = !fullLastLayer
            if noPool { evaluator.mixturesPerPool = 1 }
            // Outside the clock, as in the peer script: reading the adapter files and the test
            // examples. Inside: checking the splits' hashes, tokenising, merging, evaluating.
            try evaluator.preloadAdapters(list)
            var examples: [String: (labels: [String], examples: [Example])] = [:]
            for target in plan.targets {
                let s = try catalog.load(target, options: SplitOptions(seed: config.seed, maxTest: config.testCap(for: target)))
                examples[target] = (s.labels, s.test)
            }
            evaluator.testSplitProvider = { domain in
                guard let split = examples[domain] else { throw CLIError("bench sweep: no test split loaded for \(domain)") }
                return split
            }
            var timing = ShardTiming()
            var outcomes: [ItemOutcome] = []
            let start = DispatchTime.now().uptimeNanoseconds
            for target in plan.targets {
                let mine = items.filter { $0.target == target }
                guard !mine.isEmpty else { continue }
                let (o, t) = evaluator.evaluate(target: target, items: mine)
                outcomes += o
                timing.setup += t.setup; timing.merge += t.merge; timing.evaluate += t.evaluate
            }
            let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if let failed = outcomes.first(where: { $0.error != nil }) { throw CLIError("bench sweep: \(failed.error!)") }
            let sequences = outcomes.reduce(0) { $0 + $1.correctness.count }
            if let predictions {
                var out = ""
                for (item, o) in zip(items, outcomes) {
                    out += "{\"target\": \"\(item.target)\", \"members\": [\(item.members.map { "\"\($0)\"" }.joined(separator: ", "))], \"correct\": [\(o.correctness.map { $0 ? "1" : "0" }.joined(separator: ","))]}\n"
                }
                try out.write(toFile: predictions, atomically: true, encoding: .utf8)
            }
            let other = max(0, wall - timing.setup - timing.merge - timing.evaluate)
            let result: [String: Any] = [
                "engine": "adaptermix", "kernels": Elementwise.kernelName, "shared_prefix": !noSharedPrefix, "cls_only": !fullLastLayer, "pool": !noPool, "method": method, "lora_fold": loraFold, "threads": threadOptions.threads, "mixtures": items.count,
                "sequences": sequences, "seconds": wall, "mixtures_per_s": Double(items.count) / wall, "seq_per_s": Double(sequences) / wall,
                "setup_s": timing.setup, "merge_s": timing.merge, "evaluate_s": timing.evaluate, "other_s": other,
                "accuracy": Double(outcomes.reduce(0) { $0 + $1.correctness.filter { $0 }.count }) / Double(max(sequences, 1)),
            ]
            if json {
                let d = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
                print(String(decoding: d, as: UTF8.self))
            } else {
                print("adaptermix bench sweep — \(items.count) mixtures of \(list.count) domains, \(test) test examples each, clean, \(method), \(threadOptions.threads) thread(s), shared prefix \(noSharedPrefix ? "off" : "on"), last layer \(fullLastLayer ? "full" : "first tokens"), \(noPool ? "one mixture at a time" : "mixtures pooled"), \(Elementwise.kernelName) kernels\(method == "lora" ? ", LoRA \(loraFold ? "folded" : "unfolded")" : "")")
                print(String(format: "%.2f s: %.2f mixtures/s, %.0f sequences/s; time: setup (split hashes, tokenising, sign packs) %.1f%%, merge %.1f%%, encoder %.1f%%, other %.1f%%",
                             wall, Double(items.count) / wall, Double(sequences) / wall, 100 * timing.setup / wall, 100 * timing.merge / wall,
                             100 * timing.evaluate / wall, 100 * other / wall))
            }
        }
    }
}
