import Encoder
import Foundation

// TextFooler (Jin et al. 2020), the black-box synonym-swap attack, as TextAttack's recipe runs it:
// rank words by how much deleting each one lowers the true class's probability, then swap words in
// that order for the candidate that lowers it most (or flips the label), keeping only swaps whose
// sentence similarity (a window of 15 words around the swap) stays above a threshold. Stop-words
// and already-swapped words are never touched; in text pairs only the second text changes.

/// A black-box classifier: class probabilities for a batch of inputs. Every input counts as one
/// query against the attack's budget.
public protocol VictimClassifier {
    var classCount: Int { get }
    /// Probabilities (summing to 1) for each input, in order.
    func probabilities(_ inputs: [AttackInput]) throws -> [[Float]]
}

/// One input: a text, or a text pair (the attack changes `pair` when there is one).
public struct AttackInput: Sendable, Equatable {
    public var text: String
    public var pair: String?
    public init(text: String, pair: String? = nil) {
        self.text = text
        self.pair = pair
    }
}

/// The sentence-similarity constraint: angular similarity 1 − arccos(cos θ)/π of two texts'
/// sentence embeddings (TextAttack's "angular" metric for the Universal Sentence Encoder).
public protocol SentenceSimilarity {
    func similarity(_ pairs: [(String, String)]) throws -> [Double]
}

public struct TextFoolerOptions: Sendable {
    /// Minimum angular similarity of the windows around a swap (the study's 0.84).
    public var similarityThreshold: Double = 0.84
    /// Words in the similarity window, centred on the swapped word (TextAttack: 15).
    public var window: Int = 15
    /// Victim queries allowed per example (deletions for the ranking count too).
    public var queryBudget: Int = 2000
    /// Words never swapped (lower-cased).
    public var stopWords: Set<String> = TextFooler.defaultStopWords

    public init() {}
}

/// One accepted swap: word `position` (in the attacked text's word list) from `original` to `replacement`.
public struct Swap: Sendable, Equatable {
    public var position: Int
    public var original: String
    public var replacement: String
    /// The window similarity that admitted it.
    public var similarity: Double
}

public struct AttackOutcome: Sendable, Equatable {
    public enum Status: String, Sendable {
        /// The victim already got the original wrong: nothing to attack.
        case skipped
        /// The label flipped within the constraints and the budget.
        case succeeded
        /// No swap sequence flipped it.
        case failed
    }

    public var status: Status
    /// The input after the swaps (the original when none were accepted).
    public var adversarial: AttackInput
    public var swaps: [Swap]
    /// Words in the attacked text.
    public var wordCount: Int
    /// Victim queries spent.
    public var queries: Int
    /// The victim's label for `adversarial`.
    public var finalLabel: Int

    /// Whether the victim is still right after the attack (accuracy under attack counts these).
    public var correctAfterAttack: Bool { status == .failed }
    public var perturbedFraction: Double { wordCount == 0 ? 0 : Double(swaps.count) / Double(wordCount) }
}

/// A text split into words and the separators around them, so that a word can be replaced and
/// the text put back together exactly.
public struct WordSequence: Sendable, Equatable {
    /// pieces[0] separator, pieces[1] word, pieces[2] separator, … (words at odd indices).
    public private(set) var pieces: [String]

    public init(_ text: String) {
        var pieces = [""]
        var current = ""
        var inWord = false
        let scalars = Array(text.unicodeScalars)
        for (i, u) in scalars.enumerated() {
            let letter = CharacterSet.alphanumerics.contains(u)
            // An apostrophe or hyphen between letters stays inside the word ("don't", "state-of-the-art").
            let joiner = (u == "'" || u == "-") && inWord && i + 1 < scalars.count && CharacterSet.alphanumerics.contains(scalars[i + 1])
            if letter || joiner {
                if !inWord { pieces[pieces.count - 1] = current; current = ""; inWord = true }
            } else if inWord {
                pieces.append(current)
                pieces.append("")
                current = ""
                inWord = false
            }
            current.unicodeScalars.append(u)
        }
        if inWord {
            pieces.append(current)
            pieces.append("")
        } else {
            pieces[pieces.count - 1] = current
        }
        self.pieces = pieces
    }

    public var count: Int { pieces.count / 2 }
    public var words: [String] { (0..<count).map { pieces[2 * $0 + 1] } }
    public subscript(i: Int) -> String { pieces[2 * i + 1] }
    public var text: String { pieces.joined() }

    /// The text with word `i` replaced (an empty replacement deletes it with the separator before it).
    public func replacing(_ i: Int, with word: String) -> WordSequence {
        var copy = self
        copy.pieces[2 * i + 1] = word
        if word.isEmpty {
            // Drop one separator so "a b c" minus "b" reads "a c", not "a  c".
            if copy.pieces[2 * i].allSatisfy(\.isWhitespace) && 2 * i > 0 { copy.pieces[2 * i] = "" }
        }
        return copy
    }

    /// Words `lo ..< hi` joined by single spaces (the similarity window).
    public func window(_ lo: Int, _ hi: Int) -> String {
        (max(0, lo)..<min(count, hi)).map { self[$0] }.joined(separator: " ")
    }
}

public struct TextFooler {
    public var options: TextFoolerOptions

    public init(options: TextFoolerOptions = TextFoolerOptions()) { self.options = options }

    /// Attacks one example whose true class is `label`.
    public func attack(_ input: AttackInput, label: Int, victim: VictimClassifier, synonyms: SynonymSource,
                       similarity: SentenceSimilarity) throws -> AttackOutcome {
        let attackingPair = input.pair != nil
        let original = WordSequence(attackingPair ? input.pair! : input.text)
        func make(_ words: WordSequence) -> AttackInput {
            attackingPair ? AttackInput(text: input.text, pair: words.text) : AttackInput(text: words.text)
        }
        func argmax(_ p: [Float]) -> Int { p.indices.max { p[$0] < p[$1] || (p[$0] == p[$1] && $0 > $1) } ?? 0 }

        var queries = 0
        let p0 = try victim.probabilities([input])[0]
        queries += 1
        guard argmax(p0) == label else {
            return AttackOutcome(status: .skipped, adversarial: input, swaps: [], wordCount: original.count, queries: queries,
                                 finalLabel: argmax(p0))
        }

        // 1. Word importance by deletion: the drop in the true class's probability.
        let n = original.count
        let budgetLeft = { options.queryBudget - queries }
        let rankable = Array(0..<min(n, max(0, budgetLeft())))
        var importance = [Float](repeating: -.infinity, count: n)
        if !rankable.isEmpty {
            let deleted = try victim.probabilities(rankable.map { make(original.replacing($0, with: "")) })
            queries += rankable.count
            for (j, i) in rankable.enumerated() { importance[i] = p0[label] - deleted[j][label] }
        }
        let order = (0..<n).sorted { importance[$0] != importance[$1] ? importance[$0] > importance[$1] : $0 < $1 }

        // 2. Swap in that order.
        var current = original
        var currentP = p0[label]
        var swaps: [Swap] = []
        var swapped = Set<Int>()
        let half = options.window / 2
        for i in order {
            if budgetLeft() <= 0 { break }
            let word = current[i]
            let lower = word.lowercased()
            guard !options.stopWords.contains(lower), !swapped.contains(i) else { continue }
            var candidates = synonyms.candidates(for: lower).filter { $0 != lower && !$0.isEmpty }
            guard !candidates.isEmpty else { continue }
            candidates = Array(candidates.prefix(budgetLeft()))
            let capitalised = word.first.map { $0.isUppercase } ?? false
            let replacements = candidates.map { c in capitalised ? c.prefix(1).uppercased() + c.dropFirst() : c }
            let texts = replacements.map { current.replacing(i, with: $0) }
            let probs = try victim.probabilities(texts.map(make))
            queries += texts.count
            // The sentence-similarity constraint on the window around the swap (against the text before it).
            let before = current.window(i - half, i + half + 1)
            let sims = try similarity.similarity(texts.map { (before, $0.window(i - half, i + half + 1)) })

            var flips: [Int] = []
            var best: Int?
            for k in texts.indices where sims[k] >= options.similarityThreshold {
                if argmax(probs[k]) != label { flips.append(k) }
                if probs[k][label] < (best.map { probs[$0][label] } ?? currentP) { best = k }
            }
            // A flip wins (the most similar one); otherwise the largest drop, if any.
            let chosen = flips.max { sims[$0] < sims[$1] || (sims[$0] == sims[$1] && $0 > $1) } ?? best
            guard let k = chosen else { continue }
            swaps.append(Swap(position: i, original: word, replacement: replacements[k], similarity: sims[k]))
            swapped.insert(i)
            current = texts[k]
            currentP = probs[k][label]
            if argmax(probs[k]) != label {
                return AttackOutcome(status: .succeeded, adversarial: make(current), swaps: swaps, wordCount: n, queries: queries,
                                     finalLabel: argmax(probs[k]))
            }
        }
        return AttackOutcome(status: .failed, adversarial: make(current), swaps: swaps, wordCount: n, queries: queries, finalLabel: label)
    }

    /// Common English function words, never swapped (our own list: articles, pronouns, auxiliaries,
    /// prepositions, conjunctions, negations, a few adverbs).
    public static let defaultStopWords: Set<String> = Set("""
        a an the this that these those there here it its it's itself i me my mine myself we us our ours ourselves you your yours
        yourself yourselves he him his himself she her hers herself they them their theirs themselves who whom whose which what
        whatever whoever whichever when where why how all any both each either neither few more most other some such no nor not
        only own same so than too very can cannot could couldn't may might must shall should shouldn't will would wouldn't do
        does did doing done don't doesn't didn't am is are was were be been being isn't aren't wasn't weren't have has had
        having haven't hasn't hadn't of at by for with about against between into through during before after above below to
        from up down in out on off over under again further then once and but or if because as until while although though
        unless whether yet also just ever even else anyway however otherwise therefore thus hence ain't won't can't let's
        per via upon onto within without among across along around behind beyond toward towards s t d ll m o re ve y
        """.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
}

/// Angular similarity of mean-pooled, normalised sentence embeddings from an encoder (the packaged
/// all-MiniLM-L6-v2 stands in for the Universal Sentence Encoder the study used).
public final class EncoderSimilarity: SentenceSimilarity {
    let pretrained: PretrainedEncoder
    let runner: EncoderRunner

    public init(pretrained: PretrainedEncoder, threads: Int) {
        self.pretrained = pretrained
        runner = EncoderRunner(model: pretrained.model, threads: threads)
    }

    public func embed(_ texts: [String]) throws -> [[Float]] {
        try runner.embed(try pretrained.encode(texts, maxLength: 128), padId: pretrained.tokenizer.padId, pooling: .mean, normalize: true)
    }

    public static func angular(_ a: [Float], _ b: [Float]) -> Double {
        var dot = 0.0
        for i in a.indices { dot += Double(a[i]) * Double(b[i]) }
        return 1 - acos(min(1, max(-1, dot))) / Double.pi
    }

    public func similarity(_ pairs: [(String, String)]) throws -> [Double] {
        guard !pairs.isEmpty else { return [] }
        // The left sides are usually all the same window: embed each distinct text once.
        var distinct: [String] = []
        var index: [String: Int] = [:]
        for (a, b) in pairs {
            for t in [a, b] where index[t] == nil { index[t] = distinct.count; distinct.append(t) }
        }
        let vectors = try embed(distinct)
        return pairs.map { Self.angular(vectors[index[$0.0]!], vectors[index[$0.1]!]) }
    }
}
