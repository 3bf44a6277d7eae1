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
    /// How many leading words of `words` (the attacked text of `input`) the classifier reads, when
    /// it truncates; nil when it reads them all. Words past it cannot change a prediction.
    func wordsSeen(_ input: AttackInput, words: WordSequence) throws -> Int?
}

extension VictimClassifier {
    public func wordsSeen(_ input: AttackInput, words: WordSequence) throws -> Int? { nil }
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
    /// Only the first `maxWords` words are ranked and swapped (TextAttack's `truncate_words_to`);
    /// set from the victim's `max_length` so that no query is spent on words it never sees.
    public var maxWords: Int?
    /// Leave alone the words past the victim's truncation (`VictimClassifier.wordsSeen`): a query
    /// spent on them cannot change the prediction.
    public var skipUnseenWords = true

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

    /// The text before word `j`: the words before it and every separator up to it.
    public func textBefore(_ j: Int) -> String {
        pieces[0...(2 * max(0, min(j, count)))].joined()
    }

    /// Words `lo ..< hi` joined by single spaces.
    public func window(_ lo: Int, _ hi: Int) -> String {
        (max(0, lo)..<min(count, hi)).map { self[$0] }.joined(separator: " ")
    }

    /// The text of the `size` words around word `i`, from the first word's start to the last
    /// word's end (separators between them kept), placed as TextAttack's
    /// `text_window_around_index` places it: centred where it fits, otherwise against the start or
    /// the end of the text so that it still holds `size` words when the text has them.
    public func window(around i: Int, size: Int) -> String {
        guard count > 0 else { return "" }
        let half = Double(size - 1) / 2
        let start: Int, end: Int
        if Double(i) - half < 0 {
            (start, end) = (0, min(size - 1, count - 1))
        } else if Double(i) + half >= Double(count) {
            (start, end) = (max(0, count - size), count - 1)
        } else {
            (start, end) = (i - Int(half.rounded(.up)), i + Int(half.rounded(.down)))
        }
        return pieces[(2 * start + 1)...(2 * end + 1)].joined()
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

        // 1. Word importance by deletion (the drop in the true class's probability), over the words
        //    the attack may change: not stop-words, and within the first `maxWords` when set.
        let n = original.count
        let budgetLeft = { options.queryBudget - queries }
        let seen = options.skipUnseenWords ? try victim.wordsSeen(input, words: original) : nil
        let reach = min(n, options.maxWords ?? n, seen ?? n)
        let swappable = (0..<reach).filter { !options.stopWords.contains(original[$0].lowercased()) }
        let rankable = Array(swappable.prefix(max(0, budgetLeft())))
        var importance: [Int: Float] = [:]
        if !rankable.isEmpty {
            let deleted = try victim.probabilities(rankable.map { make(original.replacing($0, with: "")) })
            queries += rankable.count
            for (j, i) in rankable.enumerated() { importance[i] = p0[label] - deleted[j][label] }
        }
        let order = rankable.sorted { importance[$0]! != importance[$1]! ? importance[$0]! > importance[$1]! : $0 < $1 }

        // 2. Swap in that order. As TextAttack: the constraints filter the candidates first and only
        //    those that pass are queried; the one that lowers the true class's probability most is
        //    kept when it lowers it at all, and when it flips the label, the most similar of the
        //    flipping candidates that lead the ranking wins.
        var current = original
        var currentP = p0[label]
        var swaps: [Swap] = []
        for i in order {
            if budgetLeft() <= 0 { break }
            let word = current[i]
            let lower = word.lowercased()
            // Only candidates that read as one word (GloVe also lists punctuation and symbols).
            let candidates = synonyms.candidates(for: lower).filter { $0 != lower && WordSequence($0).words == [$0] }
            guard !candidates.isEmpty else { continue }
            let capitalised = word.first.map { $0.isUppercase } ?? false
            let replacements = candidates.map { c in capitalised ? c.prefix(1).uppercased() + c.dropFirst() : c }
            let texts = replacements.map { current.replacing(i, with: $0) }
            // The sentence-similarity constraint on the window around the swap (against the text before it).
            let before = current.window(around: i, size: options.window)
            let sims = try similarity.similarity(texts.map { (before, $0.window(around: i, size: options.window)) })
            let passing = Array(texts.indices.filter { sims[$0] >= options.similarityThreshold }.prefix(budgetLeft()))
            guard !passing.isEmpty else { continue }
            let probs = try victim.probabilities(passing.map { make(texts[$0]) })
            queries += passing.count
            // Candidates by falling true-class probability (ties in candidate order).
            let ranked = passing.indices.sorted { probs[$0][label] != probs[$1][label] ? probs[$0][label] < probs[$1][label] : $0 < $1 }
            guard let top = ranked.first, probs[top][label] < currentP else { continue }
            var pick = top
            if argmax(probs[top]) != label {
                for j in ranked {
                    guard argmax(probs[j]) != label else { break }
                    if sims[passing[j]] > sims[passing[pick]] { pick = j }
                }
                let k = passing[pick]
                swaps.append(Swap(position: i, original: word, replacement: replacements[k], similarity: sims[k]))
                current = texts[k]
                return AttackOutcome(status: .succeeded, adversarial: make(current), swaps: swaps, wordCount: n, queries: queries,
                                     finalLabel: argmax(probs[pick]))
            }
            let k = passing[pick]
            swaps.append(Swap(position: i, original: word, replacement: replacements[k], similarity: sims[k]))
            current = texts[k]
            currentP = probs[pick][label]
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

extension TextFooler {
    /// Attacks every input, as many at once as there are victims: worker w attacks with
    /// `victims[w]` and `similarities[w]` (each single-threaded), taking the next example when it
    /// is done. The attacks are independent and each is deterministic, so the outcomes (in input
    /// order) are those of attacking one by one; small batches of candidates use the cores better
    /// this way than split across threads.
    public func attackAll(_ inputs: [AttackInput], labels: [Int], victims: [VictimClassifier], similarities: [SentenceSimilarity],
                          synonyms: SynonymSource) throws -> [AttackOutcome] {
        precondition(inputs.count == labels.count && !victims.isEmpty && victims.count == similarities.count)
        let box = AttackBox(count: inputs.count)
        let workers = min(victims.count, inputs.count)
        if workers <= 1 {
            return try zip(inputs, labels).map { try attack($0, label: $1, victim: victims[0], synonyms: synonyms, similarity: similarities[0]) }
        }
        let work = UncheckedWork(fooler: self, inputs: inputs, labels: labels, victims: victims, similarities: similarities, synonyms: synonyms)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            while let i = box.next() {
                do {
                    box.set(i, try work.fooler.attack(work.inputs[i], label: work.labels[i], victim: work.victims[w],
                                                       synonyms: work.synonyms, similarity: work.similarities[w]))
                } catch {
                    box.fail(error)
                }
            }
        }
        return try box.results()
    }
}

/// What the workers read: the victims and similarities are each used by one worker only, the rest
/// is read-only.
private struct UncheckedWork: @unchecked Sendable {
    let fooler: TextFooler
    let inputs: [AttackInput]
    let labels: [Int]
    let victims: [VictimClassifier]
    let similarities: [SentenceSimilarity]
    let synonyms: SynonymSource
}

/// The next example to attack, the outcomes so far and the first error (which stops the rest).
private final class AttackBox: @unchecked Sendable {
    private let lock = NSLock()
    private var cursor = 0
    private var outcomes: [AttackOutcome?]
    private var error: Error?

    init(count: Int) { outcomes = Array(repeating: nil, count: count) }

    func next() -> Int? {
        lock.lock(); defer { lock.unlock() }
        guard error == nil, cursor < outcomes.count else { return nil }
        cursor += 1
        return cursor - 1
    }

    func set(_ i: Int, _ outcome: AttackOutcome) { lock.lock(); outcomes[i] = outcome; lock.unlock() }
    func fail(_ e: Error) { lock.lock(); if error == nil { error = e }; lock.unlock() }

    func results() throws -> [AttackOutcome] {
        if let error { throw error }
        return outcomes.map { $0! }
    }
}

/// Angular similarity of mean-pooled, normalised sentence embeddings from an encoder (the packaged
/// all-MiniLM-L6-v2 stands in for the Universal Sentence Encoder the study used). Single-threaded,
/// in batches of 32 whatever the machine, so the similarities — and the attack's path — are the
/// same everywhere; `TextFooler.attackAll` attacks several examples at once instead.
public final class EncoderSimilarity: SentenceSimilarity {
    let pretrained: PretrainedEncoder
    let runner: EncoderRunner

    public init(pretrained: PretrainedEncoder) {
        self.pretrained = pretrained
        runner = EncoderRunner(model: pretrained.model, threads: 1)
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
