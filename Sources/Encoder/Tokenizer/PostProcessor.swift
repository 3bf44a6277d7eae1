/// A post-processor (HF `post_processor` section): adds special tokens and sets type ids.
/// It receives one encoding per input sequence (type ids 0 for the first, 1 for the pair) and
/// returns the parts to concatenate.
protocol PostProcessor: Sendable {
    /// How many tokens `process` adds (truncation leaves room for them).
    func addedTokens(isPair: Bool) -> Int
    func process(_ encodings: [Encoding]) -> [Encoding]
}

enum PostProcessorFactory {
    static let supported = ["TemplateProcessing", "BertProcessing", "RobertaProcessing", "ByteLevel", "Sequence"]

    static func make(_ node: TokenizerJSON) throws -> any PostProcessor {
        let type = try node.typeTag()
        switch type {
        case "TemplateProcessing": return try TemplateProcessor(node)
        case "BertProcessing":
            return BertProcessor(cls: try specialPair(node.require("cls")), sep: try specialPair(node.require("sep")))
        case "RobertaProcessing":
            return RobertaProcessor(cls: try specialPair(node.require("cls")), sep: try specialPair(node.require("sep")))
        case "ByteLevel": return IdentityProcessor()
        case "Sequence":
            let items = try node.require("processors").elements()
            return SequenceProcessor(steps: try items.map(make))
        default:
            throw node.unsupported("type", type, supported: supported)
        }
    }

    /// `["[SEP]", 102]`
    static func specialPair(_ node: TokenizerJSON) throws -> SpecialToken {
        let items = try node.elements()
        guard items.count == 2 else { throw node.invalid("expected [token, id]") }
        return SpecialToken(ids: [try items[1].asInt()], tokens: [try items[0].asString()])
    }
}

struct SpecialToken: Sendable {
    var ids: [Int]
    var tokens: [String]
}

extension Encoding {
    mutating func append(_ other: Encoding, typeId: Int? = nil) {
        ids += other.ids
        tokens += other.tokens
        if let typeId {
            typeIds += Array(repeating: typeId, count: other.ids.count)
        } else {
            typeIds += other.typeIds
        }
    }

    mutating func append(_ special: SpecialToken, typeId: Int) {
        ids += special.ids
        tokens += special.tokens
        typeIds += Array(repeating: typeId, count: special.ids.count)
    }
}

/// `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]`; type ids 0 for the first part, 1 for the second.
struct BertProcessor: PostProcessor {
    let cls: SpecialToken
    let sep: SpecialToken

    func addedTokens(isPair: Bool) -> Int { isPair ? 3 : 2 }

    func process(_ encodings: [Encoding]) -> [Encoding] {
        var out = Encoding()
        for (i, e) in encodings.enumerated() {
            let t = i == 0 ? 0 : 1
            if i == 0 { out.append(cls, typeId: t) }
            out.append(e, typeId: t)
            out.append(sep, typeId: t)
        }
        return [out]
    }
}

/// `<s> A </s>` and `<s> A </s></s> B </s>`; every type id is 0.
struct RobertaProcessor: PostProcessor {
    let cls: SpecialToken
    let sep: SpecialToken

    func addedTokens(isPair: Bool) -> Int { isPair ? 4 : 2 }

    func process(_ encodings: [Encoding]) -> [Encoding] {
        var out = Encoding()
        for (i, e) in encodings.enumerated() {
            out.append(i == 0 ? cls : sep, typeId: 0)
            out.append(e, typeId: 0)
            out.append(sep, typeId: 0)
        }
        return [out]
    }
}

/// HF `TemplateProcessing`.
struct TemplateProcessor: PostProcessor {
    enum Piece: Sendable {
        case sequence(index: Int, typeId: Int)
        case special(SpecialToken, typeId: Int)
    }

    let single: [Piece]
    let pair: [Piece]?

    init(_ node: TokenizerJSON) throws {
        var specials: [String: SpecialToken] = [:]
        if let table = try node.child("special_tokens") {
            guard let obj = table.object else { throw table.invalid("expected an object") }
            for key in obj.keys {
                guard let entry = try table.child(key) else { continue }
                let ids = try entry.require("ids").elements().map { try $0.asInt() }
                let tokens = try entry.require("tokens").elements().map { try $0.asString() }
                guard ids.count == tokens.count else { throw entry.invalid("ids and tokens differ in length") }
                specials[try entry.optionalString("id") ?? key] = SpecialToken(ids: ids, tokens: tokens)
            }
        }
        single = try Self.parse(node.require("single"), specials)
        pair = try node.child("pair").map { try Self.parse($0, specials) }
    }

    private static func sequenceIndex(_ id: String, _ node: TokenizerJSON) throws -> Int {
        switch id {
        case "A": return 0
        case "B": return 1
        default: throw node.invalid("unknown sequence id \"\(id)\" (expected A or B)")
        }
    }

    private static func special(_ name: String, _ specials: [String: SpecialToken], _ node: TokenizerJSON) throws -> SpecialToken {
        guard let s = specials[name] else {
            throw node.invalid("special token \"\(name)\" is not defined in special_tokens")
        }
        return s
    }

    /// A template is either a list of `{"SpecialToken": {...}}` / `{"Sequence": {...}}` objects
    /// or the string form `"[CLS]:0 $A:0 [SEP]:0"`.
    static func parse(_ node: TokenizerJSON, _ specials: [String: SpecialToken]) throws -> [Piece] {
        if let text = node.value as? String {
            return try text.split(separator: " ").map { item in
                var name = String(item)
                var typeId = 0
                if let colon = name.lastIndex(of: ":"), let t = Int(name[name.index(after: colon)...]) {
                    typeId = t
                    name = String(name[..<colon])
                }
                if name.hasPrefix("$") {
                    // "$", "$A", "$B", or "$<n>" (sequence A with type id n).
                    switch name.dropFirst() {
                    case "", "A", "a": return .sequence(index: 0, typeId: typeId)
                    case "B", "b": return .sequence(index: 1, typeId: typeId)
                    case let rest:
                        guard let t = Int(rest) else { throw node.invalid("unknown sequence \"\(name)\" in template") }
                        return .sequence(index: 0, typeId: t)
                    }
                }
                return .special(try special(name, specials, node), typeId: typeId)
            }
        }
        return try node.elements().map { item in
            if let seq = try item.child("Sequence") {
                return .sequence(index: try sequenceIndex(seq.string("id"), seq), typeId: try seq.optionalInt("type_id") ?? 0)
            }
            if let sp = try item.child("SpecialToken") {
                return .special(try special(sp.string("id"), specials, sp), typeId: try sp.optionalInt("type_id") ?? 0)
            }
            throw item.invalid("expected a Sequence or SpecialToken piece")
        }
    }

    func addedTokens(isPair: Bool) -> Int {
        (isPair ? (pair ?? []) : single).reduce(0) {
            if case let .special(s, _) = $1 { return $0 + s.ids.count }
            return $0
        }
    }

    func process(_ encodings: [Encoding]) -> [Encoding] {
        let template = encodings.count > 1 ? (pair ?? single) : single
        var out = Encoding()
        for piece in template {
            switch piece {
            case let .sequence(index, typeId):
                if index < encodings.count { out.append(encodings[index], typeId: typeId) }
            case let .special(s, typeId):
                out.append(s, typeId: typeId)
            }
        }
        return [out]
    }
}

/// ByteLevel post-processing only trims offsets, which we do not track.
struct IdentityProcessor: PostProcessor {
    func addedTokens(isPair: Bool) -> Int { 0 }
    func process(_ encodings: [Encoding]) -> [Encoding] { encodings }
}

struct SequenceProcessor: PostProcessor {
    let steps: [any PostProcessor]
    func addedTokens(isPair: Bool) -> Int { steps.reduce(0) { $0 + $1.addedTokens(isPair: isPair) } }
    func process(_ encodings: [Encoding]) -> [Encoding] { steps.reduce(encodings) { $1.process($0) } }
}
