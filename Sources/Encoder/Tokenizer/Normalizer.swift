import Foundation

/// A text normalizer (HF `normalizer` section), working on Unicode scalars.
protocol Normalizer: Sendable {
    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar]
}

enum NormalizerFactory {
    static let supported = [
        "BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD", "StripAccents", "Strip",
        "Prepend", "Replace", "Sequence",
    ]

    static func make(_ node: TokenizerJSON) throws -> any Normalizer {
        let type = try node.typeTag()
        switch type {
        case "BertNormalizer":
            let lowercase = try node.bool("lowercase", default: true)
            return BertNormalizer(
                cleanText: try node.bool("clean_text", default: true),
                handleChineseChars: try node.bool("handle_chinese_chars", default: true),
                stripAccents: try node.optionalBool("strip_accents") ?? lowercase,
                lowercase: lowercase)
        case "Lowercase": return LowercaseNormalizer()
        case "NFC": return UnicodeFormNormalizer(form: .nfc)
        case "NFD": return UnicodeFormNormalizer(form: .nfd)
        case "NFKC": return UnicodeFormNormalizer(form: .nfkc)
        case "NFKD": return UnicodeFormNormalizer(form: .nfkd)
        case "StripAccents": return StripAccentsNormalizer()
        case "Strip":
            return StripNormalizer(left: try node.bool("strip_left", default: true),
                                   right: try node.bool("strip_right", default: true))
        case "Prepend":
            return PrependNormalizer(prefix: Array(try node.string("prepend").unicodeScalars))
        case "Replace":
            let pattern = try node.require("pattern")
            guard let literal = try pattern.child("String") else {
                let kind = pattern.object?.keys.sorted().first ?? "?"
                throw pattern.unsupported("type", kind, supported: ["String"])
            }
            return ReplaceNormalizer(pattern: Array(try literal.asString().unicodeScalars),
                                     content: Array(try node.string("content").unicodeScalars))
        case "Sequence":
            let items = try node.require("normalizers").elements()
            return SequenceNormalizer(steps: try items.map(make))
        default:
            throw node.unsupported("type", type, supported: supported)
        }
    }
}

// MARK: - Shared helpers

enum UnicodeForm: Sendable {
    case nfc, nfd, nfkc, nfkd

    func apply(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        if CharClass.isASCII(text) { return text }  // ASCII is invariant under every form
        var s = String()
        s.unicodeScalars.append(contentsOf: text)
        let out: String
        switch self {
        case .nfc: out = s.precomposedStringWithCanonicalMapping
        case .nfd: out = s.decomposedStringWithCanonicalMapping
        case .nfkc: out = s.precomposedStringWithCompatibilityMapping
        case .nfkd: out = s.decomposedStringWithCompatibilityMapping
        }
        return Array(out.unicodeScalars)
    }
}

extension CharClass {
    /// Full (context-free) Unicode lowercase mapping per scalar, like Rust's `char::to_lowercase`.
    static func lowercased(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        for c in text {
            let v = c.value
            if v < 0x80 {
                out.append(v >= 0x41 && v <= 0x5A ? Unicode.Scalar(UInt8(v + 32)) : c)
            } else if c.properties.changesWhenLowercased {
                out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
            } else {
                out.append(c)
            }
        }
        return out
    }

    /// BertNormalizer's accent stripping: drops nonspacing marks (Mn) only.
    static func strippingAccents(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        text.filter { !CharClass.isNonspacingMark($0) }
    }
}

// MARK: - Normalizers

struct BertNormalizer: Normalizer {
    let cleanText: Bool
    let handleChineseChars: Bool
    let stripAccents: Bool
    let lowercase: Bool

    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count + 8)
        for var c in text {
            if cleanText {
                if c.value == 0 || c.value == 0xFFFD || CharClass.isBertControl(c) { continue }
                if CharClass.isWhitespace(c) { c = " " }
            }
            if handleChineseChars && c.value >= 0x3400 && CharClass.isChineseChar(c) {
                out.append(" "); out.append(c); out.append(" ")
            } else {
                out.append(c)
            }
        }
        if stripAccents { out = CharClass.strippingAccents(UnicodeForm.nfd.apply(out)) }
        if lowercase { out = CharClass.lowercased(out) }
        return out
    }
}

struct LowercaseNormalizer: Normalizer {
    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] { CharClass.lowercased(text) }
}

struct UnicodeFormNormalizer: Normalizer {
    let form: UnicodeForm
    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] { form.apply(text) }
}

/// HF `StripAccents`: drops every combining mark (Mn, Mc, Me), unlike BertNormalizer's
/// strip_accents which drops only Mn. Meant to follow NFD/NFKD.
struct StripAccentsNormalizer: Normalizer {
    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] { text.filter { !CharClass.isMark($0) } }
}

struct StripNormalizer: Normalizer {
    let left: Bool
    let right: Bool
    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var lo = 0, hi = text.count
        if left { while lo < hi && CharClass.isWhitespace(text[lo]) { lo += 1 } }
        if right { while hi > lo && CharClass.isWhitespace(text[hi - 1]) { hi -= 1 } }
        return Array(text[lo..<hi])
    }
}

struct PrependNormalizer: Normalizer {
    let prefix: [Unicode.Scalar]
    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] { text.isEmpty ? text : prefix + text }
}

/// Literal (non-regex) replacement, left to right, non-overlapping.
struct ReplaceNormalizer: Normalizer {
    let pattern: [Unicode.Scalar]
    let content: [Unicode.Scalar]
    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard !pattern.isEmpty, text.count >= pattern.count else { return text }
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        var i = 0
        while i < text.count {
            if i + pattern.count <= text.count && text[i] == pattern[0]
                && text[i..<(i + pattern.count)].elementsEqual(pattern) {
                out.append(contentsOf: content)
                i += pattern.count
            } else {
                out.append(text[i])
                i += 1
            }
        }
        return out
    }
}

struct SequenceNormalizer: Normalizer {
    let steps: [any Normalizer]
    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        steps.reduce(text) { $1.normalize($0) }
    }
}
