import Foundation

/// One labelled example of a domain: a text, or a text pair (e.g. question + passage).
public struct Example: Sendable, Equatable, Hashable, Codable {
    /// Stable within the domain (derived from the source: file name, line number, row id), so that
    /// splits, caps and exported files are the same on every machine.
    public var id: String
    public var text: String
    public var textPair: String?
    public var label: String

    public init(id: String, text: String, textPair: String? = nil, label: String) {
        self.id = id; self.text = text; self.textPair = textPair; self.label = label
    }
}

public enum Split: String, Sendable, CaseIterable, Codable {
    case train, validation, test
}

/// An error reading a dataset: names the file (and line, column or field) and what to do.
public struct DatasetError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int?
    public var reason: String
    public var hint: String

    public init(file: String, line: Int? = nil, reason: String, hint: String = "") {
        self.file = file; self.line = line; self.reason = reason; self.hint = hint
    }

    public var description: String {
        let at = line.map { "\(file):\($0)" } ?? file
        return "\(at): \(reason)" + (hint.isEmpty ? "" : " — \(hint)")
    }
}
