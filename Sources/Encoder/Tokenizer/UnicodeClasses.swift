/// Character classes used by the normalizers and pre-tokenizers, defined to match what Hugging
/// Face `tokenizers` (Rust) uses: `char::is_whitespace`, the `unicode_categories` crate and
/// the Unicode-aware classes of the `regex` crate (`\s`, `\w`, `\p{L}`, `\p{N}`).
enum CharClass {
    /// Rust `char::is_whitespace` / regex `\s`: the Unicode White_Space property.
    @inline(__always)
    static func isWhitespace(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if v < 0x80 { return v == 0x20 || (v >= 0x09 && v <= 0x0D) }
        return c.properties.isWhitespace
    }

    /// BERT's "control" test: general category Cc, Cf, Co or Cs, except \t \n \r.
    static func isBertControl(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if v == 0x09 || v == 0x0A || v == 0x0D { return false }
        if v < 0x20 || v == 0x7F { return true }
        if v < 0x80 { return false }
        switch c.properties.generalCategory {
        case .control, .format, .privateUse, .surrogate: return true
        default: return false
        }
    }

    /// BERT's punctuation: any ASCII punctuation (33-47, 58-64, 91-96, 123-126) or a Unicode
    /// P* category (Pc, Pd, Ps, Pe, Pi, Pf, Po).
    @inline(__always)
    static func isBertPunctuation(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if v < 0x80 {
            return (v >= 33 && v <= 47) || (v >= 58 && v <= 64) || (v >= 91 && v <= 96) || (v >= 123 && v <= 126)
        }
        return isPunctuationCategory(c)
    }

    static func isPunctuationCategory(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default:
            return false
        }
    }

    /// The CJK ideograph blocks BERT surrounds with spaces.
    static func isChineseChar(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }

    /// Mn (nonspacing mark), the marks StripAccents drops.
    static func isNonspacingMark(_ c: Unicode.Scalar) -> Bool {
        c.value >= 0x300 && c.properties.generalCategory == .nonspacingMark
    }

    /// General category M* (Mn, Mc, Me).
    static func isMark(_ c: Unicode.Scalar) -> Bool {
        guard c.value >= 0x300 else { return false }
        switch c.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark: return true
        default: return false
        }
    }

    /// Regex `\p{L}`.
    @inline(__always)
    static func isLetter(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if v < 0x80 { return (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) }
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    /// Regex `\p{N}`.
    @inline(__always)
    static func isNumber(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if v < 0x80 { return v >= 0x30 && v <= 0x39 }
        switch c.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// Regex `\w` (Unicode): Alphabetic, M*, Nd, Pc, Join_Control.
    static func isWordChar(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if v < 0x80 {
            return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || v == 0x5F
        }
        if v == 0x200C || v == 0x200D { return true }
        let p = c.properties
        if p.isAlphabetic { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    static func isASCII(_ s: [Unicode.Scalar]) -> Bool {
        for c in s where c.value >= 0x80 { return false }
        return true
    }
}
