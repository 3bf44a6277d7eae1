/// A pre-tokenizer (HF `pre_tokenizer` section): splits a normalized piece of text into words.
protocol PreTokenizer: Sendable {
    /// Splits `piece` and appends the non-empty words to `words`.
    func split(_ piece: [Unicode.Scalar], into words: inout [[Unicode.Scalar]])
}

enum PreTokenizerFactory {
    static let supported = ["BertPreTokenizer", "ByteLevel", "Whitespace", "WhitespaceSplit", "Sequence"]

    static func make(_ node: TokenizerJSON) throws -> any PreTokenizer {
        let type = try node.typeTag()
        switch type {
        case "BertPreTokenizer": return BertPreTokenizer()
        case "Whitespace": return WhitespacePreTokenizer()
        case "WhitespaceSplit": return WhitespaceSplitPreTokenizer()
        case "ByteLevel":
            return ByteLevelPreTokenizer(addPrefixSpace: try node.bool("add_prefix_space", default: true),
                                         useRegex: try node.bool("use_regex", default: true))
        case "Sequence":
            let items = try node.require("pretokenizers").elements()
            return SequencePreTokenizer(steps: try items.map(make))
        default:
            throw node.unsupported("type", type, supported: supported)
        }
    }
}

/// Splits on whitespace (dropped) and isolates every punctuation character.
struct BertPreTokenizer: PreTokenizer {
    func split(_ piece: [Unicode.Scalar], into words: inout [[Unicode.Scalar]]) {
        var start = 0
        for (i, c) in piece.enumerated() {
            if CharClass.isWhitespace(c) {
                if start < i { words.append(Array(piece[start..<i])) }
                start = i + 1
            } else if CharClass.isBertPunctuation(c) {
                if start < i { words.append(Array(piece[start..<i])) }
                words.append([c])
                start = i + 1
            }
        }
        if start < piece.count { words.append(Array(piece[start...])) }
    }
}

/// HF `Whitespace`: the regex `\w+|[^\w\s]+`; whitespace is dropped.
struct WhitespacePreTokenizer: PreTokenizer {
    func split(_ piece: [Unicode.Scalar], into words: inout [[Unicode.Scalar]]) {
        var i = 0
        let n = piece.count
        while i < n {
            let c = piece[i]
            if CharClass.isWhitespace(c) { i += 1; continue }
            let word = CharClass.isWordChar(c)
            var j = i + 1
            while j < n {
                let d = piece[j]
                if CharClass.isWhitespace(d) || CharClass.isWordChar(d) != word { break }
                j += 1
            }
            words.append(Array(piece[i..<j]))
            i = j
        }
    }
}

/// HF `WhitespaceSplit`: split on whitespace, dropping it.
struct WhitespaceSplitPreTokenizer: PreTokenizer {
    func split(_ piece: [Unicode.Scalar], into words: inout [[Unicode.Scalar]]) {
        var start = 0
        for (i, c) in piece.enumerated() where CharClass.isWhitespace(c) {
            if start < i { words.append(Array(piece[start..<i])) }
            start = i + 1
        }
        if start < piece.count { words.append(Array(piece[start...])) }
    }
}

/// GPT-2 / RoBERTa byte-level pre-tokenizer: optional prefix space, the GPT-2 split pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// (implemented by hand), then every UTF-8 byte mapped to its printable stand-in character.
struct ByteLevelPreTokenizer: PreTokenizer {
    let addPrefixSpace: Bool
    let useRegex: Bool

    /// GPT-2's byte → unicode table: printable Latin-1 bytes map to themselves, the other 68
    /// bytes to U+0100 and up, in byte order.
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt8(b))
            } else {
                table[b] = Unicode.Scalar(next) ?? " "
                next += 1
            }
        }
        return table
    }()

    func split(_ piece: [Unicode.Scalar], into words: inout [[Unicode.Scalar]]) {
        var text = piece
        if addPrefixSpace && text.first != " " { text.insert(" ", at: 0) }
        if useRegex {
            for range in Self.gpt2Split(text) { words.append(Self.mapBytes(text[range])) }
        } else if !text.isEmpty {
            words.append(Self.mapBytes(text[...]))
        }
    }

    static func mapBytes(_ scalars: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(scalars.count)
        let table = byteToScalar
        for c in scalars {
            if c.value < 0x80 {
                out.append(table[Int(c.value)])
            } else {
                guard let bytes = UTF8.encode(c) else { continue }
                for b in bytes { out.append(table[Int(b)]) }
            }
        }
        return out
    }

    private static func isOther(_ c: Unicode.Scalar) -> Bool {
        !CharClass.isWhitespace(c) && !CharClass.isLetter(c) && !CharClass.isNumber(c)
    }

    /// Length of a contraction (`'s 't 're 've 'm 'll 'd`, case-sensitive) starting at `i`, or 0.
    private static func contractionLength(_ s: [Unicode.Scalar], _ i: Int) -> Int {
        guard i + 1 < s.count else { return 0 }
        switch s[i + 1] {
        case "s", "t", "m", "d": return 2
        case "r", "v", "l":
            guard i + 2 < s.count else { return 0 }
            let want: Unicode.Scalar = s[i + 1] == "l" ? "l" : "e"
            return s[i + 2] == want ? 3 : 0
        default: return 0
        }
    }

    /// The ranges matched by the GPT-2 pattern; together they cover `s`.
    static func gpt2Split(_ s: [Unicode.Scalar]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        let n = s.count
        var i = 0
        while i < n {
            let c = s[i]
            var end: Int
            let contraction = c == "'" ? contractionLength(s, i) : 0
            if contraction > 0 {
                end = i + contraction
            } else {
                // ` ?X+`: an optional single U+0020 before a run of one class.
                let j = (c == " " && i + 1 < n) ? i + 1 : i
                let d = s[j]
                if CharClass.isLetter(d) {
                    end = j + 1
                    while end < n && CharClass.isLetter(s[end]) { end += 1 }
                } else if CharClass.isNumber(d) {
                    end = j + 1
                    while end < n && CharClass.isNumber(s[end]) { end += 1 }
                } else if !CharClass.isWhitespace(d) {
                    end = j + 1
                    while end < n && isOther(s[end]) { end += 1 }
                } else {
                    // `\s+(?!\S)` then `\s+`: a whitespace run followed by a non-space gives up
                    // its last character (to prefix the next word) unless it is only one long.
                    var k = i
                    while k < n && CharClass.isWhitespace(s[k]) { k += 1 }
                    end = (k == n || k - i == 1) ? k : k - 1
                }
            }
            out.append(i..<end)
            i = end
        }
        return out
    }
}

struct SequencePreTokenizer: PreTokenizer {
    let steps: [any PreTokenizer]
    func split(_ piece: [Unicode.Scalar], into words: inout [[Unicode.Scalar]]) {
        var current = [piece]
        for step in steps {
            var next: [[Unicode.Scalar]] = []
            for p in current { step.split(p, into: &next) }
            current = next
        }
        words.append(contentsOf: current.filter { !$0.isEmpty })
    }
}
