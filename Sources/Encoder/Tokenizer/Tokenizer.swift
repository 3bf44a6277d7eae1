import Foundation

/// The result of encoding one text or text pair.
public struct Encoding: Equatable, Sendable {
    /// Token ids, special tokens included.
    public var ids: [Int]
    /// Token type (segment) ids.
    public var typeIds: [Int]
    /// Token strings.
    public var tokens: [String]

    public init(ids: [Int] = [], typeIds: [Int] = [], tokens: [String] = []) {
        self.ids = ids
        self.typeIds = typeIds
        self.tokens = tokens
    }

    public var count: Int { ids.count }
}

/// A Hugging Face `tokenizer.json` pipeline: added tokens → normalizer → pre-tokenizer →
/// model → truncation → post-processor. Immutable after `load`; safe to share across threads.
/// Padding is left to the caller (see `padId`).
public final class Tokenizer: Sendable {
    let normalizer: (any Normalizer)?
    let preTokenizer: (any PreTokenizer)?
    let model: any TokenizerModel
    let postProcessor: (any PostProcessor)?
    let rawAddedTokens: AddedTokenMatcher
    let normalizedAddedTokens: AddedTokenMatcher
    let addedTokens: [AddedToken]
    let truncation: Truncation?

    /// `padding.pad_id` if the file has padding settings, else the id of `[PAD]` or `<pad>`, else 0.
    public let padId: Int
    /// `truncation.max_length` from the file, if it configures truncation.
    public var defaultMaxLength: Int? { truncation?.maxLength }
    /// Number of distinct tokens, added tokens included (HF `get_vocab_size()`).
    public let vocabSize: Int

    /// Loads `tokenizer.json` (or the `tokenizer.json` inside a directory).
    public static func load(contentsOf url: URL) throws -> Tokenizer {
        var url = url
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw TokenizerError.fileNotFound(path: url.path)
        }
        if isDirectory.boolValue {
            url = url.appendingPathComponent("tokenizer.json")
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw TokenizerError.fileNotFound(path: url.path)
            }
        }
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw TokenizerError.unreadable(path: url.path, reason: "\(error.localizedDescription)")
        }
        return try load(data: data, name: url.path)
    }

    /// Parses tokenizer JSON held in memory; `name` is used in error messages.
    static func load(data: Data, name: String) throws -> Tokenizer {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            let nsError = error as NSError
            let detail = (nsError.userInfo[NSDebugDescriptionErrorKey] as? String) ?? nsError.localizedDescription
            throw TokenizerError.malformedJSON(file: name, reason: detail)
        }
        guard object is [String: Any] else {
            throw TokenizerError.malformedJSON(file: name, reason: "the top level is not a JSON object")
        }
        return try Tokenizer(TokenizerJSON(value: object, path: "", file: name))
    }

    init(_ root: TokenizerJSON) throws {
        normalizer = try root.child("normalizer").map(NormalizerFactory.make)
        preTokenizer = try root.child("pre_tokenizer").map(PreTokenizerFactory.make)
        model = try ModelFactory.make(root.require("model"))
        postProcessor = try root.child("post_processor").map(PostProcessorFactory.make)
        truncation = try root.child("truncation").map(Truncation.init)

        let added = try root.child("added_tokens")?.elements().map(AddedToken.init) ?? []
        addedTokens = added
        rawAddedTokens = AddedTokenMatcher(added.filter { !$0.normalized }) { Array($0.content.unicodeScalars) }
        let normalizer = self.normalizer
        normalizedAddedTokens = AddedTokenMatcher(added.filter { $0.normalized }) {
            let scalars = Array($0.content.unicodeScalars)
            return normalizer?.normalize(scalars) ?? scalars
        }

        let vocab = model.vocab
        vocabSize = vocab.count + Set(added.map(\.content)).filter { vocab.id($0) == nil }.count

        func id(of token: String) -> Int? {
            added.first { $0.content == token }?.id ?? vocab.id(token)
        }
        if let padding = try root.child("padding"), let padId = try padding.optionalInt("pad_id") {
            self.padId = padId
        } else {
            padId = id(of: "[PAD]") ?? id(of: "<pad>") ?? 0
        }
    }

    /// The id of `token` (an added token or a model vocabulary entry).
    public func tokenId(_ token: String) -> Int? {
        addedTokens.first { $0.content == token }?.id ?? model.vocab.id(token)
    }

    /// Encodes `text` (and optionally `pair`) with special tokens. `maxLength` (special tokens
    /// included) overrides the file's truncation length; when nil the file's truncation applies,
    /// if it has one. Truncation uses the file's strategy, else `longest_first`.
    public func encode(_ text: String, pair: String? = nil, maxLength: Int? = nil) throws -> Encoding {
        var first = try encodeSequence(text, typeId: 0)
        var second = try pair.map { try encodeSequence($0, typeId: 1) }
        if let limit = maxLength ?? truncation?.maxLength {
            let added = postProcessor?.addedTokens(isPair: second != nil) ?? 0
            var settings = truncation ?? Truncation(maxLength: limit)
            settings.maxLength = max(0, limit - added)
            try settings.apply(&first, &second)
        }
        let parts = second.map { [first, $0] } ?? [first]
        var out = Encoding()
        for part in postProcessor?.process(parts) ?? parts { out.append(part) }
        return out
    }

    /// One sequence through added tokens, normalizer, pre-tokenizer and model.
    func encodeSequence(_ text: String, typeId: Int) throws -> Encoding {
        var ids: [Int] = []
        var tokens: [String] = []
        var words: [[Unicode.Scalar]] = []
        let scalars = Array(text.unicodeScalars)
        for raw in rawAddedTokens.split(scalars[...]) {
            switch raw {
            case let .token(id, s):
                ids.append(id); tokens.append(s)
            case let .text(piece):
                let normalized = normalizer?.normalize(Array(piece)) ?? Array(piece)
                for segment in normalizedAddedTokens.split(normalized[...]) {
                    switch segment {
                    case let .token(id, s):
                        ids.append(id); tokens.append(s)
                    case let .text(part):
                        guard !part.isEmpty else { continue }
                        words.removeAll(keepingCapacity: true)
                        if let preTokenizer {
                            preTokenizer.split(Array(part), into: &words)
                        } else {
                            words.append(Array(part))
                        }
                        for word in words where !word.isEmpty {
                            try model.tokenize(word, ids: &ids, tokens: &tokens)
                        }
                    }
                }
            }
        }
        return Encoding(ids: ids, typeIds: Array(repeating: typeId, count: ids.count), tokens: tokens)
    }
}
