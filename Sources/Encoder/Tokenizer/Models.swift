/// A tokenization model (HF `model` section): turns one pre-tokenized word into vocabulary ids.
protocol TokenizerModel: Sendable {
    /// Appends the ids and token strings of `word`.
    func tokenize(_ word: [Unicode.Scalar], ids: inout [Int], tokens: inout [String]) throws
    var vocab: TokenVocab { get }
}

enum ModelFactory {
    static let supported = ["WordPiece", "BPE", "WordLevel"]

    static func make(_ node: TokenizerJSON) throws -> any TokenizerModel {
        // Old files may omit `type`; HF then infers the model from its fields.
        let type: String
        if let tag = try node.optionalString("type") {
            type = tag
        } else if try node.child("merges") != nil {
            type = "BPE"
        } else if try node.child("continuing_subword_prefix") != nil || node.child("max_input_chars_per_word") != nil {
            type = "WordPiece"
        } else {
            type = "WordLevel"
        }
        switch type {
        case "WordPiece": return try WordPieceModel(node)
        case "BPE": return try BPEModel(node)
        case "WordLevel": return try WordLevelModel(node)
        default: throw node.unsupported("type", type, supported: supported)
        }
    }
}

/// UTF-8 bytes of a token; compared byte for byte like HF does (Swift `String` equality would
/// treat canonically equivalent spellings, e.g. precomposed and decomposed Hangul, as equal).
typealias TokenKey = ArraySlice<UInt8>

/// The model's `vocab`: token → id and id → token.
struct TokenVocab: Sendable {
    @inline(__always)
    static func key(_ s: String) -> TokenKey { Array(s.utf8)[...] }

    let ids: [TokenKey: Int]
    let strings: [String]  // by id; "" where no token has that id
    let count: Int

    init(_ node: TokenizerJSON) throws {
        guard let obj = node.object else { throw node.invalid("expected an object mapping tokens to ids") }
        var ids: [TokenKey: Int] = [:]
        ids.reserveCapacity(obj.count)
        var pairs: [(String, Int)] = []
        pairs.reserveCapacity(obj.count)
        var maxId = -1
        for (token, value) in obj {
            guard let id = TokenizerJSON.integer(value), id >= 0, id < 1 << 26 else {
                throw node.invalid("id of token \"\(token)\" is not a non-negative integer")
            }
            ids[Self.key(token)] = id
            pairs.append((token, id))
            maxId = max(maxId, id)
        }
        var strings = [String](repeating: "", count: maxId + 1)
        for (token, id) in pairs { strings[id] = token }
        self.ids = ids
        self.strings = strings
        self.count = ids.count
    }

    func id(_ token: String) -> Int? { ids[Self.key(token)] }

    func token(_ id: Int) -> String { id >= 0 && id < strings.count ? strings[id] : "" }
}

// MARK: - WordPiece

/// Greedy longest-match-first WordPiece, as in BERT.
struct WordPieceModel: TokenizerModel {
    let vocab: TokenVocab
    /// Tokens that start with the continuing prefix, keyed without it.
    let continuation: [TokenKey: Int]
    let unkId: Int
    let unkToken: String
    let maxInputCharsPerWord: Int

    init(_ node: TokenizerJSON) throws {
        vocab = try TokenVocab(node.require("vocab"))
        unkToken = try node.optionalString("unk_token") ?? "[UNK]"
        guard let unk = vocab.id(unkToken) else {
            throw node.invalid("unk token \"\(unkToken)\" is not in model.vocab", field: node.fieldPath("unk_token"))
        }
        unkId = unk
        maxInputCharsPerWord = try node.optionalInt("max_input_chars_per_word") ?? 100
        let prefix = Array((try node.optionalString("continuing_subword_prefix") ?? "##").utf8)
        var cont: [TokenKey: Int] = [:]
        for (key, id) in vocab.ids where key.starts(with: prefix) {
            cont[key.dropFirst(prefix.count)] = id
        }
        continuation = cont
    }

    func tokenize(_ word: [Unicode.Scalar], ids: inout [Int], tokens: inout [String]) throws {
        if word.count > maxInputCharsPerWord {
            ids.append(unkId); tokens.append(unkToken)
            return
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(word.count * 2)
        var bounds = [0]  // byte offset of each scalar boundary
        bounds.reserveCapacity(word.count + 1)
        for c in word {
            if c.value < 0x80 {
                bytes.append(UInt8(c.value))
            } else if let enc = UTF8.encode(c) {
                bytes.append(contentsOf: enc)
            }
            bounds.append(bytes.count)
        }
        let firstNew = ids.count
        var start = 0
        while start < word.count {
            var end = word.count
            var found: Int?
            while end > start {
                let key = bytes[bounds[start]..<bounds[end]]
                if let id = start == 0 ? vocab.ids[key] : continuation[key] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let id = found else {
                // The whole word becomes [UNK].
                ids.removeSubrange(firstNew...)
                tokens.removeSubrange(firstNew...)
                ids.append(unkId); tokens.append(unkToken)
                return
            }
            ids.append(id); tokens.append(vocab.token(id))
            start = end
        }
    }
}

// MARK: - BPE

/// Byte-pair encoding: merges applied by rank (lowest first, leftmost among equal ranks).
struct BPEModel: TokenizerModel {
    let vocab: TokenVocab
    /// (left id << 32 | right id) → (rank << 32 | merged id)
    let merges: [UInt64: UInt64]
    let unkToken: String?
    let unkId: Int?
    let prefix: String
    let suffix: String
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    /// Single-scalar tokens, for the common case with no prefix/suffix: a direct table for
    /// scalars below `charTableSize` (-1 = absent; covers GPT-2's byte alphabet), else a dictionary.
    let charTable: [Int32]
    let charIds: [Unicode.Scalar: Int]
    static let charTableSize = 0x800

    init(_ node: TokenizerJSON) throws {
        let vocab = try TokenVocab(node.require("vocab"))
        self.vocab = vocab
        if let dropout = try node.child("dropout"), let p = dropout.value as? Double, p > 0 {
            throw node.unsupported("dropout", "\(p)", supported: ["null", "0"])
        }
        let unkToken = try node.optionalString("unk_token")
        self.unkToken = unkToken
        unkId = unkToken.flatMap { vocab.id($0) }
        prefix = try node.optionalString("continuing_subword_prefix") ?? ""
        suffix = try node.optionalString("end_of_word_suffix") ?? ""
        fuseUnk = try node.bool("fuse_unk", default: false)
        byteFallback = try node.bool("byte_fallback", default: false)
        ignoreMerges = try node.bool("ignore_merges", default: false)

        var chars: [Unicode.Scalar: Int] = [:]
        var table = [Int32](repeating: -1, count: Self.charTableSize)
        for (key, id) in vocab.ids where key.count <= 4 {
            let scalars = String(decoding: key, as: UTF8.self).unicodeScalars
            guard scalars.count == 1, let c = scalars.first else { continue }
            if c.value < Self.charTableSize { table[Int(c.value)] = Int32(id) } else { chars[c] = id }
        }
        charTable = table
        charIds = chars

        let prefixLen = prefix.utf8.count
        var mergeTable: [UInt64: UInt64] = [:]
        let list = try node.require("merges").elements()
        mergeTable.reserveCapacity(list.count)
        for (rank, item) in list.enumerated() {
            let pair: [String]
            if let s = item.value as? String {
                pair = s.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            } else if let arr = item.value as? [Any] {
                pair = arr.compactMap { $0 as? String }
                if pair.count != arr.count { throw item.invalid("expected two strings") }
            } else {
                throw item.invalid("expected \"a b\" or [\"a\", \"b\"]")
            }
            guard pair.count == 2 else { throw item.invalid("expected exactly two tokens, got \(pair.count)") }
            let a = pair[0], b = pair[1]
            let bRest = b.utf8.count >= prefixLen ? String(decoding: Array(b.utf8).dropFirst(prefixLen), as: UTF8.self) : b
            guard let aId = vocab.id(a) else { throw item.invalid("token \"\(a)\" is not in model.vocab") }
            guard let bId = vocab.id(b) else { throw item.invalid("token \"\(b)\" is not in model.vocab") }
            guard let newId = vocab.id(a + bRest) else { throw item.invalid("merged token \"\(a + bRest)\" is not in model.vocab") }
            mergeTable[UInt64(aId) << 32 | UInt64(bId)] = UInt64(rank) << 32 | UInt64(newId)
        }
        merges = mergeTable
    }

    func tokenize(_ word: [Unicode.Scalar], ids: inout [Int], tokens: inout [String]) throws {
        if word.isEmpty { return }
        if ignoreMerges {
            var s = String(); s.unicodeScalars.append(contentsOf: word)
            if let id = vocab.id(s) { ids.append(id); tokens.append(s); return }
        }
        var syms: [Int] = []
        syms.reserveCapacity(word.count)
        var lastWasUnk = false
        let plain = prefix.isEmpty && suffix.isEmpty
        for (i, c) in word.enumerated() {
            let id: Int?
            if plain {
                if c.value < Self.charTableSize {
                    let t = charTable[Int(c.value)]
                    id = t >= 0 ? Int(t) : nil
                } else {
                    id = charIds[c]
                }
            } else {
                var s = i > 0 ? prefix : ""
                s.unicodeScalars.append(c)
                if i == word.count - 1 { s += suffix }
                id = vocab.id(s)
            }
            if let id {
                syms.append(id); lastWasUnk = false
                continue
            }
            if byteFallback, let enc = UTF8.encode(c) {
                let byteIds = enc.map { vocab.id("<0x" + hex2($0) + ">") }
                if byteIds.allSatisfy({ $0 != nil }) {
                    syms.append(contentsOf: byteIds.compactMap { $0 }); lastWasUnk = false
                    continue
                }
            }
            if let unkToken {
                guard let unk = unkId else {
                    throw TokenizerError.encodingFailed(reason: "BPE unk token \"\(unkToken)\" is not in the vocabulary")
                }
                if !(fuseUnk && lastWasUnk) { syms.append(unk) }
                lastWasUnk = true
            }
            // Without an unk token HF drops the character.
        }
        mergeSymbols(&syms)
        for id in syms { ids.append(id); tokens.append(vocab.token(id)) }
    }

    private func hex2(_ b: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
    }

    @inline(__always)
    private func mergeInfo(_ a: Int, _ b: Int) -> UInt64 {
        merges[UInt64(a) << 32 | UInt64(b)] ?? .max
    }

    /// Repeatedly merges the adjacent pair with the lowest rank (leftmost on ties).
    private func mergeSymbols(_ syms: inout [Int]) {
        guard syms.count > 1 else { return }
        // info[p] describes the pair (syms[p], syms[p+1]); rank in the high 32 bits.
        var info = (0..<(syms.count - 1)).map { mergeInfo(syms[$0], syms[$0 + 1]) }
        while true {
            var best = UInt64.max
            var pos = -1
            for (p, m) in info.enumerated() where m >> 32 < best >> 32 {
                best = m
                pos = p
            }
            if pos < 0 || best == .max { return }
            syms[pos] = Int(best & 0xFFFF_FFFF)
            syms.remove(at: pos + 1)
            info.remove(at: pos)
            if pos > 0 { info[pos - 1] = mergeInfo(syms[pos - 1], syms[pos]) }
            if pos < info.count { info[pos] = mergeInfo(syms[pos], syms[pos + 1]) }
        }
    }
}

// MARK: - WordLevel

struct WordLevelModel: TokenizerModel {
    let vocab: TokenVocab
    let unkToken: String
    let unkId: Int?

    init(_ node: TokenizerJSON) throws {
        vocab = try TokenVocab(node.require("vocab"))
        unkToken = try node.optionalString("unk_token") ?? "<unk>"
        unkId = vocab.id(unkToken)
    }

    func tokenize(_ word: [Unicode.Scalar], ids: inout [Int], tokens: inout [String]) throws {
        var s = String(); s.unicodeScalars.append(contentsOf: word)
        if let id = vocab.id(s) {
            ids.append(id); tokens.append(s)
        } else if let unk = unkId {
            ids.append(unk); tokens.append(unkToken)
        } else {
            throw TokenizerError.encodingFailed(reason: "WordLevel unk token \"\(unkToken)\" is not in the vocabulary")
        }
    }
}
