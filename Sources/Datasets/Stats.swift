import Foundation

/// Counts and lengths of one split (the study's Tables 2 and 3).
public struct SplitStats: Sendable, Equatable {
    public var examples: Int
    public var labelCounts: [String: Int]
    /// Mean words per example (whitespace-separated; both texts of a pair).
    public var meanWords: Double
    /// Mean sentences per example and mean words per sentence (sentences end at . ! ? or a line break).
    public var meanSentences: Double
    public var meanSentenceWords: Double

    public init(_ examples: [Example]) {
        self.examples = examples.count
        var labels: [String: Int] = [:]
        var words = 0, sentences = 0
        for e in examples {
            labels[e.label, default: 0] += 1
            for text in [e.text, e.textPair].compactMap({ $0 }) {
                let c = Self.count(text)
                words += c.words
                sentences += c.sentences
            }
        }
        labelCounts = labels
        meanWords = examples.isEmpty ? 0 : Double(words) / Double(examples.count)
        meanSentences = examples.isEmpty ? 0 : Double(sentences) / Double(examples.count)
        meanSentenceWords = sentences == 0 ? 0 : Double(words) / Double(sentences)
    }

    /// Words and sentences of a text, in one pass over its UTF-8 bytes.
    static func count(_ text: String) -> (words: Int, sentences: Int) {
        var words = 0, sentences = 0
        var inWord = false, sentenceHasWord = false
        for b in text.utf8 {
            let space = b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D
            let end = b == UInt8(ascii: ".") || b == UInt8(ascii: "!") || b == UInt8(ascii: "?") || b == 0x0A
            if space {
                inWord = false
            } else if !inWord {
                inWord = true
                words += 1
                sentenceHasWord = true
            }
            if end, sentenceHasWord { sentences += 1; sentenceHasWord = false }
        }
        if sentenceHasWord { sentences += 1 }
        return (words, sentences)
    }
}

extension DomainSplits {
    public var stats: [Split: SplitStats] {
        Dictionary(uniqueKeysWithValues: Split.allCases.map { ($0, SplitStats(self[$0])) })
    }
}
