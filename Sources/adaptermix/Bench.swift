import ArgumentParser
import Dispatch
import Encoder
import Foundation
import Synchronization
import Tensor

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (figures, never pass/fail).",
        subcommands: [BenchEncoder.self, BenchFSD.self, BenchSweep.self])
}

/// `adaptermix bench encoder`: throughput of the encoder on (a) 32 × 128 fixed tokens and (b) 512
/// real SMS messages in length-sorted dynamic batches, beside the sgemm rate on the model's own
/// GEMM shapes measured in the same run. `bench/peer.sh` runs the same work on ONNX Runtime and PyTorch.
struct BenchEncoder: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "encoder", abstract: "Encoder throughput against the BLAS ceiling.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var threadOptions: ThreadOptions

    @Option(help: "Seconds to repeat each measurement for (after one warm-up).")
    var seconds: Double = 2

    @Option(name: .customLong("batch-size"), help: "Sequences per batch.")
    var batchSize: Int = 32

    @Option(help: "Corpus: a tab-separated label<TAB>text file; the first 512 texts are used. Default: the packaged SMS corpus.")
    var corpus: String?

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Flag(help: "Pad every batch to its longest sequence instead of packing real tokens (what the peers compute).")
    var padded = false

    @Flag(help: "Also print the share of forward time per stage (a pass with timers on).")
    var profile = false

    func run() throws {
        do { try measure() } catch let e as CustomStringConvertible & Error { throw CLIError(e.description) }
    }

    private func measure() throws {
        let pretrained = try modelOptions.load()
        let model = pretrained.model, config = model.config
        let threads = threadOptions.threads
        let runner = EncoderRunner(model: model, threads: threads, batchSize: batchSize, packed: !padded)
        let corpusPath = corpus ?? PretrainedEncoder.assetsDirectory().appendingPathComponent("sms-spam.tsv").path
        let texts = try readLines(corpusPath).prefix(512).map { line -> String in
            guard let tab = line.firstIndex(of: "\t") else { return line }
            return String(line[line.index(after: tab)...])
        }
        guard texts.count == 512 else { throw CLIError("\(corpusPath): needs at least 512 lines, has \(texts.count) — run 'make setup'") }
        let padId = pretrained.tokenizer.padId

        // (a) 32 × 128: the corpus joined and tokenized once, cut into 32 rows of 126 ids, each wrapped in [CLS] … [SEP].
        let joined = try pretrained.tokenizer.encode(texts.joined(separator: " "), maxLength: Int.max)
        let body = Array(joined.ids.dropFirst().dropLast())
        let cls = joined.ids.first!, sep = joined.ids.last!
        let seqLen = min(128, config.maxSequenceLength)
        guard body.count >= 32 * (seqLen - 2) else { throw CLIError("\(corpusPath): too little text for 32 × \(seqLen) tokens") }
        let fixed = (0..<32).map { r in
            Encoding(ids: [cls] + Array(body[(r * (seqLen - 2))..<((r + 1) * (seqLen - 2))]) + [sep],
                     typeIds: [Int](repeating: 0, count: seqLen), tokens: [])
        }
        // (b) the 512 texts with the tokenizer's own truncation.
        let encodings = try pretrained.encode(texts)
        let corpusTokens = encodings.map(\.ids.count)

        let ceiling = sgemmCeiling(config: config, rowsPerThread: 16 * seqLen, threads: threads)
        let a = try timeRepeated(runner: runner, encodings: fixed, padId: padId)
        let b = try timeRepeated(runner: runner, encodings: encodings, padId: padId)
        let flopsA = model.flops(lengths: fixed.map(\.ids.count)), flopsB = model.flops(lengths: corpusTokens)

        func stats(_ r: (passes: Int, seconds: Double), seqs: Int, tokens: Int, flops: Double) -> [String: Double] {
            ["sequences": Double(seqs * r.passes), "seconds": r.seconds,
             "seq_per_s": Double(seqs * r.passes) / r.seconds, "tok_per_s": Double(tokens * r.passes) / r.seconds,
             "gflops": flops * Double(r.passes) / r.seconds / 1e9]
        }
        let sa = stats(a, seqs: 32, tokens: 32 * seqLen, flops: flopsA)
        let sb = stats(b, seqs: 512, tokens: corpusTokens.reduce(0, +), flops: flopsB)
        let meanTokens = Double(corpusTokens.reduce(0, +)) / 512
        if json {
            func obj(_ d: [String: Double], _ extra: String) -> String {
                "{\(extra)" + d.keys.sorted().map { "\"\($0)\":\(d[$0]!)" }.joined(separator: ",") + "}"
            }
            print("{\"engine\":\"adaptermix\",\"threads\":\(threads),\"layout\":\"\(padded ? "padded" : "packed")\","
                  + "\"fixed\":\(obj(sa, "\"batch\":32,\"seq_len\":\(seqLen),")),"
                  + "\"corpus\":\(obj(sb, "\"sentences\":512,\"tokens\":\(corpusTokens.reduce(0, +)),\"mean_tokens\":\(meanTokens),\"batch\":\(batchSize),")),"
                  + "\"sgemm_gflops\":\(ceiling)}")
        } else {
            print("adaptermix bench encoder — \(pretrained.directory.lastPathComponent) (\(config.modelType.rawValue), L=\(config.numHiddenLayers), C=\(config.hiddenSize)), \(threads) thread(s), \(padded ? "padded" : "packed") batches of \(batchSize)")
            print("OpenBLAS: \(BLAS.configDescription)")
            print(String(format: "sgemm on the model's GEMM shapes: %.1f GFLOP/s", ceiling))
            print(String(format: "(a) 32 × %d fixed     : %8.1f seq/s %10.0f tok/s %7.1f GFLOP/s  (%.0f%% of sgemm)",
                         seqLen, sa["seq_per_s"]!, sa["tok_per_s"]!, sa["gflops"]!, 100 * sa["gflops"]! / ceiling))
            print(String(format: "(b) 512 SMS, mean %.1f tok: %8.1f seq/s %10.0f tok/s %7.1f GFLOP/s  (%.0f%% of sgemm)",
                         meanTokens, sb["seq_per_s"]!, sb["tok_per_s"]!, sb["gflops"]!, 100 * sb["gflops"]! / ceiling))
            if profile {
                try printProfile(runner, fixed, padId: padId, label: "(a)")
                try printProfile(runner, encodings, padId: padId, label: "(b)")
            }
        }
    }

    private func printProfile(_ runner: EncoderRunner, _ encodings: [Encoding], padId: Int, label: String) throws {
        let p = StageProfile()
        for _ in 0..<3 { try runner.run(encodings, padId: padId, profile: p) { _, _, _ in } }
        let total = Double(p.nanoseconds.reduce(0, +))
        let parts = StageProfile.Stage.allCases.map { String(format: "%@ %.1f%%", "\($0)", 100 * Double(p.nanoseconds[$0.rawValue]) / total) }
        print("    \(label) stages: " + parts.joined(separator: ", "))
    }

    /// One warm-up pass, then whole passes until `seconds` have elapsed.
    private func timeRepeated(runner: EncoderRunner, encodings: [Encoding], padId: Int) throws -> (passes: Int, seconds: Double) {
        _ = try runner.embed(encodings, padId: padId, pooling: .mean, normalize: false)
        let start = DispatchTime.now().uptimeNanoseconds
        var passes = 0
        var elapsed = 0.0
        repeat {
            _ = try runner.embed(encodings, padId: padId, pooling: .mean, normalize: false)
            passes += 1
            elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        } while elapsed < seconds
        return (passes, elapsed)
    }

    /// The sgemm rate on the encoder's four linear-layer shapes, every thread running its own
    /// single-threaded GEMMs at once (as the encoder does).
    private func sgemmCeiling(config: EncoderConfig, rowsPerThread n: Int, threads: Int) -> Double {
        let C = config.hiddenSize, F = config.intermediateSize
        let shapes = [(C, 3 * C), (C, C), (C, F), (F, C)]  // (inDim, outDim)
        let passes = Atomic<Int>(0)
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 0.5e9)
        let start = DispatchTime.now().uptimeNanoseconds
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            let a = UnsafeMutablePointer<Float>.allocate(capacity: n * F); a.initialize(repeating: 0.01, count: n * F)
            let w = UnsafeMutablePointer<Float>.allocate(capacity: F * 3 * C); w.initialize(repeating: 0.02, count: F * 3 * C)
            let o = UnsafeMutablePointer<Float>.allocate(capacity: n * F)
            defer { a.deallocate(); w.deallocate(); o.deallocate() }
            while DispatchTime.now().uptimeNanoseconds < deadline {
                for (k, m) in shapes {
                    sgemm(o, ldc: m, a, lda: k, transA: false, w, ldb: k, transB: true, m: n, n: m, k: k)
                }
                passes.add(1, ordering: .relaxed)
            }
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let perPass = shapes.reduce(0.0) { $0 + 2 * Double(n) * Double($1.0) * Double($1.1) }
        return Double(passes.load(ordering: .relaxed)) * perPass / elapsed / 1e9
    }
}
