import Adapters
import ArgumentParser
import Dispatch
import Encoder
import Foundation
import Tensor

/// `adaptermix bench fsd`: the FSD matrix of k generated adapters, by default 13 RoBERTa-large-sized
/// Houlsby adapters (hidden 1024, 24 layers, bottleneck 64: 24 × 2 × (2·64·1024 + 64 + 1024) =
/// 6,343,680 body parameters each), in parameter-pairs per second.
struct BenchFSD: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fsd", abstract: "FSD matrix speed on generated adapters, in parameter-pairs per second.")

    @OptionGroup var threadOptions: ThreadOptions

    @Option(help: "Number of adapters (k).") var adapters: Int = 13
    @Option(help: "Hidden size.") var hidden: Int = 1024
    @Option(help: "Encoder layers.") var layers: Int = 24
    @Option(help: "Bottleneck size.") var bottleneck: Int = 64
    @Option(help: "pfeiffer, houlsby or lora.") var method: String = "houlsby"
    @Option(help: "Timed repetitions (the best is reported).") var repeats: Int = 5
    @Flag(help: "Print one JSON object instead of text.") var json = false

    func validate() throws {
        guard adapters >= 2, hidden >= 1, layers >= 1, bottleneck >= 1, repeats >= 1 else {
            throw ValidationError("--adapters must be at least 2; sizes and --repeats at least 1")
        }
        guard AdapterMethod(rawValue: method) != nil else { throw ValidationError("--method must be pfeiffer, houlsby or lora") }
    }

    func run() throws {
        let encoder = EncoderConfig(modelType: .roberta, vocabSize: 1, hiddenSize: hidden, numHiddenLayers: layers, numAttentionHeads: 1,
                                    intermediateSize: 4 * hidden, maxPositionEmbeddings: 514, typeVocabSize: 1)
        let config = AdapterConfig(method: AdapterMethod(rawValue: method)!, bottleneck: bottleneck)
        let layout = AdapterLayout(config: config, encoder: encoder, classes: 2)
        let n = layout.bodyCount, k = adapters, threads = threadOptions.threads
        // Seeded values: Gaussian-like signs and magnitudes, about 1 in 50 exactly zero (the non-zero mask matters).
        let generated = (0..<k).map { i -> Adapter in
            let p = ParameterBuffer(count: layout.count)
            var rng = SplitMix64(seed: 1000 + UInt64(i))
            for j in 0..<n {
                let u = rng.next()
                p.base[j] = u % 50 == 0 ? 0 : Float(Int32(truncatingIfNeeded: u >> 32)) * 0x1p-36
            }
            return Adapter(layout: layout, labels: ["a", "b"], parameters: p)
        }
        let pairs = Double(k * (k - 1) / 2) * Double(n)
        var bestTotal = Double.infinity, bestPack = Double.infinity, bestPairs = Double.infinity
        var check = 0.0
        for _ in 0..<(repeats + 1) {  // the first round warms up
            let t0 = DispatchTime.now().uptimeNanoseconds
            let packs = Mixing.packAll(generated, threads: threads)
            let t1 = DispatchTime.now().uptimeNanoseconds
            let r = Mixing.fsd(packs: packs, names: (0..<k).map { "a\($0)" }, threads: threads)
            let t2 = DispatchTime.now().uptimeNanoseconds
            check = r.matrix[0][1]
            bestTotal = min(bestTotal, Double(t2 - t0) / 1e9)
            bestPack = min(bestPack, Double(t1 - t0) / 1e9)
            bestPairs = min(bestPairs, Double(t2 - t1) / 1e9)
        }
        let rate = pairs / bestTotal, pairRate = pairs / bestPairs
        if json {
            print("{\"adapters\": \(k), \"method\": \"\(method)\", \"parameters\": \(n), \"pairs\": \(Int(pairs)), \"threads\": \(threads), "
                  + "\"seconds\": \(bestTotal), \"pack_seconds\": \(bestPack), \"pair_seconds\": \(bestPairs), "
                  + "\"pairs_per_second\": \(rate), \"pair_stage_pairs_per_second\": \(pairRate)}")
        } else {
            print("adaptermix bench fsd — \(k) generated \(method) adapters, hidden \(hidden), \(layers) layers, bottleneck \(bottleneck): \(n) body parameters each; \(threads) thread(s)")
            print(String(format: "FSD matrix (%d × %d, %d pairs × %d parameters = %.3g parameter-pairs): best of %d %.1f ms (packing signs %.1f ms, pairs %.1f ms)",
                         k, k, k * (k - 1) / 2, n, pairs, repeats, bestTotal * 1e3, bestPack * 1e3, bestPairs * 1e3))
            print(String(format: "%.2e parameter-pairs/s end to end (packing included); pair stage alone %.2e/s   [S[0][1] = %.6f]", rate, pairRate, check))
        }
    }
}
