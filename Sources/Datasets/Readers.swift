import Foundation

// Generic record readers: delimited text (CSV per RFC 4180, TSV, GLUE-style TSV), JSON lines and
// Orange `.tab` files, read into a `RecordTable` and mapped to `Example`s by a `ColumnMapping`.
//
// All parsing works on the file's bytes: delimiters, quotes and line breaks are ASCII, which is the
// same byte in UTF-8, Latin-1 and Windows-1252, so fields are cut first and only the fields are
// decoded. Line numbers are 1-based. In delimited and Orange files LF, CRLF and a bare CR each
// count as one line break (Python's "universal newlines"), also inside quoted fields; JSON lines are
// split at LF only. An example's id names the line on which its record starts. Blank lines are not
// records (they are neither examples nor counted skips).

// MARK: - Encodings

/// A character set a source file may be written in.
public enum Charset: String, Sendable, Hashable, Codable, CaseIterable {
    case utf8 = "utf-8"
    case latin1 = "latin-1"
    /// Windows-1252; the five bytes it leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) decode to the
    /// C1 control characters of the same value, as browsers do.
    case windows1252 = "windows-1252"

    /// Accepts the usual spellings: `utf-8`/`utf8`, `latin-1`/`latin1`/`iso-8859-1`, `windows-1252`/`cp1252`.
    public init?(name: String) {
        let key = name.lowercased().filter { $0.isLetter || $0.isNumber }
        switch key {
        case "utf8": self = .utf8
        case "latin1", "iso88591", "l1": self = .latin1
        case "windows1252", "cp1252": self = .windows1252
        default: return nil
        }
    }
}

/// How a file's bytes are decoded: its declared character set and, optionally, a fallback used for
/// the fields (JSON lines: the lines) that are not valid in the declared one. Only UTF-8 can be
/// invalid, so a fallback only matters after UTF-8. Without a fallback, invalid UTF-8 is an error
/// that names the file and line.
public struct TextEncoding: Sendable, Hashable, CustomStringConvertible {
    public var charset: Charset
    public var fallback: Charset?

    public init(_ charset: Charset, fallback: Charset? = nil) {
        self.charset = charset; self.fallback = fallback
    }

    public static let utf8 = TextEncoding(.utf8)
    public static let latin1 = TextEncoding(.latin1)
    public static let windows1252 = TextEncoding(.windows1252)
    /// UTF-8, with the fields that are not valid UTF-8 read in `fallback`.
    public static func utf8(fallback: Charset) -> TextEncoding { TextEncoding(.utf8, fallback: fallback) }

    public var description: String {
        fallback.map { "\(charset.rawValue) (falling back to \($0.rawValue))" } ?? charset.rawValue
    }
}

private let windows1252High: [UInt16] = [
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
    0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
]

enum ByteText {
    /// Decodes `bytes` in `charset`; nil only when UTF-8 is asked for and the bytes are not valid UTF-8.
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>, _ charset: Charset) -> String? {
        switch charset {
        case .utf8:
            return String(validating: bytes, as: UTF8.self)
        case .latin1, .windows1252:
            if !bytes.contains(where: { $0 >= 0x80 }) { return String(decoding: bytes, as: UTF8.self) }
            var scalars = String.UnicodeScalarView()
            for b in bytes {
                if charset == .windows1252, b >= 0x80, b < 0xA0 {
                    scalars.append(Unicode.Scalar(windows1252High[Int(b) - 0x80])!)
                } else {
                    scalars.append(Unicode.Scalar(b))
                }
            }
            return String(scalars)
        }
    }

    static func decode(_ bytes: [UInt8], _ charset: Charset) -> String? {
        bytes.withUnsafeBufferPointer { decode($0, charset) }
    }

    /// Offset of the first byte that makes `bytes` invalid UTF-8 (for error messages), or nil.
    static func firstInvalidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            if b < 0x80 { i += 1; continue }
            let len: Int
            if b >= 0xC2 && b <= 0xDF { len = 2 } else if b >= 0xE0 && b <= 0xEF { len = 3 } else if b >= 0xF0 && b <= 0xF4 { len = 4 } else { return i }
            if i + len > n { return i }
            for k in 1..<len where bytes[i + k] & 0xC0 != 0x80 { return i }
            if String(validating: UnsafeBufferPointer(rebasing: bytes[i..<(i + len)]), as: UTF8.self) == nil { return i }
            i += len
        }
        return nil
    }
}

// MARK: - Formats and mapping

/// The layout of a record file.
public enum RecordFormat: Sendable, Hashable {
    /// RFC 4180: comma-separated, `"`-quoted fields with `""` for a quote, line breaks allowed inside
    /// quotes, CRLF or LF line ends. A quote inside an unquoted field is kept as a character; text
    /// after a closing quote (other than the delimiter or a line end) is an error.
    case csv(header: Bool = true)
    /// Tab-separated. By default without quoting (a `"` is an ordinary character); `quoting: true`
    /// reads quotes as in CSV (as pandas and Python's csv module do by default).
    case tsv(header: Bool = true, quoting: Bool = false)
    /// One JSON object per line; columns are the objects' keys. Strings are taken as they are,
    /// `true`/`false` as "true"/"false", numbers as written; `null` or an absent key is a missing value.
    case jsonLines
    /// GLUE-style TSV: a header row, tab-separated, no quoting; columns by name or 0-based index.
    case glueTSV
    /// Orange's native `.tab` format: three header rows (names; types; flags, where `class` or `c`
    /// marks the class column), tab-separated, `"` quoting as Orange's reader allows, `?` or an empty
    /// value for a missing label.
    case orangeTab

    /// Names used in configuration files: `csv`, `csv-noheader`, `tsv`, `tsv-noheader`, `tsv-quoted`,
    /// `jsonl`, `glue-tsv`, `orange-tab`.
    public init?(name: String) {
        switch name.lowercased() {
        case "csv": self = .csv()
        case "csv-noheader": self = .csv(header: false)
        case "tsv": self = .tsv()
        case "tsv-noheader": self = .tsv(header: false)
        case "tsv-quoted": self = .tsv(quoting: true)
        case "jsonl", "json-lines", "jsonlines": self = .jsonLines
        case "glue-tsv", "glue": self = .glueTSV
        case "orange-tab", "tab", "orange": self = .orangeTab
        default: return nil
        }
    }
}

/// Which columns hold the text, the optional second text of a pair, and the label. Each is a column
/// name, or a 0-based column index (required for files without a header; a name that is also a
/// header wins over reading it as an index).
public struct ColumnMapping: Sendable, Hashable {
    public var text: String
    public var textPair: String?
    /// nil only for Orange `.tab` files: the column flagged `class`.
    public var label: String?

    public init(text: String, textPair: String? = nil, label: String) {
        self.text = text; self.textPair = textPair; self.label = label
    }

    /// For Orange `.tab` files: the label is the column whose flag is `class`.
    public static func orangeClass(text: String, textPair: String? = nil) -> ColumnMapping {
        var m = ColumnMapping(text: text, textPair: textPair, label: "")
        m.label = nil
        return m
    }
}

/// Rows that may be counted and skipped instead of failing the load.
public enum SkipReason: String, Sendable, Hashable, CaseIterable, Codable {
    case emptyText = "empty text"
    case missingLabel = "missing label"
    case unknownLabel = "unknown label"
}

/// Clean-ups for sources whose text carries markup (applied to text and text pair, not labels).
public struct TextCleanup: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// `&amp;`, `&lt;`, `&#8217;`, `&eacute;` … decoded (unknown names are left as written).
    public static let htmlEntities = TextCleanup(rawValue: 1)
    /// `<br>` and `<p>` become line breaks; `<a …>`, `<span …>`, `<i>`, `<b>`, `<em>`, `<strong>`,
    /// `<div>` tags (and their closing tags) are removed; anything else in angle brackets is kept.
    public static let htmlMarkup = TextCleanup(rawValue: 2)
}

/// A message from a label transform; the loader adds the file and line.
public struct RecordValueError: Error, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

public struct RecordOptions: Sendable {
    /// When set, a label outside it is an error naming the label (or a counted skip, see `skipping`).
    public var allowedLabels: Set<String>?
    /// Reasons for which a row is counted and skipped instead of being an error. Only for sources
    /// known to contain such rows: a user's file should fail loudly.
    public var skipping: Set<SkipReason>
    /// Label values of rows that are not examples at all (e.g. plot synopses among reviews), each
    /// with the name under which such rows are counted as skipped.
    public var dropLabels: [String: String]
    public var cleanup: TextCleanup
    /// Derives the label from the label column's (trimmed) value, e.g. a score into a class.
    public var labelTransform: (@Sendable (String) throws -> String)?
    /// Example ids are "<idPrefix>:<line>"; defaults to the file name.
    public var idPrefix: String?

    public init(allowedLabels: Set<String>? = nil, skipping: Set<SkipReason> = [], dropLabels: [String: String] = [:],
                cleanup: TextCleanup = [], labelTransform: (@Sendable (String) throws -> String)? = nil, idPrefix: String? = nil) {
        self.allowedLabels = allowedLabels; self.skipping = skipping; self.dropLabels = dropLabels
        self.cleanup = cleanup; self.labelTransform = labelTransform; self.idPrefix = idPrefix
    }
}

/// Examples read from a file, and the rows skipped, counted by reason.
public struct RecordLoad: Sendable {
    public var examples: [Example]
    public var skipped: [String: Int]
    public init(examples: [Example] = [], skipped: [String: Int] = [:]) { self.examples = examples; self.skipped = skipped }
}

/// A file's records as strings, before mapping to examples.
public struct RecordTable: Sendable {
    public struct Row: Sendable {
        /// Line on which the record starts.
        public var line: Int
        /// One value per column; nil where a JSON line lacks the key or holds `null`.
        public var values: [String?]
    }

    /// The path as given, used in messages.
    public var file: String
    /// Header names; "0", "1", … for files without a header; for JSON lines, every key seen, in
    /// order of first appearance.
    public var columns: [String]
    public var hasHeader: Bool
    /// Orange: the column flagged `class`.
    public var classColumn: Int?
    /// Values that mean "no label" (Orange: `?`).
    public var missingLabelValues: Set<String>
    public var rows: [Row]
}

// MARK: - Loading

/// Reads `url` and maps each record to an `Example` with id "<file name>:<line>". Any bad row is an
/// error naming the file and line.
public func loadRecords(url: URL, format: RecordFormat, mapping: ColumnMapping, encoding: TextEncoding = .utf8) throws -> [Example] {
    try loadRecords(url: url, format: format, mapping: mapping, encoding: encoding, options: RecordOptions()).examples
}

/// As above, with label checks, counted skips and clean-ups.
public func loadRecords(url: URL, format: RecordFormat, mapping: ColumnMapping, encoding: TextEncoding = .utf8,
                        options: RecordOptions) throws -> RecordLoad {
    let table = try readRecordTable(url: url, format: format, encoding: encoding)
    return try table.examples(mapping: mapping, options: options, idPrefix: options.idPrefix ?? url.lastPathComponent)
}

/// Reads a record file into a table of strings.
public func readRecordTable(url: URL, format: RecordFormat, encoding: TextEncoding = .utf8) throws -> RecordTable {
    let file = url.path
    var data: Data
    do {
        data = try Data(contentsOf: url)
    } catch {
        let exists = FileManager.default.fileExists(atPath: file)
        throw DatasetError(file: file, reason: exists ? "cannot read the file (\(error.localizedDescription))" : "no such file",
                           hint: exists ? "check its permissions" : "check the path")
    }
    if encoding.charset == .utf8, data.starts(with: [0xEF, 0xBB, 0xBF]) { data.removeFirst(3) }
    let bytes = [UInt8](data)
    return try bytes.withUnsafeBufferPointer { buf -> RecordTable in
        switch format {
        case let .csv(header):
            return try readDelimited(buf, file: file, delimiter: UInt8(ascii: ","), quoting: true, header: header, encoding: encoding)
        case let .tsv(header, quoting):
            return try readDelimited(buf, file: file, delimiter: UInt8(ascii: "\t"), quoting: quoting, header: header, encoding: encoding)
        case .glueTSV:
            return try readDelimited(buf, file: file, delimiter: UInt8(ascii: "\t"), quoting: false, header: true, encoding: encoding)
        case .orangeTab:
            return try readOrange(buf, file: file, encoding: encoding)
        case .jsonLines:
            return try readJSONLines(buf, file: file, encoding: encoding)
        }
    }
}

extension RecordTable {
    /// The index of a column given by name or 0-based index; an error listing the columns otherwise.
    public func columnIndex(_ ref: String, role: String) throws -> Int {
        if let i = columns.firstIndex(of: ref) { return i }
        if let i = Int(ref), i >= 0 {
            if i < columns.count { return i }
            throw DatasetError(file: file, line: hasHeader ? 1 : nil,
                               reason: "missing \(role) column \(i): the file has \(columns.count) column\(columns.count == 1 ? "" : "s") (0–\(columns.count - 1))",
                               hint: "column indices are 0-based")
        }
        let known = columns.map { "\"\($0)\"" }.joined(separator: ", ")
        throw DatasetError(file: file, line: hasHeader ? 1 : nil,
                           reason: "missing \(role) column \"\(ref)\" (columns: \(known))",
                           hint: hasHeader ? "use one of the columns listed" : "this file has no header: give columns as 0-based indices")
    }

    /// Maps rows to examples: trims surrounding whitespace of text, pair and label, applies the
    /// clean-ups, checks labels, and skips (counted) or rejects bad rows.
    public func examples(mapping: ColumnMapping, options: RecordOptions = RecordOptions(), idPrefix: String) throws -> RecordLoad {
        let textColumn = try columnIndex(mapping.text, role: "text")
        let pairColumn = try mapping.textPair.map { try columnIndex($0, role: "text pair") }
        let labelColumn: Int
        if let label = mapping.label {
            labelColumn = try columnIndex(label, role: "label")
        } else if let c = classColumn {
            labelColumn = c
        } else {
            throw DatasetError(file: file, line: hasHeader ? 1 : nil, reason: "no label column given and none flagged `class`",
                               hint: "name the label column in the mapping")
        }
        var load = RecordLoad()
        load.examples.reserveCapacity(rows.count)
        func skipOrThrow(_ reason: SkipReason, _ line: Int, _ message: String, hint: String) throws {
            if options.skipping.contains(reason) {
                load.skipped[reason.rawValue, default: 0] += 1
            } else {
                throw DatasetError(file: file, line: line, reason: message, hint: hint)
            }
        }
        for row in rows {
            // Label first: a dropped row (not an example) is counted as such whatever its text.
            let rawLabel = row.values[labelColumn].map(trimmedWhitespace)
            guard let raw = rawLabel, !raw.isEmpty, !missingLabelValues.contains(raw) else {
                try skipOrThrow(.missingLabel, row.line, "missing label in column \"\(columns[labelColumn])\"",
                                hint: "every row needs a label")
                continue
            }
            var label = raw
            if let transform = options.labelTransform {
                do { label = try transform(raw) } catch let e as RecordValueError {
                    throw DatasetError(file: file, line: row.line, reason: e.message, hint: "check the label column \"\(columns[labelColumn])\"")
                }
            }
            if let reason = options.dropLabels[label] {
                load.skipped[reason, default: 0] += 1
                continue
            }
            if let allowed = options.allowedLabels, !allowed.contains(label) {
                try skipOrThrow(.unknownLabel, row.line, "unknown label \"\(label)\" (allowed: \(allowed.sorted().joined(separator: ", ")))",
                                hint: "fix the row or add the label to the allowed labels")
                continue
            }
            let text = cleaned(row.values[textColumn] ?? "", options.cleanup)
            if text.isEmpty {
                try skipOrThrow(.emptyText, row.line, "empty text in column \"\(columns[textColumn])\"", hint: "every row needs a text")
                continue
            }
            var pair: String?
            if let pc = pairColumn {
                let p = cleaned(row.values[pc] ?? "", options.cleanup)
                if p.isEmpty {
                    try skipOrThrow(.emptyText, row.line, "empty text pair in column \"\(columns[pc])\"", hint: "every row needs both texts")
                    continue
                }
                pair = p
            }
            load.examples.append(Example(id: "\(idPrefix):\(row.line)", text: text, textPair: pair, label: label))
        }
        return load
    }
}

func cleaned(_ s: String, _ cleanup: TextCleanup) -> String {
    var t = s
    if cleanup.contains(.htmlMarkup) { t = HTMLText.stripMarkup(t) }
    if cleanup.contains(.htmlEntities) { t = HTMLText.decodeEntities(t) }
    return trimmedWhitespace(t)
}

@inline(__always) private func isASCIISpace(_ b: UInt8) -> Bool {
    b == 0x20 || (b >= 0x09 && b <= 0x0D)
}

/// `s` without leading and trailing ASCII whitespace (space, tab, line breaks, form feed, vertical tab).
public func trimmedWhitespace(_ s: String) -> String {
    let u = s.utf8
    guard let first = u.first, let last = u.last, isASCIISpace(first) || isASCIISpace(last) else { return s }
    var lo = u.startIndex
    while lo != u.endIndex, isASCIISpace(u[lo]) { lo = u.index(after: lo) }
    if lo == u.endIndex { return "" }
    var hi = u.index(before: u.endIndex)
    while isASCIISpace(u[hi]) { hi = u.index(before: hi) }
    return String(s[lo...hi])
}

// MARK: - Delimited files

private let LF = UInt8(ascii: "\n"), CR = UInt8(ascii: "\r"), QUOTE = UInt8(ascii: "\"")

struct FieldSpan {
    var start: Int
    var end: Int
    /// Quoted field containing doubled quotes, to be unescaped.
    var escaped: Bool
}

struct RawRecord {
    var line: Int
    var fields: [FieldSpan]
}

/// Cuts records and fields out of a byte buffer (no decoding).
struct DelimitedScanner {
    let buf: UnsafeBufferPointer<UInt8>
    let file: String
    let delimiter: UInt8
    let quoting: Bool
    private(set) var pos = 0
    private(set) var line = 1
    private var nextLF = -1
    private var nextCR = -1

    init(_ buf: UnsafeBufferPointer<UInt8>, file: String, delimiter: UInt8, quoting: Bool) {
        self.buf = buf; self.file = file; self.delimiter = delimiter; self.quoting = quoting
    }

    private func find(_ byte: UInt8, from: Int, to end: Int) -> Int? {
        guard from < end, let base = buf.baseAddress else { return nil }
        guard let p = memchr(base + from, Int32(byte), end - from) else { return nil }
        return base.distance(to: p.assumingMemoryBound(to: UInt8.self))
    }

    /// Consumes a line break at `pos` (LF, CRLF or CR).
    private mutating func consumeBreak() {
        if buf[pos] == CR, pos + 1 < buf.count, buf[pos + 1] == LF { pos += 2 } else { pos += 1 }
        line += 1
    }

    private func countBreaks(_ from: Int, _ to: Int) -> Int {
        var n = 0
        var i = from
        while i < to {
            let b = buf[i]
            if b == LF { n += 1 } else if b == CR, !(i + 1 < to && buf[i + 1] == LF) { n += 1 }
            i += 1
        }
        return n
    }

    /// The next record, or nil at the end. `skipBlank`: lines with nothing on them are not records.
    mutating func next(skipBlank: Bool = true) throws -> RawRecord? {
        let n = buf.count
        if skipBlank {
            while pos < n, buf[pos] == LF || buf[pos] == CR { consumeBreak() }
        }
        if pos >= n { return nil }
        let startLine = line
        var fields: [FieldSpan] = []
        while true {
            if quoting, pos < n, buf[pos] == QUOTE {
                let openLine = line
                var q = pos + 1
                var escaped = false
                var closing = -1
                while true {
                    guard let f = find(QUOTE, from: q, to: n) else {
                        throw DatasetError(file: file, line: startLine,
                                           reason: "unterminated quote: the field opened on line \(openLine) has no closing quote",
                                           hint: "a quote inside a quoted field must be doubled (\"\")")
                    }
                    if f + 1 < n, buf[f + 1] == QUOTE { escaped = true; q = f + 2; continue }
                    closing = f
                    break
                }
                line += countBreaks(pos + 1, closing)
                fields.append(FieldSpan(start: pos + 1, end: closing, escaped: escaped))
                pos = closing + 1
                if pos >= n { return RawRecord(line: startLine, fields: fields) }
                let c = buf[pos]
                if c == delimiter { pos += 1; continue }
                if c == LF || c == CR { consumeBreak(); return RawRecord(line: startLine, fields: fields) }
                throw DatasetError(file: file, line: line,
                                   reason: "unexpected character after the closing quote of field \(fields.count)",
                                   hint: "quote the whole field and double any quote inside it (\"\")")
            }
            // Unquoted field: up to the delimiter or the line break, whichever comes first.
            if nextLF < pos { nextLF = find(LF, from: pos, to: n) ?? n }
            if nextCR < pos { nextCR = find(CR, from: pos, to: n) ?? n }
            let lineEnd = min(nextLF, nextCR)
            let end = find(delimiter, from: pos, to: lineEnd) ?? lineEnd
            fields.append(FieldSpan(start: pos, end: end, escaped: false))
            if end >= n { pos = n; return RawRecord(line: startLine, fields: fields) }
            pos = end
            if buf[end] == delimiter { pos += 1; continue }
            consumeBreak()
            return RawRecord(line: startLine, fields: fields)
        }
    }

    /// The line on which byte `offset` lies, given the record that contains it.
    func line(ofOffset offset: Int, in record: RawRecord) -> Int {
        guard let first = record.fields.first else { return record.line }
        return record.line + countBreaks(max(0, first.start - 1), offset)
    }
}

/// Decodes one field, with the fallback charset if declared; an encoding error names the line.
private func decodeField(_ span: FieldSpan, _ scanner: DelimitedScanner, _ record: RawRecord, _ encoding: TextEncoding) throws -> String {
    let buf = scanner.buf
    func dec(_ b: UnsafeBufferPointer<UInt8>) throws -> String {
        if let s = ByteText.decode(b, encoding.charset) { return s }
        if let fb = encoding.fallback, let s = ByteText.decode(b, fb) { return s }
        let bad = ByteText.firstInvalidUTF8(b) ?? 0
        let offsetInFile = span.start + bad  // approximate for unescaped quoted fields, exact otherwise
        let line = scanner.line(ofOffset: min(offsetInFile, buf.count), in: record)
        let byte = String(format: "0x%02X", b[bad])
        throw DatasetError(file: scanner.file, line: line,
                           reason: "invalid UTF-8 (byte \(byte)) in field \((record.fields.firstIndex { $0.start == span.start } ?? 0) + 1)",
                           hint: "the file is not UTF-8: declare its encoding (e.g. latin-1 or windows-1252)")
    }
    let slice = UnsafeBufferPointer(rebasing: buf[span.start..<span.end])
    if !span.escaped { return try dec(slice) }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(slice.count)
    var i = 0
    while i < slice.count {
        bytes.append(slice[i])
        if slice[i] == QUOTE, i + 1 < slice.count, slice[i + 1] == QUOTE { i += 2 } else { i += 1 }
    }
    return try bytes.withUnsafeBufferPointer { try dec($0) }
}

private func readDelimited(_ buf: UnsafeBufferPointer<UInt8>, file: String, delimiter: UInt8, quoting: Bool, header: Bool,
                           encoding: TextEncoding) throws -> RecordTable {
    var scanner = DelimitedScanner(buf, file: file, delimiter: delimiter, quoting: quoting)
    var columns: [String] = []
    var rows: [RecordTable.Row] = []
    var expected: Int?
    if header {
        guard let h = try scanner.next() else {
            throw DatasetError(file: file, line: 1, reason: "the file is empty (no header row)", hint: "a header row naming the columns is expected")
        }
        columns = try h.fields.map { try trimmedWhitespace(decodeField($0, scanner, h, encoding)) }
        expected = columns.count
    }
    while let rec = try scanner.next() {
        if let e = expected {
            if rec.fields.count != e {
                throw DatasetError(file: file, line: rec.line,
                                   reason: "wrong number of fields: \(rec.fields.count) where \(header ? "the header has" : "the first row has") \(e)",
                                   hint: quoting ? "check for an unquoted delimiter or a missing one" : "check for a stray tab or a missing one")
            }
        } else {
            expected = rec.fields.count
            columns = (0..<rec.fields.count).map(String.init)
        }
        rows.append(RecordTable.Row(line: rec.line, values: try rec.fields.map { try decodeField($0, scanner, rec, encoding) }))
    }
    return RecordTable(file: file, columns: columns, hasHeader: header, classColumn: nil, missingLabelValues: [""], rows: rows)
}

// MARK: - Orange .tab

private func readOrange(_ buf: UnsafeBufferPointer<UInt8>, file: String, encoding: TextEncoding) throws -> RecordTable {
    var scanner = DelimitedScanner(buf, file: file, delimiter: UInt8(ascii: "\t"), quoting: true)
    var header: [[String]] = []
    for (k, what) in ["names", "types", "flags"].enumerated() {
        // The flags row may be empty, so the three header rows are read as they come.
        guard let rec = try scanner.next(skipBlank: k == 0) else {
            throw DatasetError(file: file, line: scanner.line, reason: "missing the \(what) header row",
                               hint: "an Orange .tab file starts with three header rows: names, types, flags")
        }
        header.append(try rec.fields.map { try trimmedWhitespace(decodeField($0, scanner, rec, encoding)) })
    }
    let names = header[0]
    if header[1].count != names.count {
        throw DatasetError(file: file, line: 2, reason: "\(names.count) column names but \(header[1].count) types",
                           hint: "the types row needs one entry per column")
    }
    if header[2].count > names.count {
        throw DatasetError(file: file, line: 3, reason: "more flags (\(header[2].count)) than columns (\(names.count))",
                           hint: "the flags row has at most one entry per column")
    }
    var classColumn: Int?
    for (i, flags) in header[2].enumerated() {
        let words = flags.split(separator: " ").map(String.init)
        if words.contains("class") || words.contains("c") { classColumn = classColumn ?? i }
    }
    var rows: [RecordTable.Row] = []
    while let rec = try scanner.next() {
        if rec.fields.count != names.count {
            throw DatasetError(file: file, line: rec.line,
                               reason: "wrong number of fields: \(rec.fields.count) where the header has \(names.count)",
                               hint: "check for a stray tab or a missing one")
        }
        rows.append(RecordTable.Row(line: rec.line, values: try rec.fields.map { try decodeField($0, scanner, rec, encoding) }))
    }
    return RecordTable(file: file, columns: names, hasHeader: true, classColumn: classColumn, missingLabelValues: ["", "?"], rows: rows)
}

// MARK: - JSON lines

private func readJSONLines(_ buf: UnsafeBufferPointer<UInt8>, file: String, encoding: TextEncoding) throws -> RecordTable {
    var columns: [String] = []
    var index: [String: Int] = [:]
    var parsed: [(line: Int, object: [(String, JSONValue)])] = []
    var pos = 0
    var line = 0
    let n = buf.count
    while pos < n {
        line += 1
        var end = pos
        if let base = buf.baseAddress, let p = memchr(base + pos, Int32(LF), n - pos) {
            end = base.distance(to: p.assumingMemoryBound(to: UInt8.self))
        } else {
            end = n
        }
        let next = end + 1
        var stop = end
        if stop > pos, buf[stop - 1] == CR { stop -= 1 }
        defer { pos = next }
        var blank = true
        for i in pos..<stop where !isASCIISpace(buf[i]) { blank = false; break }
        if blank { continue }
        let slice = UnsafeBufferPointer(rebasing: buf[pos..<stop])
        var utf8: [UInt8]
        if encoding.charset == .utf8, String(validating: slice, as: UTF8.self) != nil {
            utf8 = Array(slice)
        } else if let s = ByteText.decode(slice, encoding.charset) ?? encoding.fallback.flatMap({ ByteText.decode(slice, $0) }) {
            utf8 = Array(s.utf8)
        } else {
            let bad = ByteText.firstInvalidUTF8(slice) ?? 0
            throw DatasetError(file: file, line: line, reason: "invalid UTF-8 (byte \(String(format: "0x%02X", slice[bad])) at column \(bad + 1))",
                               hint: "the file is not UTF-8: declare its encoding (e.g. latin-1 or windows-1252)")
        }
        let value: JSONValue
        do {
            value = try utf8.withUnsafeBufferPointer { b in
                var p = JSONParser(bytes: b)
                return try p.parseDocument()
            }
        } catch let e as JSONParser.Failure {
            throw DatasetError(file: file, line: line, reason: "invalid JSON: \(e.message) at column \(e.offset + 1)",
                               hint: "each line must hold one complete JSON object")
        }
        guard case let .object(members) = value else {
            throw DatasetError(file: file, line: line, reason: "the line holds a JSON \(value.kind), not an object",
                               hint: "each line must hold one JSON object")
        }
        for (k, _) in members where index[k] == nil {
            index[k] = columns.count
            columns.append(k)
        }
        parsed.append((line, members))
    }
    let rows = parsed.map { item -> RecordTable.Row in
        var values = [String?](repeating: nil, count: columns.count)
        for (k, v) in item.object { values[index[k]!] = v.textValue }
        return RecordTable.Row(line: item.line, values: values)
    }
    return RecordTable(file: file, columns: columns, hasHeader: true, classColumn: nil, missingLabelValues: [""], rows: rows)
}

/// A JSON string literal for `s` (quotes, backslashes and control characters escaped).
public func jsonStringLiteral(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}

enum JSONValue {
    case string(String)
    case number(String)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([(String, JSONValue)])

    var kind: String {
        switch self {
        case .string: "string"
        case .number: "number"
        case .bool: "boolean"
        case .null: "null"
        case .array: "array"
        case .object: "object"
        }
    }

    /// The value as a record field: strings as they are, numbers as written, booleans as
    /// "true"/"false", null as missing, arrays and objects as compact JSON.
    var textValue: String? {
        switch self {
        case let .string(s): s
        case let .number(s): s
        case let .bool(b): b ? "true" : "false"
        case .null: nil
        case .array, .object: json
        }
    }

    var json: String {
        switch self {
        case let .string(s): return jsonStringLiteral(s)
        case let .number(s): return s
        case let .bool(b): return b ? "true" : "false"
        case .null: return "null"
        case let .array(a): return "[" + a.map(\.json).joined(separator: ",") + "]"
        case let .object(o): return "{" + o.map { JSONValue.string($0.0).json + ":" + $0.1.json }.joined(separator: ",") + "}"
        }
    }
}

/// A small JSON parser over UTF-8 bytes (RFC 8259), keeping numbers as written and object keys in order.
struct JSONParser {
    struct Failure: Error { var message: String; var offset: Int }

    let bytes: UnsafeBufferPointer<UInt8>
    var pos = 0
    var depth = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    private func fail(_ message: String, at: Int? = nil) -> Failure { Failure(message: message, offset: at ?? pos) }

    private mutating func skipSpace() {
        while pos < bytes.count, bytes[pos] == 0x20 || bytes[pos] == 0x09 || bytes[pos] == 0x0A || bytes[pos] == 0x0D { pos += 1 }
    }

    mutating func parseDocument() throws -> JSONValue {
        skipSpace()
        let v = try parseValue()
        skipSpace()
        if pos != bytes.count { throw fail("unexpected text after the JSON value") }
        return v
    }

    private mutating func parseValue() throws -> JSONValue {
        guard pos < bytes.count else { throw fail("unexpected end of line") }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case QUOTE: return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw fail("unexpected character '\(Character(Unicode.Scalar(bytes[pos])))'")
        }
    }

    private mutating func literal(_ word: StaticString) throws {
        let n = word.utf8CodeUnitCount
        let w = UnsafeBufferPointer(start: word.utf8Start, count: n)
        guard pos + n <= bytes.count, zip(bytes[pos..<(pos + n)], w).allSatisfy({ $0 == $1 }) else {
            throw fail("expected \(word)")
        }
        pos += n
    }

    private mutating func parseObject() throws -> JSONValue {
        depth += 1
        if depth > 512 { throw fail("nesting too deep") }
        defer { depth -= 1 }
        pos += 1
        var members: [(String, JSONValue)] = []
        skipSpace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(members) }
        while true {
            skipSpace()
            guard pos < bytes.count, bytes[pos] == QUOTE else { throw fail("expected a quoted key") }
            let key = try parseString()
            skipSpace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw fail("expected ':' after a key") }
            pos += 1
            skipSpace()
            let value = try parseValue()
            if let i = members.firstIndex(where: { $0.0 == key }) { members[i].1 = value } else { members.append((key, value)) }
            skipSpace()
            guard pos < bytes.count else { throw fail("unexpected end of line inside an object") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(members) }
            throw fail("expected ',' or '}'")
        }
    }

    private mutating func parseArray() throws -> JSONValue {
        depth += 1
        if depth > 512 { throw fail("nesting too deep") }
        defer { depth -= 1 }
        pos += 1
        var items: [JSONValue] = []
        skipSpace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
        while true {
            skipSpace()
            items.append(try parseValue())
            skipSpace()
            guard pos < bytes.count else { throw fail("unexpected end of line inside an array") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
            throw fail("expected ',' or ']'")
        }
    }

    private mutating func parseNumber() throws -> String {
        let start = pos
        func digits() -> Int {
            let s = pos
            while pos < bytes.count, bytes[pos] >= UInt8(ascii: "0"), bytes[pos] <= UInt8(ascii: "9") { pos += 1 }
            return pos - s
        }
        if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        guard pos < bytes.count else { throw fail("incomplete number") }
        if bytes[pos] == UInt8(ascii: "0") { pos += 1 } else if digits() == 0 { throw fail("invalid number") }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
            pos += 1
            if digits() == 0 { throw fail("invalid number: digits expected after '.'") }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
            pos += 1
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            if digits() == 0 { throw fail("invalid number: digits expected in the exponent") }
        }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
    }

    private mutating func hex4() throws -> UInt32 {
        guard pos + 4 <= bytes.count else { throw fail("incomplete \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[pos]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    private mutating func parseString() throws -> String {
        let open = pos
        pos += 1
        let start = pos
        guard let base = bytes.baseAddress else { throw fail("unterminated string", at: open) }
        // Fast path: no backslash before the closing quote.
        if let q = memchr(base + pos, Int32(QUOTE), bytes.count - pos) {
            let close = base.distance(to: q.assumingMemoryBound(to: UInt8.self))
            if memchr(base + pos, Int32(UInt8(ascii: "\\")), close - pos) == nil {
                for i in start..<close where bytes[i] < 0x20 { throw fail("control character in a string", at: i) }
                pos = close + 1
                return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<close]), as: UTF8.self)
            }
        } else {
            throw fail("unterminated string", at: open)
        }
        var out: [UInt8] = []
        while true {
            guard pos < bytes.count else { throw fail("unterminated string", at: open) }
            let c = bytes[pos]
            if c == QUOTE { pos += 1; break }
            if c < 0x20 { throw fail("control character in a string") }
            if c != UInt8(ascii: "\\") { out.append(c); pos += 1; continue }
            pos += 1
            guard pos < bytes.count else { throw fail("unterminated escape") }
            let e = bytes[pos]
            pos += 1
            switch e {
            case QUOTE: out.append(QUOTE)
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "/"): out.append(UInt8(ascii: "/"))
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(LF)
            case UInt8(ascii: "r"): out.append(CR)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var v = try hex4()
                if v >= 0xD800, v < 0xDC00 {
                    // A high surrogate needs its low half.
                    if pos + 6 <= bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") {
                        pos += 2
                        let low = try hex4()
                        if low >= 0xDC00, low < 0xE000 { v = 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00) } else { v = 0xFFFD }
                    } else {
                        v = 0xFFFD
                    }
                } else if v >= 0xDC00, v < 0xE000 {
                    v = 0xFFFD
                }
                out.append(contentsOf: Array(String(Unicode.Scalar(v)!).utf8))
            default: throw fail("invalid escape '\\\(Character(Unicode.Scalar(e)))'", at: pos - 2)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

// MARK: - HTML clean-up

/// Clean-up of HTML left in text sources (tweets escaped by the Twitter API, reviews with `<br />`).
public enum HTMLText {
    static let named: [String: UInt32] = [
        "amp": 0x26, "lt": 0x3C, "gt": 0x3E, "quot": 0x22, "apos": 0x27, "nbsp": 0xA0,
        "iexcl": 0xA1, "cent": 0xA2, "pound": 0xA3, "curren": 0xA4, "yen": 0xA5, "brvbar": 0xA6, "sect": 0xA7, "uml": 0xA8,
        "copy": 0xA9, "ordf": 0xAA, "laquo": 0xAB, "not": 0xAC, "shy": 0xAD, "reg": 0xAE, "macr": 0xAF, "deg": 0xB0,
        "plusmn": 0xB1, "sup2": 0xB2, "sup3": 0xB3, "acute": 0xB4, "micro": 0xB5, "para": 0xB6, "middot": 0xB7, "cedil": 0xB8,
        "sup1": 0xB9, "ordm": 0xBA, "raquo": 0xBB, "frac14": 0xBC, "frac12": 0xBD, "frac34": 0xBE, "iquest": 0xBF,
        "Agrave": 0xC0, "Aacute": 0xC1, "Acirc": 0xC2, "Atilde": 0xC3, "Auml": 0xC4, "Aring": 0xC5, "AElig": 0xC6, "Ccedil": 0xC7,
        "Egrave": 0xC8, "Eacute": 0xC9, "Ecirc": 0xCA, "Euml": 0xCB, "Igrave": 0xCC, "Iacute": 0xCD, "Icirc": 0xCE, "Iuml": 0xCF,
        "ETH": 0xD0, "Ntilde": 0xD1, "Ograve": 0xD2, "Oacute": 0xD3, "Ocirc": 0xD4, "Otilde": 0xD5, "Ouml": 0xD6, "times": 0xD7,
        "Oslash": 0xD8, "Ugrave": 0xD9, "Uacute": 0xDA, "Ucirc": 0xDB, "Uuml": 0xDC, "Yacute": 0xDD, "THORN": 0xDE, "szlig": 0xDF,
        "agrave": 0xE0, "aacute": 0xE1, "acirc": 0xE2, "atilde": 0xE3, "auml": 0xE4, "aring": 0xE5, "aelig": 0xE6, "ccedil": 0xE7,
        "egrave": 0xE8, "eacute": 0xE9, "ecirc": 0xEA, "euml": 0xEB, "igrave": 0xEC, "iacute": 0xED, "icirc": 0xEE, "iuml": 0xEF,
        "eth": 0xF0, "ntilde": 0xF1, "ograve": 0xF2, "oacute": 0xF3, "ocirc": 0xF4, "otilde": 0xF5, "ouml": 0xF6, "divide": 0xF7,
        "oslash": 0xF8, "ugrave": 0xF9, "uacute": 0xFA, "ucirc": 0xFB, "uuml": 0xFC, "yacute": 0xFD, "thorn": 0xFE, "yuml": 0xFF,
        "OElig": 0x152, "oelig": 0x153, "Scaron": 0x160, "scaron": 0x161, "Yuml": 0x178, "fnof": 0x192, "circ": 0x2C6, "tilde": 0x2DC,
        "ndash": 0x2013, "mdash": 0x2014, "lsquo": 0x2018, "rsquo": 0x2019, "sbquo": 0x201A, "ldquo": 0x201C, "rdquo": 0x201D,
        "bdquo": 0x201E, "dagger": 0x2020, "Dagger": 0x2021, "bull": 0x2022, "hellip": 0x2026, "permil": 0x2030, "prime": 0x2032,
        "lsaquo": 0x2039, "rsaquo": 0x203A, "euro": 0x20AC, "trade": 0x2122, "hearts": 0x2665,
    ]

    /// Decodes named (`&amp;`), decimal (`&#8217;`) and hexadecimal (`&#x2019;`) character references;
    /// anything else that starts with `&` is kept as written.
    public static func decodeEntities(_ s: String) -> String {
        guard s.utf8.contains(UInt8(ascii: "&")) else { return s }
        let u = Array(s.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(u.count)
        var i = 0
        while i < u.count {
            if u[i] == UInt8(ascii: "&"), let semi = u[(i + 1)..<min(u.count, i + 12)].firstIndex(of: UInt8(ascii: ";")), semi > i + 1 {
                let name = String(decoding: u[(i + 1)..<semi], as: UTF8.self)
                var scalar: UInt32?
                if name.hasPrefix("#x") || name.hasPrefix("#X") {
                    scalar = UInt32(name.dropFirst(2), radix: 16)
                } else if name.hasPrefix("#") {
                    scalar = UInt32(name.dropFirst(), radix: 10)
                } else {
                    scalar = named[name]
                }
                if let v = scalar, v != 0, let sc = Unicode.Scalar(v) {
                    out.append(contentsOf: Array(String(sc).utf8))
                    i = semi + 1
                    continue
                }
            }
            out.append(u[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    static let breakTags: Set<String> = ["br", "p", "/p"]
    static let droppedTags: Set<String> = ["a", "/a", "span", "/span", "i", "/i", "b", "/b", "em", "/em", "strong", "/strong", "div", "/div", "br/"]

    /// `<br>`, `<br/>`, `<br />`, `<p>` and `</p>` become a line break; the inline tags listed in
    /// `TextCleanup.htmlMarkup` are removed; any other `<…>` (e.g. `<3`) is kept.
    public static func stripMarkup(_ s: String) -> String {
        guard s.utf8.contains(UInt8(ascii: "<")) else { return s }
        let u = Array(s.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(u.count)
        var i = 0
        while i < u.count {
            if u[i] == UInt8(ascii: "<"), let close = u[(i + 1)..<min(u.count, i + 400)].firstIndex(of: UInt8(ascii: ">")) {
                let inner = String(decoding: u[(i + 1)..<close], as: UTF8.self)
                // The tag name: up to the first space or '/', keeping a leading '/'.
                var name = ""
                for (k, ch) in inner.lowercased().enumerated() {
                    if ch == " " || ch == "\t" || ch == "\n" || (ch == "/" && k > 0) { break }
                    name.append(ch)
                }
                if breakTags.contains(name) {
                    out.append(LF); i = close + 1; continue
                }
                if droppedTags.contains(name) {
                    i = close + 1; continue
                }
            }
            out.append(u[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
