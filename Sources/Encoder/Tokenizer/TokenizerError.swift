import Foundation

/// Everything that can go wrong while loading a `tokenizer.json` or encoding text with it.
public enum TokenizerError: Error, CustomStringConvertible, Equatable, Sendable {
    /// No file at `path`.
    case fileNotFound(path: String)
    /// The file exists but could not be read.
    case unreadable(path: String, reason: String)
    /// The file is not valid JSON (or its top level is not an object).
    case malformedJSON(file: String, reason: String)
    /// A component `type` (or another enumerated setting) this implementation does not support.
    case unsupported(file: String, field: String, value: String, supported: [String])
    /// A field is missing, has the wrong JSON type, or an inconsistent value.
    case invalidField(file: String, field: String, reason: String)
    /// Encoding failed (e.g. a truncation that cannot be satisfied).
    case encodingFailed(reason: String)

    public var description: String {
        switch self {
        case let .fileNotFound(path):
            return "tokenizer file not found: \(path) (run `make setup` to fetch and unpack the model assets)"
        case let .unreadable(path, reason):
            return "\(path): cannot read tokenizer file: \(reason)"
        case let .malformedJSON(file, reason):
            return "\(file): malformed JSON: \(reason)"
        case let .unsupported(file, field, value, supported):
            let noun = field.hasSuffix(".type") ? String(field.dropLast(5)) + " type" : field
            return "\(file): unsupported \(noun) \"\(value)\" (supported: \(supported.joined(separator: ", ")))"
        case let .invalidField(file, field, reason):
            return "\(file): invalid \(field): \(reason)"
        case let .encodingFailed(reason):
            return "tokenizer: \(reason)"
        }
    }
}
