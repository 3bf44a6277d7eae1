/// Reads data sets stored in an installed R package's lazy-load database (`data/Rdata.rdx` and
/// `data/Rdata.rdb`). R doesn't need to be installed. Usage:
///
///     let db = RLazyLoadDB(directory: URL(fileURLWithPath: ".../site-library/modeldata/data"))
///     let frame = try db.readDataFrame(named: "training_data")    // throws DatasetError
///     frame.names                                                 // ["product", "review", "score"]
///     frame.rows                                                  // 4000
///     let reviews = try frame.strings("review")                   // [String?], nil for NA
///     let scores = try frame.strings("score")                     // a factor's level strings
///     let labels = try frame.levels("score")                      // ["great", "other"]
///
/// `try db.objectNames()` lists what the database holds, `try db.readObject(named:)` returns any object
/// as an `RObject` tree.
///
/// What is implemented:
/// - the lazy-load index (`.rdx`: a serialized R list `variables` / `references` / `compressed`, gzip
///   compressed, or plain) and its entries in the `.rdb`. For `compressed` 1, an entry is a 4-byte
///   big-endian uncompressed length and a zlib stream. For `compressed` 2 or 3, a type byte follows
///   the length: '1' means zlib, '0' means stored, 'Z' means raw LZMA2 (R's xz; Debian builds
///   modeldata this way). LZMA2 is decoded by the Swift decoder below. '2' (bzip2) gives an
///   "unsupported compression" error.
/// - R's serialization format, versions 2 and 3, XDR binary ("X\n") only. This covers vectors
///   (logical, integer, double, complex, character, list, raw), pairlists with tags and attributes,
///   symbols, back-references, environments (parsed only so they can be skipped), and
///   ALTREP compact_intseq / compact_realseq / wrap_* / deferred_string. Byte code and the obsolete
///   class references give a clear error.
/// - Data frames (also tibbles): factor columns become level strings, character columns stay strings,
///   and numeric columns become `Double`.
import CZlib
import Foundation

// MARK: - R objects

/// One R object, as unserialized. `type` is R's SEXPTYPE number (see `RObject.SEXPType`).
public struct RObject: Sendable {
    public enum Value: Sendable {
        case null
        case symbol(String)
        /// LISTSXP (and LANGSXP, DOTSXP, CLOSXP, PROMSXP: see `type`): the nodes' tags and values.
        case pairlist([RTagged])
        /// LGLSXP: 0, 1, or `RObject.naInteger`.
        case logical([Int32])
        /// INTSXP: `RObject.naInteger` is NA.
        case integer([Int32])
        /// REALSXP: NA is a NaN with payload 1954 (`RObject.isNA(_:)`).
        case real([Double])
        case complex([(re: Double, im: Double)])
        /// STRSXP (and a single CHARSXP): nil is NA_character_.
        case string([String?])
        /// VECSXP and EXPRSXP.
        case list([RObject])
        case raw([UInt8])
        case environment(REnvironment)
        /// Objects that carry no data we use: builtins (`.special("sum")`), the missing argument,
        /// the unbound value, external pointers, weak references, S4 objects (those keep their attributes).
        case special(String)
    }

    public enum SEXPType {
        public static let nilValue: UInt8 = 0, symbol: UInt8 = 1, pairlist: UInt8 = 2, closure: UInt8 = 3
        public static let environment: UInt8 = 4, promise: UInt8 = 5, language: UInt8 = 6
        public static let special: UInt8 = 7, builtin: UInt8 = 8, char: UInt8 = 9, logical: UInt8 = 10
        public static let integer: UInt8 = 13, real: UInt8 = 14, complex: UInt8 = 15, string: UInt8 = 16
        public static let dots: UInt8 = 17, list: UInt8 = 19, expression: UInt8 = 20, bytecode: UInt8 = 21
        public static let externalPointer: UInt8 = 22, weakReference: UInt8 = 23, raw: UInt8 = 24, s4: UInt8 = 25
    }

    public static let naInteger = Int32.min

    public var type: UInt8
    public var value: Value
    /// The attribute pairlist (`names`, `class`, `levels`, `row.names`, ...), in order.
    public var attributes: [RTagged]
    /// R's OBJECT bit (set for objects with a class attribute).
    public var isObject: Bool

    public init(type: UInt8, value: Value, attributes: [RTagged] = [], isObject: Bool = false) {
        self.type = type; self.value = value; self.attributes = attributes; self.isObject = isObject
    }

    public static let null = RObject(type: SEXPType.nilValue, value: .null)

    public func attribute(_ name: String) -> RObject? {
        attributes.first(where: { $0.tag == name })?.value
    }

    /// The `class` attribute (empty if none).
    public var classes: [String] { attribute("class")?.stringValues?.compactMap { $0 } ?? [] }

    /// The `names` attribute, or a pairlist's tags.
    public var names: [String?]? {
        if let n = attribute("names")?.stringValues { return n }
        if case .pairlist(let items) = value { return items.map(\.tag) }
        return nil
    }

    public var isFactor: Bool { type == SEXPType.integer && classes.contains("factor") }

    /// The number of elements of a vector, list or pairlist; 0 for NULL, 1 for anything else.
    public var count: Int {
        switch value {
        case .null: return 0
        case .pairlist(let v): return v.count
        case .logical(let v), .integer(let v): return v.count
        case .real(let v): return v.count
        case .complex(let v): return v.count
        case .string(let v): return v.count
        case .list(let v): return v.count
        case .raw(let v): return v.count
        case .symbol, .environment, .special: return 1
        }
    }

    public var stringValues: [String?]? { if case .string(let v) = value { return v }; return nil }
    public var intValues: [Int32]? {
        switch value { case .integer(let v), .logical(let v): return v; default: return nil }
    }
    public var doubleValues: [Double]? { if case .real(let v) = value { return v }; return nil }
    /// List elements (VECSXP / EXPRSXP) or pairlist values.
    public var elements: [RObject]? {
        switch value {
        case .list(let v): return v
        case .pairlist(let v): return v.map(\.value)
        default: return nil
        }
    }

    /// R's NA_real_ (a NaN whose low word is 1954), as opposed to other NaNs.
    public static func isNA(_ x: Double) -> Bool { x.isNaN && (x.bitPattern & 0xFFFF_FFFF) == 1954 }

    /// A short description for error messages: "integer[4000]", "list[3] (tbl_df, tbl, data.frame)".
    public var summary: String {
        let kind: String
        switch value {
        case .null: kind = "NULL"
        case .symbol(let s): kind = "symbol `\(s)`"
        case .pairlist: kind = "pairlist[\(count)]"
        case .logical: kind = "logical[\(count)]"
        case .integer: kind = "integer[\(count)]"
        case .real: kind = "double[\(count)]"
        case .complex: kind = "complex[\(count)]"
        case .string: kind = "character[\(count)]"
        case .list: kind = "list[\(count)]"
        case .raw: kind = "raw[\(count)]"
        case .environment(let e): kind = "environment (\(e.kind))"
        case .special(let s): kind = s
        }
        let cls = classes
        return cls.isEmpty ? kind : "\(kind) (\(cls.joined(separator: ", ")))"
    }
}

/// A pairlist node / attribute: an optional tag and a value.
public struct RTagged: Sendable {
    public var tag: String?
    public var value: RObject
    public init(tag: String?, value: RObject) { self.tag = tag; self.value = value }
}

/// An environment met while unserializing. Its bindings are parsed so they can be skipped, then dropped.
public struct REnvironment: Sendable {
    public enum Kind: Sendable, CustomStringConvertible {
        case global, empty, base, baseNamespace
        case namespace([String]), package([String])
        /// A reference that a lazy-load database resolves through its `references` table.
        case persistent([String])
        /// An ordinary environment, numbered in the order it was met.
        case local(Int)
        public var description: String {
            switch self {
            case .global: return "R_GlobalEnv"
            case .empty: return "R_EmptyEnv"
            case .base: return "base"
            case .baseNamespace: return "namespace:base"
            case .namespace(let s): return "namespace:\(s.first ?? "?")"
            case .package(let s): return "package:\(s.first ?? "?")"
            case .persistent(let s): return "persistent \(s.joined(separator: ","))"
            case .local(let n): return "local #\(n)"
            }
        }
    }
    public var kind: Kind
}

// MARK: - Data frames

/// A data frame (or tibble) read from R: column names, row count and columns.
public struct RDataFrame: Sendable {
    public var names: [String]
    public var rows: Int
    public var classes: [String]
    public var columns: [RObject]
    /// The file and object this frame came from, for error messages: "…/Rdata.rdb", "training_data".
    public var file: String
    public var object: String

    /// Interprets `object` as a data frame: a list with `names`, a `data.frame` class and `row.names`.
    public init(_ frame: RObject, file: String = "", object: String = "") throws {
        self.file = file; self.object = object
        guard case .list(let cols) = frame.value else {
            throw DatasetError(file: file, reason: "object '\(object)' is \(frame.summary), not a data frame",
                               hint: "pick an object whose class includes data.frame")
        }
        classes = frame.classes
        guard classes.contains("data.frame") else {
            throw DatasetError(file: file, reason: "object '\(object)' is \(frame.summary), not a data frame",
                               hint: "pick an object whose class includes data.frame")
        }
        let colNames = frame.attribute("names")?.stringValues ?? []
        guard colNames.count == cols.count else {
            throw DatasetError(file: file, reason: "data frame '\(object)' has \(cols.count) columns but \(colNames.count) names")
        }
        names = colNames.enumerated().map { $0.element ?? "V\($0.offset + 1)" }
        columns = cols
        // row.names: the compact form c(NA, -n) (or c(NA, n)), or an explicit vector of names / numbers.
        if let rn = frame.attribute("row.names") {
            if let ints = rn.intValues, ints.count == 2, ints[0] == RObject.naInteger {
                rows = Int(ints[1].magnitude)
            } else if let reals = rn.doubleValues, reals.count == 2, reals[0].isNaN {
                rows = Int(reals[1].magnitude)
            } else {
                rows = rn.count
            }
        } else {
            rows = cols.first?.count ?? 0
        }
        for (i, c) in cols.enumerated() where c.count != rows {
            throw DatasetError(file: file, reason: "column '\(names[i])' of '\(object)' has \(c.count) values for \(rows) rows")
        }
    }

    public func column(_ name: String) throws -> RObject {
        guard let i = names.firstIndex(of: name) else {
            throw DatasetError(file: file, reason: "data frame '\(object)' has no column '\(name)'",
                               hint: "columns: \(names.joined(separator: ", "))")
        }
        return columns[i]
    }

    /// The column as strings, nil for NA. Factors give their level strings; character columns
    /// their values; logicals "TRUE"/"FALSE"; integers and doubles their decimal form ("3", "2.5").
    public func strings(_ column: String) throws -> [String?] {
        let c = try self.column(column)
        if c.isFactor, let codes = c.intValues {
            let levels = c.attribute("levels")?.stringValues ?? []
            return try codes.enumerated().map { row, code in
                if code == RObject.naInteger { return nil }
                guard code >= 1, Int(code) <= levels.count else {
                    throw DatasetError(file: file, reason: "factor '\(column)' of '\(object)' has code \(code) at row \(row + 1) but \(levels.count) levels")
                }
                return levels[Int(code) - 1]
            }
        }
        switch c.value {
        case .string(let v): return v
        case .logical(let v): return v.map { $0 == RObject.naInteger ? nil : ($0 != 0 ? "TRUE" : "FALSE") }
        case .integer(let v): return v.map { $0 == RObject.naInteger ? nil : String($0) }
        case .real(let v): return v.map { $0.isNaN ? nil : rNumberString($0) }
        default:
            throw DatasetError(file: file, reason: "column '\(column)' of '\(object)' is \(c.summary), not text",
                               hint: "use a character, factor, logical or numeric column")
        }
    }

    /// The column as numbers, nil for NA (other NaNs stay NaN). Integers, logicals and doubles;
    /// factors give their codes (1-based), as `as.numeric` does in R.
    public func doubles(_ column: String) throws -> [Double?] {
        let c = try self.column(column)
        switch c.value {
        case .real(let v): return v.map { RObject.isNA($0) ? nil : $0 }
        case .integer(let v), .logical(let v): return v.map { $0 == RObject.naInteger ? nil : Double($0) }
        default:
            throw DatasetError(file: file, reason: "column '\(column)' of '\(object)' is \(c.summary), not numeric")
        }
    }

    /// A factor column's levels in R's order; nil if the column isn't a factor.
    public func levels(_ column: String) throws -> [String]? {
        let c = try self.column(column)
        guard c.isFactor else { return nil }
        return (c.attribute("levels")?.stringValues ?? []).map { $0 ?? "NA" }
    }
}

/// Formats a double as R prints it with 15 significant digits: "3", "2.5", "1e-04".
func rNumberString(_ x: Double) -> String {
    if x.isInfinite { return x < 0 ? "-Inf" : "Inf" }
    if x == x.rounded(), abs(x) < 1e15 { return String(Int64(x)) }
    return String(format: "%.15g", x)
}

// MARK: - The lazy-load database

/// An R lazy-load database: `<stem>.rdx` (the index) and `<stem>.rdb` (the objects) in `directory`.
/// Each call reads the index again; it is small (under a kilobyte for modeldata).
public struct RLazyLoadDB: Sendable {
    public var directory: URL
    public var stem: String

    public init(directory: URL, stem: String = "Rdata") {
        self.directory = directory; self.stem = stem
    }

    public var indexURL: URL { directory.appendingPathComponent(stem + ".rdx") }
    public var databaseURL: URL { directory.appendingPathComponent(stem + ".rdb") }

    /// Where an object's bytes are in the `.rdb`.
    public struct Entry: Sendable, Equatable {
        public var offset: Int
        public var length: Int
    }

    public struct Index: Sendable {
        public var variables: [String: Entry]
        /// Environments that objects refer to (by PERSISTSXP names); empty for data packages.
        public var references: [String: Entry]
        /// R's `compressed` field: 0 none, 1 zlib, 2 bzip2 (typed), 3 xz (typed).
        public var compression: Int
    }

    public func index() throws -> Index {
        let file = indexURL.path
        let data: Data
        do { data = try Data(contentsOf: indexURL) } catch {
            throw DatasetError(file: file, reason: "cannot read the lazy-load index: \(error.localizedDescription)",
                               hint: "check that the package's data/ folder holds \(stem).rdx and \(stem).rdb")
        }
        let bytes = try decompressFile([UInt8](data), file: file)
        var reader = RUnserializer(bytes: bytes, file: file, object: "index")
        let root = try reader.read()
        guard case .list(let parts) = root.value, let partNames = root.attribute("names")?.stringValues else {
            throw DatasetError(file: file, reason: "the lazy-load index is \(root.summary), not a named list")
        }
        func part(_ name: String) -> RObject? {
            partNames.firstIndex(of: name).map { parts[$0] }
        }
        func entries(_ name: String) throws -> [String: Entry] {
            guard let obj = part(name) else {
                if name == "references" { return [:] }
                throw DatasetError(file: file, reason: "the lazy-load index has no '\(name)' element")
            }
            if case .null = obj.value { return [:] }
            guard let values = obj.elements else {
                throw DatasetError(file: file, reason: "'\(name)' in the lazy-load index is \(obj.summary), not a list")
            }
            let keys = obj.names ?? []
            var out: [String: Entry] = [:]
            for (i, v) in values.enumerated() {
                let key = i < keys.count ? keys[i] ?? "" : ""
                let pair: [Double]
                if let d = v.doubleValues { pair = d } else if let n = v.intValues { pair = n.map(Double.init) } else { pair = [] }
                guard pair.count == 2, pair.allSatisfy({ $0.isFinite && $0 >= 0 && $0 < 1e15 }) else {
                    throw DatasetError(file: file, reason: "entry '\(key)' of '\(name)' in the lazy-load index is \(v.summary), not c(offset, length)")
                }
                out[key] = Entry(offset: Int(pair[0]), length: Int(pair[1]))
            }
            return out
        }
        let compression: Int
        if let c = part("compressed") {
            if let i = c.intValues?.first, i != RObject.naInteger { compression = Int(i) }
            else if let d = c.doubleValues?.first, d.isFinite { compression = Int(d) }
            else { compression = 1 }
        } else {
            compression = 1
        }
        return Index(variables: try entries("variables"), references: try entries("references"), compression: compression)
    }

    /// The names of the objects in the database, sorted.
    public func objectNames() throws -> [String] { try index().variables.keys.sorted() }

    /// One object, unserialized.
    public func readObject(named name: String) throws -> RObject {
        let idx = try index()
        guard let entry = idx.variables[name] else {
            let names = idx.variables.keys.sorted()
            throw DatasetError(file: indexURL.path, reason: "no object named '\(name)' in the lazy-load database",
                               hint: "available: \(names.joined(separator: ", "))")
        }
        let bytes = try entryBytes(entry, compression: idx.compression, object: name)
        var reader = RUnserializer(bytes: bytes, file: databaseURL.path,
                                   object: "'\(name)' (offset \(entry.offset), length \(entry.length))")
        return try reader.read()
    }

    /// An object that is a data frame (or tibble).
    public func readDataFrame(named name: String) throws -> RDataFrame {
        try RDataFrame(readObject(named: name), file: databaseURL.path, object: name)
    }

    /// The serialized bytes of one entry (decompressed).
    func entryBytes(_ entry: Entry, compression: Int, object: String) throws -> [UInt8] {
        let file = databaseURL.path
        let what = "object '\(object)' (offset \(entry.offset), length \(entry.length))"
        let handle: FileHandle
        do { handle = try FileHandle(forReadingFrom: databaseURL) } catch {
            throw DatasetError(file: file, reason: "cannot open the lazy-load database: \(error.localizedDescription)")
        }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()).map(Int.init) ?? 0
        guard entry.offset + entry.length <= size else {
            throw DatasetError(file: file, reason: "\(what) ends past the end of the file (\(size) bytes): the file is truncated or the index doesn't belong to it",
                               hint: "unpack the package again")
        }
        let raw: [UInt8]
        do {
            try handle.seek(toOffset: UInt64(entry.offset))
            raw = [UInt8](try handle.read(upToCount: entry.length) ?? Data())
        } catch {
            throw DatasetError(file: file, reason: "cannot read \(what): \(error.localizedDescription)")
        }
        guard raw.count == entry.length else {
            throw DatasetError(file: file, reason: "short read of \(what): got \(raw.count) bytes")
        }
        if compression == 0 { return raw }
        guard raw.count >= 5 else {
            throw DatasetError(file: file, reason: "\(what) is too short for a compressed entry")
        }
        let outLength = Int(raw[0]) << 24 | Int(raw[1]) << 16 | Int(raw[2]) << 8 | Int(raw[3])
        guard outLength <= 1 << 31 else { throw DatasetError(file: file, reason: "\(what): implausible length \(outLength)") }
        var type: UInt8 = UInt8(ascii: "1")
        var start = 4
        if compression == 2 || compression == 3 { type = raw[4]; start = 5 }
        else if compression != 1 {
            throw DatasetError(file: file, reason: "unsupported compression \(compression) in the lazy-load index",
                               hint: "R writes 0 (none), 1 (zlib), 2 (bzip2) or 3 (xz)")
        }
        let body = Array(raw[start...])
        let out: [UInt8]
        switch type {
        case UInt8(ascii: "0"):
            out = body
        case UInt8(ascii: "1"):
            do { out = try inflate(body, expected: outLength) } catch let e as CodecError {
                throw DatasetError(file: file, reason: "\(what): zlib: \(e.message)", hint: "the file may be corrupt or the offset wrong")
            }
        case UInt8(ascii: "Z"):
            do { out = try LZMA2.decode(body, outputSize: outLength) } catch let e as CodecError {
                throw DatasetError(file: file, reason: "\(what): LZMA2: \(e.message)", hint: "the file may be corrupt or the offset wrong")
            }
        case UInt8(ascii: "2"):
            throw DatasetError(file: file, reason: "\(what) uses unsupported compression: bzip2",
                               hint: "re-save the data with xz or gzip compression (tools::resaveRdaFiles)")
        default:
            throw DatasetError(file: file, reason: "\(what) has an unknown compression type byte 0x\(String(type, radix: 16))",
                               hint: "the offset may be wrong or the file corrupt")
        }
        guard out.count == outLength else {
            throw DatasetError(file: file, reason: "\(what) decompressed to \(out.count) bytes, expected \(outLength)")
        }
        return out
    }
}

/// A whole file as written by saveRDS / the .rdx writer: gzip, or plain serialization.
func decompressFile(_ bytes: [UInt8], file: String) throws -> [UInt8] {
    if bytes.starts(with: [0x1F, 0x8B]) {
        do { return try inflate(bytes, expected: nil) } catch let e as CodecError {
            throw DatasetError(file: file, reason: "gzip: \(e.message)", hint: "the file may be truncated")
        }
    }
    if bytes.starts(with: Array("BZh".utf8)) {
        throw DatasetError(file: file, reason: "unsupported compression: bzip2")
    }
    if bytes.starts(with: [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) {
        throw DatasetError(file: file, reason: "unsupported compression: xz container")
    }
    return bytes
}

// MARK: - zlib / gzip

struct CodecError: Error { var message: String }

/// Inflates a zlib or gzip stream (detected from its header). With `expected`, stops after that many
/// bytes' worth of output and checks the total.
func inflate(_ input: [UInt8], expected: Int?) throws -> [UInt8] {
    var stream = z_stream()
    var status = inflateInit2_(&stream, 15 + 32, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
    guard status == Z_OK else { throw CodecError(message: "inflateInit failed (\(status))") }
    defer { inflateEnd(&stream) }
    var input = input
    var output: [UInt8] = []
    output.reserveCapacity(expected ?? input.count * 4)
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    try input.withUnsafeMutableBufferPointer { inBuf in
        stream.next_in = inBuf.baseAddress
        stream.avail_in = uInt(inBuf.count)
        repeat {
            let produced: Int = chunk.withUnsafeMutableBufferPointer { out in
                stream.next_out = out.baseAddress
                stream.avail_out = uInt(out.count)
                status = CZlib.inflate(&stream, Z_NO_FLUSH)
                return out.count - Int(stream.avail_out)
            }
            output.append(contentsOf: chunk[0..<produced])
            if status == Z_STREAM_END { break }
            guard status == Z_OK || (status == Z_BUF_ERROR && produced > 0) else {
                if status == Z_BUF_ERROR { throw CodecError(message: "stream ends early (truncated data)") }
                let msg = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                throw CodecError(message: msg)
            }
            if let e = expected, output.count > e { throw CodecError(message: "more than the expected \(e) bytes") }
            if stream.avail_in == 0 && produced == 0 { throw CodecError(message: "stream ends early (truncated data)") }
        } while true
    }
    if let e = expected, output.count != e {
        throw CodecError(message: "decompressed to \(output.count) bytes, expected \(e)")
    }
    return output
}

// MARK: - LZMA2 (raw, as R's xz lazy-load compression writes it)

/// A decoder for raw LZMA2 streams (no .xz container), which is what R's xz compression uses. It is
/// written from the format's description: LZMA2 is a sequence of chunks, each either stored or
/// LZMA-coded with a range coder.
enum LZMA2 {
    static func decode(_ input: [UInt8], outputSize: Int) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: outputSize)
        try input.withUnsafeBufferPointer { inp in
            try output.withUnsafeMutableBufferPointer { outp in
                var decoder = LZMADecoder(input: inp, output: outp)
                defer { decoder.release() }
                try decoder.run()
            }
        }
        return output
    }
}

/// The probability array layout (one 11-bit probability per context).
private enum LZMALayout {
    static let states = 12
    static let isMatch = 0                              // states << 4 posStates
    static let isRep = isMatch + states * 16
    static let isRepG0 = isRep + states
    static let isRepG1 = isRepG0 + states
    static let isRepG2 = isRepG1 + states
    static let isRep0Long = isRepG2 + states             // states << 4 posStates
    static let posSlot = isRep0Long + states * 16        // 4 length states × 64
    static let specPos = posSlot + 4 * 64                // distances of slots 4–13 (115 used)
    static let align = specPos + 128                     // 16
    static let lenCoder = align + 16                     // 514 each
    static let repLenCoder = lenCoder + 514
    static let literal = repLenCoder + 514               // 0x300 << (lc + lp), lc + lp ≤ 4
    static let total = literal + 0x300 * 16
}

private struct LZMADecoder {
    let inp: UnsafeBufferPointer<UInt8>
    let out: UnsafeMutableBufferPointer<UInt8>
    let probs: UnsafeMutablePointer<UInt16>

    var inPos = 0
    var chunkEnd = 0        // the range decoder's input limit (end of the current chunk)
    var overrun = false
    var range: UInt32 = 0
    var code: UInt32 = 0

    var outPos = 0
    var dictStart = 0
    var lc = 0, lp = 0, pb = 0
    var state = 0
    var rep0 = 0, rep1 = 0, rep2 = 0, rep3 = 0

    init(input: UnsafeBufferPointer<UInt8>, output: UnsafeMutableBufferPointer<UInt8>) {
        inp = input; out = output
        probs = .allocate(capacity: LZMALayout.total)
        probs.initialize(repeating: 1024, count: LZMALayout.total)
    }

    func release() { probs.deallocate() }

    func fail(_ message: String) -> CodecError {
        CodecError(message: "\(message) (input byte \(inPos), output byte \(outPos))")
    }

    func byte(_ at: Int) throws -> Int {
        guard at < inp.count else { throw fail("stream ends early (truncated data)") }
        return Int(inp[at])
    }

    mutating func run() throws {
        var needDictReset = true
        var needProps = true
        while true {
            let control = try byte(inPos)
            inPos += 1
            if control == 0 { break }
            if control == 1 || control == 2 {
                // A stored chunk: 16-bit size − 1, then the bytes.
                if control == 1 { dictStart = outPos; needDictReset = false } else if needDictReset {
                    throw fail("first chunk doesn't reset the dictionary")
                }
                let size = (try byte(inPos) << 8 | byte(inPos + 1)) + 1
                inPos += 2
                guard inPos + size <= inp.count else { throw fail("stored chunk runs past the end of the input") }
                guard outPos + size <= out.count else { throw fail("output is longer than the declared \(out.count) bytes") }
                for i in 0..<size { out[outPos + i] = inp[inPos + i] }
                inPos += size; outPos += size
                continue
            }
            guard control >= 0x80 else { throw fail("invalid chunk control byte 0x\(String(control, radix: 16))") }
            let unpacked = ((control & 0x1F) << 16 | (try byte(inPos)) << 8 | (try byte(inPos + 1))) + 1
            let packed = ((try byte(inPos + 2)) << 8 | (try byte(inPos + 3))) + 1
            inPos += 4
            let reset = (control >> 5) & 3
            if reset == 3 { dictStart = outPos; needDictReset = false } else if needDictReset {
                throw fail("first chunk doesn't reset the dictionary")
            }
            if reset >= 2 {
                var props = try byte(inPos)
                inPos += 1
                guard props < 9 * 5 * 5 else { throw fail("invalid LZMA properties byte \(props)") }
                lc = props % 9; props /= 9
                lp = props % 5; pb = props / 5
                guard lc + lp <= 4 else { throw fail("invalid LZMA properties (lc + lp > 4)") }
                needProps = false
            } else if needProps {
                throw fail("LZMA chunk without properties")
            }
            if reset >= 1 {
                probs.update(repeating: 1024, count: LZMALayout.total)
                state = 0; rep0 = 0; rep1 = 0; rep2 = 0; rep3 = 0
            }
            guard inPos + packed <= inp.count else { throw fail("chunk runs past the end of the input (truncated data)") }
            guard outPos + unpacked <= out.count else { throw fail("output is longer than the declared \(out.count) bytes") }
            chunkEnd = inPos + packed
            let next = chunkEnd
            try initRange()
            try decodeChunk(until: outPos + unpacked)
            if overrun { throw fail("chunk's compressed data ends early") }
            inPos = next
        }
        guard outPos == out.count else { throw fail("output is \(outPos) bytes, declared \(out.count)") }
    }

    // Range decoder.

    @inline(__always) mutating func nextByte() -> UInt32 {
        if inPos < chunkEnd { let b = inp[inPos]; inPos += 1; return UInt32(b) }
        overrun = true
        return 0
    }

    mutating func initRange() throws {
        guard nextByte() == 0 else { throw fail("corrupt range coder start") }
        code = 0
        for _ in 0..<4 { code = code << 8 | nextByte() }
        range = 0xFFFF_FFFF
        guard code != 0xFFFF_FFFF else { throw fail("corrupt range coder start") }
    }

    @inline(__always) mutating func bit(_ i: Int) -> Int {
        let p = UInt32(probs[i])
        let bound = (range >> 11) &* p
        let result: Int
        if code < bound {
            range = bound
            probs[i] = UInt16(p + ((2048 - p) >> 5))
            result = 0
        } else {
            range &-= bound
            code &-= bound
            probs[i] = UInt16(p - (p >> 5))
            result = 1
        }
        if range < 1 << 24 { range <<= 8; code = code << 8 | nextByte() }
        return result
    }

    @inline(__always) mutating func bitTree(_ base: Int, _ bits: Int) -> Int {
        var m = 1
        for _ in 0..<bits { m = m << 1 | bit(base + m) }
        return m - (1 << bits)
    }

    @inline(__always) mutating func reverseBitTree(_ base: Int, _ bits: Int) -> Int {
        var m = 1, symbol = 0
        for i in 0..<bits {
            let b = bit(base + m)
            m = m << 1 | b
            symbol |= b << i
        }
        return symbol
    }

    mutating func directBits(_ count: Int) -> Int {
        var result = 0
        for _ in 0..<count {
            range >>= 1
            var b = 0
            if code >= range { code &-= range; b = 1 }
            result = result << 1 | b
            if range < 1 << 24 { range <<= 8; code = code << 8 | nextByte() }
        }
        return result
    }

    // LZMA.

    mutating func length(_ base: Int, _ posState: Int) -> Int {
        if bit(base) == 0 { return bitTree(base + 2 + posState * 8, 3) }
        if bit(base + 1) == 0 { return 8 + bitTree(base + 2 + 128 + posState * 8, 3) }
        return 16 + bitTree(base + 2 + 256, 8)
    }

    mutating func distance(_ len: Int) -> Int {
        let slot = bitTree(LZMALayout.posSlot + min(len, 3) << 6, 6)
        if slot < 4 { return slot }
        let bits = (slot >> 1) - 1
        var dist = (2 | (slot & 1)) << bits
        if slot < 14 {
            dist += reverseBitTree(LZMALayout.specPos + dist - slot, bits)
        } else {
            dist += directBits(bits - 4) << 4
            dist += reverseBitTree(LZMALayout.align, 4)
        }
        return dist
    }

    mutating func decodeChunk(until end: Int) throws {
        let pbMask = (1 << pb) - 1
        let lpMask = (1 << lp) - 1
        while outPos < end {
            if overrun { throw fail("chunk's compressed data ends early") }
            let posState = outPos & pbMask
            if bit(LZMALayout.isMatch + state << 4 + posState) == 0 {
                let prev = outPos > dictStart ? Int(out[outPos - 1]) : 0
                let base = LZMALayout.literal + 0x300 * (((outPos & lpMask) << lc) + (prev >> (8 - lc)))
                var symbol = 1
                if state >= 7 {
                    guard rep0 < outPos - dictStart else { throw fail("match distance beyond the dictionary") }
                    var matchByte = Int(out[outPos - rep0 - 1])
                    repeat {
                        let matchBit = (matchByte >> 7) & 1
                        matchByte <<= 1
                        let b = bit(base + ((1 + matchBit) << 8) + symbol)
                        symbol = symbol << 1 | b
                        if matchBit != b { break }
                    } while symbol < 0x100
                }
                while symbol < 0x100 { symbol = symbol << 1 | bit(base + symbol) }
                out[outPos] = UInt8(truncatingIfNeeded: symbol)
                outPos += 1
                state = state < 4 ? 0 : (state < 10 ? state - 3 : state - 6)
                continue
            }
            let len: Int
            if bit(LZMALayout.isRep + state) != 0 {
                if bit(LZMALayout.isRepG0 + state) == 0 {
                    if bit(LZMALayout.isRep0Long + state << 4 + posState) == 0 {
                        guard rep0 < outPos - dictStart else { throw fail("match distance beyond the dictionary") }
                        state = state < 7 ? 9 : 11
                        out[outPos] = out[outPos - rep0 - 1]
                        outPos += 1
                        continue
                    }
                } else {
                    let dist: Int
                    if bit(LZMALayout.isRepG1 + state) == 0 {
                        dist = rep1
                    } else {
                        if bit(LZMALayout.isRepG2 + state) == 0 { dist = rep2 } else { dist = rep3; rep3 = rep2 }
                        rep2 = rep1
                    }
                    rep1 = rep0
                    rep0 = dist
                }
                len = length(LZMALayout.repLenCoder, posState)
                state = state < 7 ? 8 : 11
            } else {
                rep3 = rep2; rep2 = rep1; rep1 = rep0
                len = length(LZMALayout.lenCoder, posState)
                state = state < 7 ? 7 : 10
                rep0 = distance(len)
                if rep0 == 0xFFFF_FFFF { throw fail("unexpected end marker") }
            }
            let n = len + 2
            guard rep0 < outPos - dictStart else { throw fail("match distance beyond the dictionary") }
            guard outPos + n <= end else { throw fail("match runs past the end of the chunk") }
            let base = out.baseAddress!
            if rep0 + 1 >= n {
                // Source and destination don't overlap.
                (base + outPos).update(from: base + outPos - rep0 - 1, count: n)
            } else {
                // An overlapping copy repeats the last rep0 + 1 bytes, byte by byte.
                var src = outPos - rep0 - 1
                for k in outPos..<outPos + n { base[k] = base[src]; src += 1 }
            }
            outPos += n
        }
    }
}

// MARK: - R's serialization format (XDR binary, versions 2 and 3)

/// Reads one serialized R object. Errors name the file, the object and the byte offset.
struct RUnserializer {
    let bytes: [UInt8]
    let file: String
    let object: String
    var pos = 0
    var refs: [RObject] = []
    var nativeEncoding = "UTF-8"
    var environments = 0
    var depth = 0

    init(bytes: [UInt8], file: String, object: String) {
        self.bytes = bytes; self.file = file; self.object = object
    }

    func fail(_ reason: String, hint: String = "") -> DatasetError {
        DatasetError(file: file, reason: "object \(object), serialized byte \(pos): \(reason)", hint: hint)
    }

    mutating func read() throws -> RObject {
        guard bytes.count >= 2 else { throw fail("empty or truncated serialization") }
        switch (bytes[0], bytes[1]) {
        case (UInt8(ascii: "X"), UInt8(ascii: "\n")): pos = 2
        case (UInt8(ascii: "A"), UInt8(ascii: "\n")), (UInt8(ascii: "B"), UInt8(ascii: "\n")):
            throw fail("ASCII or native-binary serialization is not supported", hint: "save with the default XDR format")
        default:
            throw fail("not an R serialization (no \"X\\n\" header; starts with \(bytes.prefix(4).map { String($0, radix: 16) }))",
                       hint: "the offset may be wrong or the data still compressed")
        }
        let version = try int()
        _ = try int()   // the writing R version
        _ = try int()   // the oldest R version that can read it
        switch version {
        case 2: break
        case 3:
            let n = Int(try int())
            guard n >= 0, n <= 64 else { throw fail("invalid native-encoding length \(n)") }
            nativeEncoding = String(decoding: try take(n), as: UTF8.self)
        default:
            throw fail("unsupported serialization format version \(version)", hint: "versions 2 and 3 are supported")
        }
        return try item()
    }

    // Primitive reads (big-endian).

    mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, pos + n <= bytes.count else { throw fail("data ends early (needed \(n) more bytes, \(bytes.count - pos) left)") }
        defer { pos += n }
        return bytes[pos..<pos + n]
    }

    mutating func int() throws -> Int32 {
        guard pos + 4 <= bytes.count else { throw fail("data ends early") }
        let v = UInt32(bytes[pos]) << 24 | UInt32(bytes[pos + 1]) << 16 | UInt32(bytes[pos + 2]) << 8 | UInt32(bytes[pos + 3])
        pos += 4
        return Int32(bitPattern: v)
    }

    mutating func length(elementSize: Int) throws -> Int {
        var n = Int(try int())
        if n == -1 {
            let hi = Int(try int()), lo = Int(UInt32(bitPattern: try int()))
            n = hi << 32 | lo
        }
        guard n >= 0, n <= (bytes.count - pos) / max(elementSize, 1) else {
            throw fail("invalid vector length \(n) (only \(bytes.count - pos) bytes left)")
        }
        return n
    }

    mutating func int32s(_ n: Int) throws -> [Int32] {
        let raw = try take(n * 4)
        return [Int32](unsafeUninitializedCapacity: n) { out, count in
            raw.withUnsafeBytes { buf in
                for k in 0..<n {
                    out[k] = Int32(bitPattern: UInt32(bigEndian: buf.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self)))
                }
            }
            count = n
        }
    }

    mutating func doubles(_ n: Int) throws -> [Double] {
        let raw = try take(n * 8)
        return [Double](unsafeUninitializedCapacity: n) { out, count in
            raw.withUnsafeBytes { buf in
                for k in 0..<n {
                    out[k] = Double(bitPattern: UInt64(bigEndian: buf.loadUnaligned(fromByteOffset: 8 * k, as: UInt64.self)))
                }
            }
            count = n
        }
    }

    // Items.

    mutating func item() throws -> RObject {
        let flags = UInt32(bitPattern: try int())
        return try item(flags: flags)
    }

    mutating func item(flags: UInt32) throws -> RObject {
        depth += 1
        defer { depth -= 1 }
        guard depth < 2000 else { throw fail("objects nested too deeply") }
        let type = Int(flags & 0xFF)
        let levels = Int(flags >> 12)
        let isObject = flags & (1 << 8) != 0
        let hasAttributes = flags & (1 << 9) != 0
        let hasTag = flags & (1 << 10) != 0
        let start = pos - 4

        switch type {
        case 254: return .null
        case 253: return env(.global)
        case 242: return env(.empty)
        case 241: return env(.base)
        case 250: return env(.baseNamespace)
        case 252: return RObject(type: 0xFC, value: .special("unbound value"))
        case 251: return RObject(type: 0xFB, value: .special("missing argument"))
        case 255:
            var index = Int(flags >> 8)
            if index == 0 { index = Int(try int()) }
            guard index >= 1, index <= refs.count else {
                throw fail("back-reference #\(index) to an object not yet seen (\(refs.count) so far)")
            }
            return refs[index - 1]
        case 247:
            let obj = env(.persistent(try stringVector()))
            refs.append(obj)
            return obj
        case 248:
            let obj = env(.package(try stringVector()))
            refs.append(obj)
            return obj
        case 249:
            let obj = env(.namespace(try stringVector()))
            refs.append(obj)
            return obj
        case 1:
            let name = try item()
            guard case .string(let s) = name.value, s.count == 1 else {
                throw fail("symbol name is \(name.summary), not a string")
            }
            let obj = RObject(type: RObject.SEXPType.symbol, value: .symbol(s[0] ?? "NA"))
            refs.append(obj)
            return obj
        case 4:
            _ = try int()   // locked
            environments += 1
            var obj = env(.local(environments))
            let slot = refs.count
            refs.append(obj)
            _ = try item()  // enclosure
            _ = try item()  // frame
            _ = try item()  // hash table
            let attrs = try attributeList()
            obj.attributes = attrs
            obj.isObject = isObject
            refs[slot] = obj
            return obj
        case 2, 3, 5, 6, 17, 239, 240:
            return try pairlist(flags: flags)
        case 238:
            return try altrep(isObject: isObject)
        case 21, 243, 244:
            throw fail("byte code is not supported", hint: "only data objects can be read")
        case 245, 246:
            throw fail("class references (pre-R 1.4 serialization) are not supported")
        default:
            break
        }

        var obj: RObject
        switch type {
        case 22:
            obj = RObject(type: UInt8(type), value: .special("external pointer"))
            refs.append(obj)
            _ = try item()  // protected value
            _ = try item()  // tag
        case 23:
            obj = RObject(type: UInt8(type), value: .special("weak reference"))
            refs.append(obj)
        case 7, 8:
            let n = Int(try int())
            let name = String(decoding: try take(n), as: UTF8.self)
            obj = RObject(type: UInt8(type), value: .special(name))
        case 9:
            let n = Int(try int())
            if n == -1 {
                obj = RObject(type: 9, value: .string([nil]))
            } else {
                let raw = try take(n)
                obj = RObject(type: 9, value: .string([decodeChars(raw, levels: levels)]))
            }
        case 10, 13:
            let n = try length(elementSize: 4)
            obj = RObject(type: UInt8(type), value: type == 10 ? .logical(try int32s(n)) : .integer(try int32s(n)))
        case 14:
            let n = try length(elementSize: 8)
            obj = RObject(type: 14, value: .real(try doubles(n)))
        case 15:
            let n = try length(elementSize: 16)
            let d = try doubles(2 * n)
            obj = RObject(type: 15, value: .complex((0..<n).map { (d[2 * $0], d[2 * $0 + 1]) }))
        case 16:
            let n = try length(elementSize: 8)
            var strings = [String?]()
            strings.reserveCapacity(n)
            for _ in 0..<n {
                let flagsAt = pos
                let e = try item()
                guard e.type == 9, case .string(let s) = e.value else {
                    pos = flagsAt
                    throw fail("character vector element is \(e.summary), not a string")
                }
                strings.append(s[0])
            }
            obj = RObject(type: 16, value: .string(strings))
        case 19, 20:
            let n = try length(elementSize: 4)
            var items = [RObject]()
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try item()) }
            obj = RObject(type: UInt8(type), value: .list(items))
        case 24:
            let n = try length(elementSize: 1)
            obj = RObject(type: 24, value: .raw(Array(try take(n))))
        case 25:
            obj = RObject(type: 25, value: .special("S4 object"))
        default:
            pos = start
            throw fail("unknown object type \(type) (flags 0x\(String(flags, radix: 16)))",
                       hint: "the data may be corrupt, or written by a newer R")
        }
        obj.isObject = isObject
        if hasAttributes { obj.attributes = try attributeList() }
        _ = hasTag
        return obj
    }

    func env(_ kind: REnvironment.Kind) -> RObject {
        RObject(type: RObject.SEXPType.environment, value: .environment(REnvironment(kind: kind)))
    }

    /// InStringVec: a 0, a length, then that many CHARSXPs (names of persistent objects, namespaces).
    mutating func stringVector() throws -> [String] {
        guard try int() == 0 else { throw fail("names in persistent strings are not supported") }
        let n = try length(elementSize: 8)
        var out = [String]()
        for _ in 0..<n {
            let e = try item()
            guard case .string(let s) = e.value, s.count == 1 else { throw fail("expected a string, got \(e.summary)") }
            out.append(s[0] ?? "NA")
        }
        return out
    }

    /// An attribute pairlist (or NULL).
    mutating func attributeList() throws -> [RTagged] {
        let a = try item()
        switch a.value {
        case .null: return []
        case .pairlist(let items): return items
        default: throw fail("attributes are \(a.summary), not a pairlist")
        }
    }

    /// A pairlist-like object. LISTSXP / LANGSXP / DOTSXP chains are read iteratively; for closures
    /// and promises the two slots are kept as two items and the environment (the tag) is dropped.
    mutating func pairlist(flags: UInt32) throws -> RObject {
        let firstType = Int(flags & 0xFF)
        let objType: UInt8 = firstType == 239 ? 2 : firstType == 240 ? 6 : UInt8(firstType)
        var result = RObject(type: objType, value: .null, isObject: flags & (1 << 8) != 0)
        var items: [RTagged] = []
        var f = flags
        var first = true
        while true {
            let t = Int(f & 0xFF)
            let hasAttr = f & (1 << 9) != 0 || t == 239 || t == 240
            let hasTag = f & (1 << 10) != 0
            let attrs = hasAttr ? try attributeList() : []
            if first { result.attributes = attrs }
            var tag: String?
            if hasTag {
                let tagObj = try item()
                if case .symbol(let s) = tagObj.value { tag = s }
            }
            if t == 3 || t == 5 {
                // Closure: formals, body (tag = environment). Promise: value, expression (tag = environment).
                items.append(RTagged(tag: nil, value: try item()))
                items.append(RTagged(tag: nil, value: try item()))
                break
            }
            items.append(RTagged(tag: tag, value: try item()))
            first = false
            let next = UInt32(bitPattern: try int())
            let nt = Int(next & 0xFF)
            if nt == 254 { break }
            if nt == 2 || nt == 239 { f = next; continue }
            // A dotted pair whose cdr is not a list: keep the cdr as a last, untagged item.
            items.append(RTagged(tag: nil, value: try item(flags: next)))
            break
        }
        result.value = .pairlist(items)
        return result
    }

    /// ALTREP_SXP: class info (a pairlist: class symbol, package symbol, type), state, attributes.
    mutating func altrep(isObject: Bool) throws -> RObject {
        let infoAt = pos
        let info = try item()
        let state = try item()
        let attrs = try attributeList()
        guard case .pairlist(let parts) = info.value, let first = parts.first, case .symbol(let cls) = first.value.value else {
            pos = infoAt
            throw fail("ALTREP class information is \(info.summary), not a pairlist")
        }
        let package: String
        if parts.count > 1, case .symbol(let p) = parts[1].value.value { package = p } else { package = "?" }
        var obj: RObject
        switch cls {
        case "compact_intseq", "compact_realseq":
            let s: [Double] = state.doubleValues ?? state.intValues?.map(Double.init) ?? []
            guard s.count == 3, s[0] >= 0, s[0] < 1e12 else { throw fail("\(cls) state is \(state.summary), not c(n, start, step)") }
            let n = Int(s[0])
            if cls == "compact_intseq" {
                let start = Int64(s[1]), step = Int64(s[2])
                guard start + step * Int64(max(n - 1, 0)) <= Int64(Int32.max),
                      start + step * Int64(max(n - 1, 0)) > Int64(Int32.min) else { throw fail("\(cls) overflows integers") }
                obj = RObject(type: 13, value: .integer((0..<n).map { Int32(start + step * Int64($0)) }))
            } else {
                obj = RObject(type: 14, value: .real((0..<n).map { s[1] + s[2] * Double($0) }))
            }
        case "wrap_integer", "wrap_logical", "wrap_real", "wrap_complex", "wrap_string", "wrap_raw", "wrap_list":
            // State: CONS(wrapped vector, metadata).
            guard let wrapped = state.elements?.first else { throw fail("\(cls) state is \(state.summary)") }
            obj = wrapped
        case "deferred_string":
            // State: CONS(numbers, scipen); the strings are the numbers as R prints them.
            guard let arg = state.elements?.first else { throw fail("deferred_string state is \(state.summary)") }
            switch arg.value {
            case .integer(let v): obj = RObject(type: 16, value: .string(v.map { $0 == RObject.naInteger ? nil : String($0) }))
            case .real(let v): obj = RObject(type: 16, value: .string(v.map { RObject.isNA($0) ? nil : ($0.isNaN ? "NaN" : rNumberString($0)) }))
            case .string(let v): obj = RObject(type: 16, value: .string(v))
            default: throw fail("deferred_string over \(arg.summary) is not supported")
            }
        default:
            throw fail("unsupported ALTREP class \(cls) (package \(package))",
                       hint: "materialise the vector in R before saving")
        }
        obj.attributes = attrs
        obj.isObject = isObject
        return obj
    }

    /// A CHARSXP's bytes as a String, by its encoding flags (in `levels`): UTF-8 (8) and ASCII (64)
    /// as UTF-8, Latin-1 (4) byte for byte, bytes (2) as UTF-8 where valid; unflagged strings in the
    /// writer's native encoding. Invalid UTF-8 becomes U+FFFD.
    func decodeChars(_ raw: ArraySlice<UInt8>, levels: Int) -> String {
        let latin1 = levels & 4 != 0
        let flagged = levels & (8 | 64 | 2) != 0
        let native = nativeEncoding.lowercased()
        if latin1 || (!flagged && (native == "latin1" || native == "iso-8859-1" || native == "iso8859-1")) {
            return String(String.UnicodeScalarView(raw.map { Unicode.Scalar($0) }))
        }
        if !flagged, native == "cp1252" || native == "windows-1252" || native == "latin-9",
           let s = String(data: Data(raw), encoding: .windowsCP1252) {
            return s
        }
        return String(decoding: raw, as: UTF8.self)
    }
}
