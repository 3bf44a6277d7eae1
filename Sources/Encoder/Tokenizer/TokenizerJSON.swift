import Foundation

/// A value inside a parsed `tokenizer.json`, remembering where it came from so that every
/// error can name the file and the field path (e.g. `pre_tokenizer.pretokenizers[1].type`).
struct TokenizerJSON {
    let value: Any
    let path: String
    let file: String

    var isNull: Bool { value is NSNull }
    var object: [String: Any]? { value as? [String: Any] }
    var array: [Any]? { value as? [Any] }

    func fieldPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func invalid(_ reason: String, field: String? = nil) -> TokenizerError {
        .invalidField(file: file, field: field ?? (path.isEmpty ? "(top level)" : path), reason: reason)
    }

    func unsupported(_ key: String, _ value: String, supported: [String]) -> TokenizerError {
        .unsupported(file: file, field: fieldPath(key), value: value, supported: supported)
    }

    /// The child at `key`; nil when absent or JSON null.
    func child(_ key: String) throws -> TokenizerJSON? {
        guard let obj = object else { throw invalid("expected a JSON object") }
        guard let v = obj[key], !(v is NSNull) else { return nil }
        return TokenizerJSON(value: v, path: fieldPath(key), file: file)
    }

    func require(_ key: String) throws -> TokenizerJSON {
        guard let node = try child(key) else { throw invalid("missing field", field: fieldPath(key)) }
        return node
    }

    func element(_ index: Int, _ value: Any) -> TokenizerJSON {
        TokenizerJSON(value: value, path: "\(path)[\(index)]", file: file)
    }

    /// The elements of this array.
    func elements() throws -> [TokenizerJSON] {
        guard let arr = array else { throw invalid("expected a JSON array") }
        return arr.enumerated().map { element($0.offset, $0.element) }
    }

    func asString() throws -> String {
        guard let s = value as? String else { throw invalid("expected a string") }
        return s
    }

    func asInt() throws -> Int {
        guard let i = Self.integer(value) else { throw invalid("expected an integer") }
        return i
    }

    /// An integral JSON number as Int (`as? NSNumber` is much faster than `as? Int` on Linux).
    static func integer(_ value: Any) -> Int? {
        if let n = value as? NSNumber {
            let i = n.intValue
            return n.doubleValue == Double(i) ? i : nil
        }
        return value as? Int
    }

    func asBool() throws -> Bool {
        guard let b = value as? Bool else { throw invalid("expected true or false") }
        return b
    }

    // Convenience accessors for object fields.
    func string(_ key: String) throws -> String { try require(key).asString() }
    func optionalString(_ key: String) throws -> String? { try child(key)?.asString() }
    func int(_ key: String) throws -> Int { try require(key).asInt() }
    func optionalInt(_ key: String) throws -> Int? { try child(key)?.asInt() }
    func bool(_ key: String, default def: Bool) throws -> Bool { try child(key)?.asBool() ?? def }
    func optionalBool(_ key: String) throws -> Bool? { try child(key)?.asBool() }

    /// The `type` tag of a component.
    func typeTag() throws -> String { try string("type") }
}
