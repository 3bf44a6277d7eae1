/// HF `added_tokens`: strings (special tokens such as `[MASK]` or `<mask>`, or user-added words)
/// that are cut out of the input as whole tokens before the model sees it. Tokens with
/// `normalized: false` are matched on the raw text, the others on the normalized text.
struct AddedToken: Sendable {
    let id: Int
    let content: String
    let singleWord: Bool
    let lstrip: Bool
    let rstrip: Bool
    let normalized: Bool
    let special: Bool

    init(_ node: TokenizerJSON) throws {
        id = try node.int("id")
        content = try node.string("content")
        special = try node.bool("special", default: false)
        singleWord = try node.bool("single_word", default: false)
        lstrip = try node.bool("lstrip", default: false)
        rstrip = try node.bool("rstrip", default: false)
        normalized = try node.bool("normalized", default: !special)
    }
}

/// A piece of input: plain text still to tokenize, or an added token already resolved.
enum TextSegment {
    case text(ArraySlice<Unicode.Scalar>)
    case token(id: Int, text: String)
}

/// Finds added tokens leftmost-longest, like the Aho-Corasick automaton HF builds.
struct AddedTokenMatcher: Sendable {
    private struct Pattern: Sendable {
        let scalars: [Unicode.Scalar]
        let token: AddedToken
    }

    private let patterns: [Pattern]
    /// Pattern indices by first scalar, longest pattern first.
    private let byFirst: [Unicode.Scalar: [Int]]

    /// `tokens` are matched by `pattern(token)`; empty patterns are ignored.
    init(_ tokens: [AddedToken], pattern: (AddedToken) -> [Unicode.Scalar]) {
        var seen = Set<[UInt32]>()
        var list: [Pattern] = []
        for t in tokens {
            let p = pattern(t)
            guard !p.isEmpty, seen.insert(p.map(\.value)).inserted else { continue }
            list.append(Pattern(scalars: p, token: t))
        }
        var index: [Unicode.Scalar: [Int]] = [:]
        for (i, p) in list.enumerated() { index[p.scalars[0], default: []].append(i) }
        for key in index.keys { index[key]?.sort { list[$0].scalars.count > list[$1].scalars.count } }
        patterns = list
        byFirst = index
    }

    var isEmpty: Bool { patterns.isEmpty }

    /// Splits `s` into text and added-token segments covering it.
    func split(_ s: ArraySlice<Unicode.Scalar>) -> [TextSegment] {
        if patterns.isEmpty || s.isEmpty { return [.text(s)] }
        var out: [TextSegment] = []
        let lo = s.startIndex, hi = s.endIndex
        var done = lo  // end of the previous token
        var i = lo
        while i < hi {
            guard let candidates = byFirst[s[i]] else { i += 1; continue }
            var found: Pattern?
            for c in candidates {
                let p = patterns[c].scalars
                if i + p.count <= hi && s[i..<(i + p.count)].elementsEqual(p) { found = patterns[c]; break }
            }
            guard let match = found else { i += 1; continue }
            var start = i
            var stop = i + match.scalars.count
            let token = match.token
            if token.singleWord {
                let wordBefore = start > lo && CharClass.isWordChar(s[start - 1])
                let wordAfter = stop < hi && CharClass.isWordChar(s[stop])
                if wordBefore || wordAfter { i = stop; continue }
            }
            if token.lstrip {
                while start > done && CharClass.isWhitespace(s[start - 1]) { start -= 1 }
            }
            if token.rstrip {
                while stop < hi && CharClass.isWhitespace(s[stop]) { stop += 1 }
            }
            if done < start { out.append(.text(s[done..<start])) }
            var text = String()
            text.unicodeScalars.append(contentsOf: s[start..<stop])
            out.append(.token(id: token.id, text: text))
            done = stop
            i = stop
        }
        if done < hi { out.append(.text(s[done..<hi])) }
        return out
    }
}
