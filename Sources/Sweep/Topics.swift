import Foundation
import Report

/// LDA over each domain's documents and over their union: top words per topic and each domain's
/// topic mixture (shared by `adaptermix similarity` and the sweep's report).
public struct TopicSummary: Sendable, Equatable {
    public struct DomainTopics: Sendable, Equatable {
        public var domain: String
        /// Top words of each topic of the domain's own model.
        public var topics: [[String]]
        /// The domain's mixture of its own topics (mean θ over its documents).
        public var mixture: [Double]
    }
    public var perDomain: [DomainTopics]
    /// Top words of each topic of the model over all the domains' documents.
    public var unionTopics: [[String]]
    /// Each domain's mixture of the union topics.
    public var unionMixtures: [String: [Double]]

    public init(perDomain: [DomainTopics], unionTopics: [[String]], unionMixtures: [String: [Double]]) {
        self.perDomain = perDomain
        self.unionTopics = unionTopics
        self.unionMixtures = unionMixtures
    }

    public static func fit(domains: [String], documents: [[String]], topics: Int, iterations: Int, seed: UInt64, words: Int) -> TopicSummary {
        let options = LDAOptions(topics: topics, iterations: iterations, seed: seed)
        var per: [DomainTopics] = []
        for (d, docs) in zip(domains, documents) {
            let corpus = TopicCorpus(documents: docs)
            let model = LDAModel.fit(corpus, options: options)
            per.append(DomainTopics(domain: d, topics: (0..<topics).map { model.topWords($0, count: words) },
                                    mixture: model.topicMixture(documents: Array(docs.indices))))
        }
        let all = documents.flatMap { $0 }
        let model = LDAModel.fit(TopicCorpus(documents: all), options: options)
        var mixtures: [String: [Double]] = [:]
        var start = 0
        for (d, docs) in zip(domains, documents) {
            mixtures[d] = model.topicMixture(documents: Array(start..<(start + docs.count)))
            start += docs.count
        }
        return TopicSummary(perDomain: per, unionTopics: (0..<topics).map { model.topWords($0, count: words) }, unionMixtures: mixtures)
    }

    public var text: String {
        var out = ""
        for p in perDomain {
            out += "topics of \(p.domain) (LDA, share of the domain's words)\n"
            for (k, ws) in p.topics.enumerated() { out += String(format: "  %2d  %5.3f  ", k + 1, p.mixture[k]) + ws.joined(separator: " ") + "\n" }
        }
        out += "topics over all the domains' documents, and each domain's mixture of them\n"
        for (k, ws) in unionTopics.enumerated() { out += String(format: "  %2d  ", k + 1) + ws.joined(separator: " ") + "\n" }
        for (d, mix) in unionMixtures.sorted(by: { $0.key < $1.key }) {
            out += "  \(d): " + mix.map { String(format: "%.3f", $0) }.joined(separator: " ") + "\n"
        }
        return out
    }

    public var json: [String: Any] {
        ["domains": perDomain.map { ["domain": $0.domain, "topics": $0.topics, "mixture": $0.mixture] as [String: Any] },
         "union": ["topics": unionTopics, "mixtures": unionMixtures] as [String: Any]]
    }
}
