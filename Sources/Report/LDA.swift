import Foundation
import Tensor

// Latent Dirichlet allocation by collapsed Gibbs sampling, for the report's per-domain topics.
// Reference: Griffiths & Steyvers, "Finding scientific topics", PNAS 101 (2004), eq. 5.
//
// Dimension letters: D documents, V vocabulary words, K topics, N tokens in the whole corpus.

// MARK: - Corpus

/// A bag-of-words corpus: documents as word ids over a filtered, alphabetically sorted vocabulary.
///
/// Building it is deterministic: the same texts and settings always give the same vocabulary,
/// the same ids and therefore the same topic model for a given seed.
public struct TopicCorpus: Sendable {
    /// The kept words, sorted alphabetically; a word's id is its index here.
    public let vocabulary: [String]
    /// Each document's kept words as vocabulary ids, in the order they occur in the text (D rows).
    public let documents: [[Int]]
    /// Number of kept tokens over all documents (N).
    public let tokenCount: Int

    /// Tokenises and filters `documents` into a corpus.
    ///
    /// Each text is split by ``words(in:)``; then stop-words are removed, then words seen fewer than
    /// `minimumCount` times in the whole corpus, then words that occur in more than
    /// `maximumDocumentFraction` of the documents (too common to tell topics apart). A document may
    /// end up empty; it keeps its place so that indices still match the input.
    ///
    /// - Parameters:
    ///   - documents: the raw texts, one per document.
    ///   - stopWords: lower-case words to drop (written without apostrophes, e.g. "dont").
    ///   - minimumCount: the fewest occurrences, over all documents, a word needs to be kept.
    ///   - maximumDocumentFraction: the largest share of documents, in [0, 1], a kept word may occur in.
    public init(documents: [String],
                stopWords: Set<String> = TopicCorpus.englishStopWords,
                minimumCount: Int = 5,
                maximumDocumentFraction: Double = 0.5) {
        let tokenised = documents.map { TopicCorpus.words(in: $0).filter { !stopWords.contains($0) } }

        var totalCount: [String: Int] = [:]
        var documentFrequency: [String: Int] = [:]
        for words in tokenised {
            for word in words { totalCount[word, default: 0] += 1 }
            for word in Set(words) { documentFrequency[word, default: 0] += 1 }
        }
        let documentLimit = maximumDocumentFraction * Double(documents.count)
        let kept = totalCount.compactMap { word, count -> String? in
            guard count >= minimumCount, Double(documentFrequency[word] ?? 0) <= documentLimit else { return nil }
            return word
        }
        let vocabulary = kept.sorted()
        var id: [String: Int] = [:]
        id.reserveCapacity(vocabulary.count)
        for (index, word) in vocabulary.enumerated() { id[word] = index }

        self.vocabulary = vocabulary
        self.documents = tokenised.map { words in words.compactMap { id[$0] } }
        self.tokenCount = self.documents.reduce(0) { $0 + $1.count }
    }

    /// Splits a text into lower-case words of at least three letters.
    ///
    /// A word is a maximal run of letters (`Character.isLetter`, so accented letters count);
    /// apostrophes (' and ’) inside a run are dropped rather than splitting it, so "don't" → "dont".
    /// Digits, punctuation and spaces separate words.
    public static func words(in text: String) -> [String] {
        var words: [String] = []
        var current = ""
        var letters = 0
        func flush() {
            if letters >= 3 { words.append(current) }
            current = ""
            letters = 0
        }
        for character in text.lowercased() {
            if character.isLetter {
                current.append(character)
                letters += 1
            } else if character == "'" || character == "\u{2019}" {
                continue
            } else {
                flush()
            }
        }
        flush()
        return words
    }

    /// A general English stop-word list, lower-case and without apostrophes, plus web and SMS noise.
    ///
    /// Words shorter than three letters are dropped by the tokeniser anyway; the short entries here
    /// only matter to callers that reuse the list elsewhere.
    public static let englishStopWords: Set<String> = [
        // Articles, determiners, quantifiers.
        "the", "an", "this", "that", "these", "those", "some", "any", "each", "every", "all",
        "both", "few", "more", "most", "other", "such", "own", "same", "another", "much", "many",
        "several", "none", "nor", "not", "only", "than",
        // Pronouns.
        "you", "your", "yours", "yourself", "yourselves", "him", "his", "himself", "she", "her",
        "hers", "herself", "its", "itself", "they", "them", "their", "theirs", "themselves", "our",
        "ours", "ourselves", "myself", "who", "whom", "whose", "which", "what", "one", "ones",
        "someone", "something", "anyone", "anything", "everyone", "everything", "nothing",
        // Auxiliaries and common verbs.
        "are", "was", "were", "been", "being", "have", "has", "had", "having", "does", "did",
        "doing", "done", "can", "could", "will", "would", "shall", "should", "may", "might",
        "must", "get", "got", "gets", "getting", "make", "made", "say", "said", "says", "just",
        // Contractions (apostrophes removed by the tokeniser).
        "dont", "doesnt", "didnt", "cant", "couldnt", "wont", "wouldnt", "shouldnt", "isnt",
        "arent", "wasnt", "werent", "havent", "hasnt", "hadnt", "ive", "youre", "youve", "youll",
        "youd", "hes", "shes", "theyre", "theyve", "theyll", "weve", "well",
        "itll", "thats", "theres", "whats", "lets",
        // Prepositions.
        "about", "above", "across", "after", "against", "along", "among", "around", "before",
        "behind", "below", "beneath", "beside", "between", "beyond", "but", "down", "during",
        "for", "from", "into", "near", "off", "onto", "out", "over", "past", "since", "through",
        "throughout", "till", "toward", "towards", "under", "until", "upon", "with", "within",
        "without", "via",
        // Conjunctions.
        "and", "because", "although", "though", "while", "whether", "unless", "whereas", "yet",
        "also", "however", "therefore", "thus",
        // Common adverbs.
        "very", "too", "again", "once", "here", "there", "when", "where", "why", "how", "then",
        "now", "still", "even", "ever", "never", "always", "often", "already", "almost", "quite",
        "rather", "really", "away", "back", "else", "instead", "maybe", "perhaps", "yes",
        // Web and SMS noise.
        "http", "https", "www", "com", "org", "net", "html", "htm", "amp", "nbsp", "quot",
        "lol", "omg", "lmao", "btw", "idk", "tbh", "imo", "pls", "plz", "thx", "thanks", "msg",
        "txt", "gonna", "wanna", "gotta", "haha", "hahaha", "hey", "yeah", "yea", "yep", "nah",
        "okay", "retweet",
    ]
}

// MARK: - Options

/// Settings for ``LDAModel/fit(_:options:)``: number of topics, Dirichlet priors, sweeps and seed.
public struct LDAOptions: Sendable {
    /// Number of topics K (at least 1).
    public var topics: Int
    /// Symmetric Dirichlet prior on each document's topic mixture θ (greater than 0).
    public var alpha: Double
    /// Symmetric Dirichlet prior on each topic's word distribution φ (greater than 0).
    public var beta: Double
    /// Gibbs sweeps over every token after the random initial assignment (at least 0).
    public var iterations: Int
    /// Seed of the `SplitMix64` generator, the sampler's only source of randomness.
    public var seed: UInt64

    /// Creates options; the defaults suit short texts (small priors give peaked mixtures).
    public init(topics: Int = 10, alpha: Double = 0.1, beta: Double = 0.01,
                iterations: Int = 200, seed: UInt64 = 42) {
        self.topics = topics
        self.alpha = alpha
        self.beta = beta
        self.iterations = iterations
        self.seed = seed
    }
}

// MARK: - Model

/// A topic model fitted by collapsed Gibbs sampling: topic–word (φ) and document–topic (θ) tables.
///
/// The estimates are read off the final sampler state (no averaging over samples), so a model is
/// a pure function of the corpus and the options: the same seed gives bitwise the same tables.
public struct LDAModel: Sendable {
    /// The options the model was fitted with.
    public let options: LDAOptions
    /// The corpus vocabulary; column `w` of ``topicWord`` belongs to `vocabulary[w]`.
    public let vocabulary: [String]
    /// φ, K × V: row k is topic k's word distribution, (n_kw + β) / (n_k + Vβ); each row sums to 1.
    public let topicWord: [[Double]]
    /// θ, D × K: row d is document d's topic mixture, (n_dk + α) / (n_d + Kα); each row sums to 1.
    public let documentTopic: [[Double]]
    /// log p(w, z | α, β) of the final assignment (Griffiths & Steyvers eq. 2 and its θ analogue).
    ///
    /// Higher is better; useful to compare seeds or to watch convergence across iteration counts.
    public let logLikelihood: Double

    // Final sampler counts, kept for consistency checks in tests.
    /// n_dk, flat (D, K).
    let documentTopicCounts: [Int32]
    /// n_kw, flat (K, V).
    let topicWordCounts: [Int32]
    /// n_k, (K).
    let topicCounts: [Int32]

    /// Number of topics K.
    public var topicCount: Int { options.topics }

    /// Fits LDA to `corpus` by collapsed Gibbs sampling.
    ///
    /// Every token gets a uniformly random topic; then `options.iterations` sweeps visit each token
    /// in document order and resample its topic from p(z = k) ∝ (n_dk + α)(n_kw + β)/(n_k + Vβ),
    /// with the token's own assignment removed from the counts. Uniforms are drawn from
    /// `SplitMix64(seed: options.seed)` as the top 53 bits of `next()`. Runs on the calling thread.
    ///
    /// - Precondition: `options.topics ≥ 1`, `options.alpha > 0`, `options.beta > 0`,
    ///   `options.iterations ≥ 0`.
    public static func fit(_ corpus: TopicCorpus, options: LDAOptions) -> LDAModel {
        precondition(options.topics >= 1, "LDAOptions.topics must be at least 1, got \(options.topics)")
        precondition(options.alpha > 0, "LDAOptions.alpha must be positive, got \(options.alpha)")
        precondition(options.beta > 0, "LDAOptions.beta must be positive, got \(options.beta)")
        precondition(options.iterations >= 0, "LDAOptions.iterations must be ≥ 0, got \(options.iterations)")

        let K = options.topics
        let V = corpus.vocabulary.count
        let D = corpus.documents.count
        let alpha = options.alpha
        let beta = options.beta
        let vBeta = Double(V) * beta

        // Tokens flattened: words[offsets[d] ..< offsets[d + 1]] is document d.
        var words: [Int32] = []
        words.reserveCapacity(corpus.tokenCount)
        var offsets = [Int](repeating: 0, count: D + 1)
        for (d, document) in corpus.documents.enumerated() {
            for w in document { words.append(Int32(w)) }
            offsets[d + 1] = words.count
        }
        let N = words.count

        var z = [Int32](repeating: 0, count: N)              // (N) topic of each token
        var nDK = [Int32](repeating: 0, count: D * K)         // (D, K)
        var nKW = [Int32](repeating: 0, count: K * V)         // (K, V)
        var nK = [Int32](repeating: 0, count: K)              // (K)
        var inverseDenominator = [Double](repeating: 0, count: K)  // (K) 1 / (n_k + Vβ)
        var cumulative = [Double](repeating: 0, count: K)     // (K) reused sampling buffer

        var rng = SplitMix64(seed: options.seed)

        // Random initial assignment.
        for d in 0..<D {
            for i in offsets[d]..<offsets[d + 1] {
                let k = Int(rng.next() % UInt64(K))
                let w = Int(words[i])
                z[i] = Int32(k)
                nDK[d * K + k] += 1
                nKW[k * V + w] += 1
                nK[k] += 1
            }
        }
        for k in 0..<K { inverseDenominator[k] = 1 / (Double(nK[k]) + vBeta) }

        // Sweeps. Unsafe buffers keep bounds checks out of the inner loop (Report builds with -O).
        words.withUnsafeBufferPointer { words in
        offsets.withUnsafeBufferPointer { offsets in
        z.withUnsafeMutableBufferPointer { z in
        nDK.withUnsafeMutableBufferPointer { nDK in
        nKW.withUnsafeMutableBufferPointer { nKW in
        nK.withUnsafeMutableBufferPointer { nK in
        inverseDenominator.withUnsafeMutableBufferPointer { inverseDenominator in
        cumulative.withUnsafeMutableBufferPointer { cumulative in
            for _ in 0..<options.iterations {
                for d in 0..<D {
                    let docRow = d * K
                    for i in offsets[d]..<offsets[d + 1] {
                        let w = Int(words[i])
                        let old = Int(z[i])
                        nDK[docRow + old] -= 1
                        nKW[old * V + w] -= 1
                        nK[old] -= 1
                        inverseDenominator[old] = 1 / (Double(nK[old]) + vBeta)

                        var total = 0.0
                        var column = w
                        for k in 0..<K {
                            total += (Double(nDK[docRow + k]) + alpha)
                                * (Double(nKW[column]) + beta) * inverseDenominator[k]
                            cumulative[k] = total
                            column += V
                        }
                        let u = Double(rng.next() >> 11) / 9_007_199_254_740_992.0 * total  // 2^53
                        var new = K - 1  // fallback if rounding leaves u ≥ the last partial sum
                        for k in 0..<K where u < cumulative[k] {
                            new = k
                            break
                        }

                        z[i] = Int32(new)
                        nDK[docRow + new] += 1
                        nKW[new * V + w] += 1
                        nK[new] += 1
                        inverseDenominator[new] = 1 / (Double(nK[new]) + vBeta)
                    }
                }
            }
        }}}}}}}}

        // Point estimates from the final state.
        var phi = [[Double]](repeating: [], count: K)
        for k in 0..<K {
            let denominator = Double(nK[k]) + vBeta
            phi[k] = (0..<V).map { w in (Double(nKW[k * V + w]) + beta) / denominator }
        }
        let kAlpha = Double(K) * alpha
        var theta = [[Double]](repeating: [], count: D)
        for d in 0..<D {
            let denominator = Double(offsets[d + 1] - offsets[d]) + kAlpha
            theta[d] = (0..<K).map { k in (Double(nDK[d * K + k]) + alpha) / denominator }
        }

        // log p(w | z) + log p(z), both Dirichlet-multinomial (Griffiths & Steyvers 2004, eq. 2).
        var logLikelihood = 0.0
        if V > 0 {
            logLikelihood += Double(K) * (lgamma(vBeta) - Double(V) * lgamma(beta))
            for k in 0..<K {
                for w in 0..<V { logLikelihood += lgamma(Double(nKW[k * V + w]) + beta) }
                logLikelihood -= lgamma(Double(nK[k]) + vBeta)
            }
        }
        logLikelihood += Double(D) * (lgamma(kAlpha) - Double(K) * lgamma(alpha))
        for d in 0..<D {
            for k in 0..<K { logLikelihood += lgamma(Double(nDK[d * K + k]) + alpha) }
            logLikelihood -= lgamma(Double(offsets[d + 1] - offsets[d]) + kAlpha)
        }

        return LDAModel(options: options, vocabulary: corpus.vocabulary, topicWord: phi,
                        documentTopic: theta, logLikelihood: logLikelihood,
                        documentTopicCounts: nDK, topicWordCounts: nKW, topicCounts: nK)
    }

    /// The `count` most probable words of topic `k`, most probable first; ties go to the word that
    /// sorts first. Returns fewer when the vocabulary is smaller than `count`.
    ///
    /// - Precondition: `0 ≤ k < topicCount`.
    public func topWords(_ k: Int, count: Int = 10) -> [String] {
        precondition(k >= 0 && k < topicCount, "topic \(k) out of range 0..<\(topicCount)")
        let row = topicWord[k]
        let order = row.indices.sorted { a, b in row[a] != row[b] ? row[a] > row[b] : a < b }
        return order.prefix(max(count, 0)).map { vocabulary[$0] }
    }

    /// The mean topic mixture θ over the given document indices (K entries summing to 1).
    ///
    /// Use it for a group of documents, e.g. one domain's. An empty list gives the uniform mixture.
    ///
    /// - Precondition: every index is in `0..<documentTopic.count`.
    public func topicMixture(documents: [Int]) -> [Double] {
        let K = topicCount
        guard !documents.isEmpty else { return [Double](repeating: 1 / Double(K), count: K) }
        var sum = [Double](repeating: 0, count: K)
        for d in documents {
            precondition(d >= 0 && d < documentTopic.count,
                         "document \(d) out of range 0..<\(documentTopic.count)")
            for k in 0..<K { sum[k] += documentTopic[d][k] }
        }
        return sum.map { $0 / Double(documents.count) }
    }
}
