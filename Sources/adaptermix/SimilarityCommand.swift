import ArgumentParser
import Datasets
import Encoder
import Foundation
import Report
import Sweep

/// `adaptermix similarity`: how alike the domains are (the study's Section 3.1 and Fig. 2) — the
/// cosine similarity of their sentence-embedding centroids, and LDA topics per domain and over
/// the union with each domain's topic mixture (the study's Tables 4–16). docs/similarity.md.
struct SimilarityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "similarity",
        abstract: "Domain × domain centroid similarity (sentence embeddings) and LDA topics of the domains.")

    @OptionGroup var threadOptions: ThreadOptions

    @Option(help: "Domains, comma-separated (default: all thirteen packaged ones).")
    var domains: String?

    @Option(help: "Training documents per domain (seeded sample; all when fewer).")
    var sample: Int = 1000

    @Option(help: "Seed of the split and of the sample.")
    var seed: UInt64 = 42

    @Option(help: "table, csv or json.")
    var format: String = "table"

    @Option(help: "LDA topics per model (0: no topics).")
    var topics: Int = 10

    @Option(name: .customLong("topic-words"), help: "Top words printed per topic.")
    var topicWords: Int = 10

    @Option(help: "Gibbs sweeps per LDA model.")
    var iterations: Int = 200

    func validate() throws {
        guard ["table", "csv", "json"].contains(format) else { throw ValidationError("--format must be table, csv or json") }
        guard sample >= 1 else { throw ValidationError("--sample must be at least 1") }
        guard topics >= 0, iterations >= 1, topicWords >= 1 else { throw ValidationError("--topics ≥ 0, --iterations ≥ 1, --topic-words ≥ 1") }
    }

    func run() throws {
        try reportingErrors {
            let catalog = try DomainCatalog(assets: PretrainedEncoder.assetsDirectory())
            let names = domains.map { $0.split(separator: ",").map(String.init) } ?? catalog.domains.map(\.name)
            let known = Set(catalog.domains.map(\.name))
            for d in names where !known.contains(d) {
                throw CLIError("unknown domain '\(d)' (known: \(known.sorted().joined(separator: ", ")))")
            }
            let sorted = names.sorted()
            let docs = try sorted.map { try DomainMatrix.sampleDocuments($0, catalog: catalog, sample: sample, seed: seed) }
            let table = try DomainMatrix.centroidSimilarity(domains: sorted, documents: docs, threads: threadOptions.threads)
            var topicResult: TopicSummary?
            if topics > 0 { topicResult = TopicSummary.fit(domains: table.domains, documents: docs, topics: topics, iterations: iterations, seed: seed, words: topicWords) }
            switch format {
            case "json":
                var obj: [String: Any] = ["domains": table.domains, "cosine": table.matrix, "sample": sample, "seed": String(seed)]
                if let t = topicResult { obj["topics"] = t.json }
                let d = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
                print(String(decoding: d, as: UTF8.self))
            case "csv":
                print("a,b,cosine")
                for (i, a) in table.domains.enumerated() { for (j, b) in table.domains.enumerated() { print("\(a),\(b),\(String(format: "%.6f", table.matrix[i][j]))") } }
            default:
                let w = max(8, table.domains.map(\.count).max() ?? 8)
                print("centroid cosine similarity (\(sample) training documents per domain, all-MiniLM-L6-v2 mean-pooled, normalised)")
                print("".padding(toLength: w, withPad: " ", startingAt: 0) + table.domains.map { " " + String($0.prefix(7)).padding(toLength: 7, withPad: " ", startingAt: 0) }.joined())
                for (i, a) in table.domains.enumerated() {
                    print(a.padding(toLength: w, withPad: " ", startingAt: 0) + table.matrix[i].map { String(format: " %7.3f", $0) }.joined())
                }
                if let t = topicResult { print(); print(t.text) }
            }
        }
    }
}

