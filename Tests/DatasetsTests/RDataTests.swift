import Foundation
import XCTest

@testable import Datasets

/// Reference figures for Debian's r-cran-modeldata 1.1.0-1 (data/Rdata.rdb). They were obtained
/// independently of this reader: `pip install rdata` (1.1.0) into a throwaway venv (/tmp/rvenv), then
/// read the .rdx with Python's gzip module, cut each entry out of the .rdb, decompressed it with
/// Python's `lzma` module (FORMAT_RAW, FILTER_LZMA2; liblzma) and parsed it with `rdata.parser` and
/// `rdata.conversion` (pandas). The tests need neither Python nor R.
final class RDataTests: XCTestCase {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let dataDirectory = packageRoot
        .appendingPathComponent(".cache/assets/r-cran-modeldata-1.1.0-1/usr/lib/R/site-library/modeldata/data")

    func database() throws -> RLazyLoadDB {
        let dir = Self.dataDirectory
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("Rdata.rdb").path) else {
            throw XCTSkip("modeldata not unpacked at \(dir.path) (run scripts/setup.sh)")
        }
        return RLazyLoadDB(directory: dir)
    }

    // MARK: Real file

    func testIndex() throws {
        let db = try database()
        let index = try db.index()
        XCTAssertEqual(index.compression, 3)
        XCTAssertEqual(index.variables.count, 41)
        XCTAssertTrue(index.references.isEmpty)
        XCTAssertEqual(index.variables["training_data"], RLazyLoadDB.Entry(offset: 3_551_598, length: 508_537))
        XCTAssertEqual(index.variables["testing_data"], RLazyLoadDB.Entry(offset: 3_407_777, length: 143_821))
        XCTAssertEqual(try db.objectNames().first, "Chicago")
    }

    func testTrainingData() throws {
        let frame = try database().readDataFrame(named: "training_data")
        XCTAssertEqual(frame.names, ["product", "review", "score"])
        XCTAssertEqual(frame.rows, 4000)
        XCTAssertEqual(frame.classes, ["tbl_df", "tbl", "data.frame"])
        XCTAssertEqual(try frame.levels("score"), ["great", "other"])
        let score = try frame.strings("score"), review = try frame.strings("review"), product = try frame.strings("product")
        XCTAssertEqual(score.count, 4000)
        XCTAssertEqual(score.filter { $0 == "great" }.count, 2600)
        XCTAssertEqual(score.filter { $0 == "other" }.count, 1400)
        XCTAssertFalse(review.contains(nil) || product.contains(nil) || score.contains(nil))
        XCTAssertEqual(Set(product.compactMap { $0 }).count, 4000)
        XCTAssertEqual(review.reduce(0) { $0 + ($1?.utf8.count ?? 0) }, 1_587_440)

        XCTAssertEqual(product[0], "B000J0LSBG")
        XCTAssertEqual(score[0], "other")
        XCTAssertEqual(review[0], "this stuff is  not stuffing  its  not good at all  save your money")
        XCTAssertEqual(product[3999], "B00473JLA6")
        XCTAssertEqual(score[3999], "great")
        XCTAssertEqual(review[3999], "This is my second order and still the best price I can find on Roma. Yeah, I have to store a couple extra bottles but so what.")
        // Row 75 is one of 11 with non-ASCII text; the source data itself holds U+FFFD there.
        XCTAssertEqual(review[74]?.unicodeScalars.count, 3353)
        XCTAssertTrue(review[74]?.contains("Claude Debussy's R\u{FFFD}verie. It is diffic") ?? false)
        XCTAssertEqual(review.filter { $0?.unicodeScalars.contains { !$0.isASCII } ?? false }.count, 11)
        XCTAssertEqual(review[1]?.unicodeScalars.count, 509)
        XCTAssertTrue(review[1]?.hasPrefix("I absolutely LOVE this dried fruit.  LOVE IT.  Whenever I have a craving") ?? false)
    }

    func testTestingData() throws {
        let frame = try database().readDataFrame(named: "testing_data")
        XCTAssertEqual(frame.names, ["product", "review", "score"])
        XCTAssertEqual(frame.rows, 1000)
        XCTAssertEqual(try frame.levels("score"), ["great", "other"])
        let score = try frame.strings("score"), review = try frame.strings("review"), product = try frame.strings("product")
        XCTAssertEqual(score.filter { $0 == "great" }.count, 658)
        XCTAssertEqual(score.filter { $0 == "other" }.count, 342)
        XCTAssertEqual(review.reduce(0) { $0 + ($1?.utf8.count ?? 0) }, 408_318)
        XCTAssertEqual(product[0], "B005GXFP60")
        XCTAssertEqual(score[0], "great")
        XCTAssertEqual(review[0], "These are the best tasting gummy fruits I have ever eaten. Can't stop eating them and the flavors are great.")
        XCTAssertEqual(product[999], "B001EO5U3I")
        XCTAssertEqual(review[999]?.unicodeScalars.count, 398)
        XCTAssertTrue(review[999]?.hasPrefix("This oatmeal is great. It is a lot more flavorful than typical oatmeal.") ?? false)
        XCTAssertTrue(review[21]?.contains("C\u{FFFD}tes-du-Rh\u{FFFD}ne region") ?? false)
        XCTAssertThrowsError(try frame.strings("rating")) { error in
            XCTAssertTrue("\(error)".contains("no column 'rating'"), "\(error)")
            XCTAssertTrue("\(error)".contains("product, review, score"), "\(error)")
        }
    }

    /// Every object in the database parses; the data frames' shapes match the reference.
    func testEveryObjectParses() throws {
        let expected: [String: (Int, Int)] = [
            "Chicago": (5698, 50), "Sacramento": (932, 9), "Smithsonian": (20, 3), "ad_data": (333, 131),
            "ames": (2930, 74), "attrition": (1470, 31), "biomass": (536, 8), "bivariate_test": (710, 3),
            "bivariate_train": (1009, 3), "bivariate_val": (300, 3), "car_prices": (804, 18), "cells": (2019, 58),
            "check_times": (13626, 25), "concrete": (1030, 9), "covers": (40, 1), "credit_data": (4454, 14),
            "crickets": (31, 3), "drinks": (309, 2), "grants_other": (8190, 1503), "grants_test": (518, 1503),
            "hpc_cv": (3467, 7), "hpc_data": (4331, 8), "lending_club": (9857, 23), "meats": (215, 103),
            "mlc_churn": (5000, 20), "oils": (96, 8), "parabolic": (500, 3), "pathology": (344, 2),
            "pd_speech": (252, 752), "penguins": (344, 7), "scat": (110, 19), "solubility_test": (316, 2),
            "stackoverflow": (5594, 21), "tate_text": (4284, 5), "testing_data": (1000, 3),
            "training_data": (4000, 3), "two_class_dat": (791, 3), "two_class_example": (500, 4), "wa_churn": (7043, 20),
        ]
        let db = try database()
        for name in try db.objectNames() {
            if let (rows, cols) = expected[name] {
                let frame = try db.readDataFrame(named: name)
                XCTAssertEqual(frame.rows, rows, name)
                XCTAssertEqual(frame.names.count, cols, name)
                for (column, values) in zip(frame.names, frame.columns) {
                    switch values.type {
                    case RObject.SEXPType.real: XCTAssertEqual(try frame.doubles(column).count, rows, "\(name).\(column)")
                    case RObject.SEXPType.list: continue
                    default: XCTAssertEqual(try frame.strings(column).count, rows, "\(name).\(column)")
                    }
                }
            } else {
                // grants_2008 (a Date vector) and stations (a character vector) aren't data frames.
                let object = try db.readObject(named: name)
                XCTAssertEqual(object.count, name == "grants_2008" ? 6633 : 20, name)
                XCTAssertThrowsError(try db.readDataFrame(named: name)) { error in
                    XCTAssertTrue("\(error)".contains("not a data frame"), "\(error)")
                }
            }
        }
        XCTAssertEqual(try db.objectNames().count, expected.count + 2)
        let penguins = try db.readDataFrame(named: "penguins")
        XCTAssertEqual(try penguins.levels("species"), ["Adelie", "Chinstrap", "Gentoo"])
        XCTAssertEqual(try penguins.doubles("bill_length_mm").compactMap { $0 }.count, 342)   // 2 NA
    }

    // MARK: Errors

    func copyOfDatabase() throws -> URL {
        _ = try database()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rdata-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        for file in ["Rdata.rdx", "Rdata.rdb"] {
            try FileManager.default.copyItem(at: Self.dataDirectory.appendingPathComponent(file), to: dir.appendingPathComponent(file))
        }
        return dir
    }

    func testTruncatedDatabase() throws {
        let dir = try copyOfDatabase()
        let rdb = dir.appendingPathComponent("Rdata.rdb")
        let bytes = try Data(contentsOf: rdb)
        try bytes.prefix(3_700_000).write(to: rdb)   // cuts training_data (3551598 + 508537) in the middle
        let db = RLazyLoadDB(directory: dir)
        XCTAssertThrowsError(try db.readDataFrame(named: "training_data")) { error in
            let e = error as? DatasetError
            XCTAssertEqual(e?.file, rdb.path)
            XCTAssertTrue(e?.reason.contains("'training_data' (offset 3551598, length 508537)") ?? false, "\(error)")
            XCTAssertTrue(e?.reason.contains("truncated") ?? false, "\(error)")
        }
        XCTAssertEqual(try db.readDataFrame(named: "testing_data").rows, 1000)   // still whole
    }

    func testBadOffsets() throws {
        let dir = try copyOfDatabase()
        // An index whose offsets are wrong: past the end, and one byte into a real entry.
        let index = RWriter.index(variables: ["far": (9_000_000, 100), "shifted": (3_407_778, 143_820), "empty": (0, 3)],
                                  compressed: 3)
        try Data(index).write(to: dir.appendingPathComponent("Rdata.rdx"))
        let db = RLazyLoadDB(directory: dir)
        XCTAssertThrowsError(try db.readObject(named: "far")) { error in
            XCTAssertTrue("\(error)".contains("object 'far' (offset 9000000, length 100) ends past the end of the file"), "\(error)")
        }
        XCTAssertThrowsError(try db.readObject(named: "shifted")) { error in
            XCTAssertTrue("\(error)".contains("Rdata.rdb"), "\(error)")
            XCTAssertTrue("\(error)".contains("object 'shifted' (offset 3407778, length 143820)"), "\(error)")
        }
        XCTAssertThrowsError(try db.readObject(named: "empty")) { error in
            XCTAssertTrue("\(error)".contains("too short"), "\(error)")
        }
    }

    func testUnknownObjectListsNames() throws {
        let db = try database()
        XCTAssertThrowsError(try db.readDataFrame(named: "food_reviews")) { error in
            let e = error as? DatasetError
            XCTAssertTrue(e?.file.hasSuffix("Rdata.rdx") ?? false)
            XCTAssertTrue(e?.reason.contains("no object named 'food_reviews'") ?? false, "\(error)")
            XCTAssertTrue(e?.hint.contains("testing_data, training_data") ?? false, "\(error)")
        }
    }

    func testMissingDirectory() {
        let db = RLazyLoadDB(directory: URL(fileURLWithPath: "/nonexistent/modeldata/data"))
        XCTAssertThrowsError(try db.readDataFrame(named: "training_data")) { error in
            XCTAssertEqual((error as? DatasetError)?.file, "/nonexistent/modeldata/data/Rdata.rdx")
        }
    }

    // MARK: Synthetic databases (formats the real file doesn't use)

    func testZlibAndStoredEntries() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rdata-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let payload = RWriter.serialize(RWriter.dataFrame(["text": RWriter.strings(["a", nil, "ü"]),
                                                          "n": RWriter.reals([1.5, 2, .nan])]))
        // compressed = 1: length + zlib stream (a stored deflate block).
        var rdb = RWriter.be32(payload.count) + RWriter.storedZlib(payload)
        let second = rdb.count
        // compressed = 3 style entries are typed; write a second database for those below.
        try Data(rdb).write(to: dir.appendingPathComponent("Rdata.rdb"))
        try Data(RWriter.index(variables: ["df": (0, second)], compressed: 1)).write(to: dir.appendingPathComponent("Rdata.rdx"))
        let frame = try RLazyLoadDB(directory: dir).readDataFrame(named: "df")
        XCTAssertEqual(frame.names, ["text", "n"])
        XCTAssertEqual(frame.rows, 3)
        XCTAssertEqual(try frame.strings("text"), ["a", nil, "ü"])
        XCTAssertEqual(try frame.strings("n"), ["1.5", "2", nil])

        // compressed = 3 with type bytes '0' (stored), '1' (zlib), 'Z' (LZMA2 stored chunk), '2' (bzip2).
        rdb = []
        var entries: [String: (Int, Int)] = [:]
        func add(_ name: String, _ bytes: [UInt8]) { entries[name] = (rdb.count, bytes.count); rdb += bytes }
        add("stored", RWriter.be32(payload.count) + [UInt8(ascii: "0")] + payload)
        add("zlib", RWriter.be32(payload.count) + [UInt8(ascii: "1")] + RWriter.storedZlib(payload))
        add("lzma", RWriter.be32(payload.count) + [UInt8(ascii: "Z"), 0x01] + RWriter.be16(payload.count - 1) + payload + [0])
        add("bzip", RWriter.be32(payload.count) + Array("2BZh91AY".utf8))
        try Data(rdb).write(to: dir.appendingPathComponent("Rdata.rdb"))
        try Data(RWriter.index(variables: entries, compressed: 3)).write(to: dir.appendingPathComponent("Rdata.rdx"))
        let db = RLazyLoadDB(directory: dir)
        for name in ["stored", "zlib", "lzma"] {
            XCTAssertEqual(try db.readDataFrame(named: name).strings("text"), ["a", nil, "ü"], name)
        }
        XCTAssertThrowsError(try db.readObject(named: "bzip")) { error in
            XCTAssertTrue("\(error)".contains("unsupported compression: bzip2"), "\(error)")
        }
    }

    // MARK: Serialization details

    func unserialize(_ bytes: [UInt8]) throws -> RObject {
        var reader = RUnserializer(bytes: bytes, file: "test.rds", object: "'x'")
        return try reader.read()
    }

    func testAltrepAndReferences() throws {
        // A data frame whose row.names is an ALTREP compact_intseq and whose factor column is wrapped
        // (wrap_integer), with a symbol used twice (the second a back-reference) and an environment.
        var w = RWriter()
        w.header(version: 3)
        w.flags(19, attr: true, object: true); w.int(2)
        //   column 1: wrap_integer(factor codes) with levels/class on the ALTREP node
        w.flags(238, attr: true, object: true)
        w.altrepInfo(cls: "wrap_integer", newSymbols: true)
        w.flags(2); w.intVector([2, 1, RObject.naInteger]); w.flags(2); w.intVector([0, 0]); w.nilValue()   // state CONS(x, meta)
        w.attr("levels", newSymbol: true) { $0.strVector(["lo", "hi"]) }
        w.attr("class", newSymbol: true, last: true) { $0.strVector(["factor"]) }
        //   column 2: deferred_string over integers
        w.flags(238)
        w.altrepInfo(cls: "deferred_string", newSymbols: false, refBase: 2)
        w.flags(2); w.intVector([10, 20, 30]); w.flags(2); w.intVector([0]); w.nilValue()
        w.nilValue()
        // attributes of the list: names, an environment-valued attribute, class, row.names (compact_intseq)
        w.attr("names", newSymbol: true) { $0.strVector(["f", "s"]) }
        w.attr("env", newSymbol: true) { w2 in
            w2.flags(4); w2.int(0)
            w2.flags(253)                       // enclosure: global env
            w2.flags(2, tag: true); w2.ref(6); w2.intVector([1]); w2.nilValue()   // frame: names = 1 (a back-reference to "names")
            w2.nilValue()                       // hash table
            w2.nilValue()                       // attributes
        }
        w.attr("class", ref: 4) { $0.strVector(["data.frame"]) }
        w.attr("row.names", newSymbol: true, last: true) { w2 in
            w2.flags(238)
            w2.altrepInfo(cls: "compact_intseq", newSymbols: true, type: 13)
            w2.realVector([3, 1, 1])
            w2.nilValue()
        }
        let object = try unserialize(w.bytes)
        let frame = try RDataFrame(object, file: "test.rds", object: "x")
        XCTAssertEqual(frame.names, ["f", "s"])
        XCTAssertEqual(frame.rows, 3)
        XCTAssertEqual(try frame.strings("f"), ["hi", "lo", nil])
        XCTAssertEqual(try frame.levels("f"), ["lo", "hi"])
        XCTAssertEqual(try frame.strings("s"), ["10", "20", "30"])
        XCTAssertEqual(object.attribute("row.names")?.intValues, [1, 2, 3])
        guard case .environment(let env)? = object.attribute("env")?.value, case .local(1) = env.kind else {
            return XCTFail("expected a local environment, got \(object.attribute("env")?.summary ?? "nil")")
        }
    }

    func testStringEncodingsAndNA() throws {
        var w = RWriter()
        w.header(version: 2)
        w.flags(16); w.int(4)
        w.charsxp(Array("plain".utf8), levels: 64)
        w.charsxp(Array("naïve".utf8), levels: 8)
        w.charsxp([0x63, 0x61, 0x66, 0xE9], levels: 4)   // "café" in Latin-1
        w.int(9); w.int(-1)                                // NA_STRING
        XCTAssertEqual(try unserialize(w.bytes).stringValues, ["plain", "naïve", "café", nil])
    }

    func testSerializationErrors() throws {
        XCTAssertThrowsError(try unserialize(Array("A\n1\n".utf8))) { error in
            XCTAssertTrue("\(error)".contains("ASCII"), "\(error)")
        }
        var w = RWriter()
        w.header(version: 3)
        w.flags(21); w.int(0)
        XCTAssertThrowsError(try unserialize(w.bytes)) { error in
            XCTAssertTrue("\(error)".contains("byte code is not supported"), "\(error)")
            XCTAssertTrue("\(error)".contains("test.rds"), "\(error)")
        }
        w = RWriter()
        w.header(version: 3)
        w.flags(16); w.int(1000)   // 1000 strings promised, none there
        XCTAssertThrowsError(try unserialize(w.bytes)) { error in
            XCTAssertTrue("\(error)".contains("invalid vector length 1000"), "\(error)")
        }
        w = RWriter()
        w.header(version: 3)
        w.flags(238)
        w.altrepInfo(cls: "mmap_integer", newSymbols: true)
        w.nilValue(); w.nilValue()
        XCTAssertThrowsError(try unserialize(w.bytes)) { error in
            XCTAssertTrue("\(error)".contains("unsupported ALTREP class mmap_integer (package base)"), "\(error)")
        }
        w = RWriter()
        w.header(version: 3)
        w.ref(7)
        XCTAssertThrowsError(try unserialize(w.bytes)) { error in
            XCTAssertTrue("\(error)".contains("back-reference #7"), "\(error)")
        }
    }

    func testLZMA2StoredChunksAndErrors() throws {
        let hello = Array("hello, world".utf8)
        XCTAssertEqual(try LZMA2.decode([0x01, 0x00, 0x04] + hello.prefix(5) + [0x02, 0x00, 0x06] + hello.suffix(7) + [0x00],
                                        outputSize: 12), hello)
        XCTAssertThrowsError(try LZMA2.decode([0x02, 0x00, 0x00, 0x41, 0x00], outputSize: 1))   // no dictionary reset
        XCTAssertThrowsError(try LZMA2.decode([0x01, 0x00, 0x04] + hello.prefix(3), outputSize: 5))   // truncated
        XCTAssertThrowsError(try LZMA2.decode([0x01, 0x00, 0x00, 0x41, 0x00], outputSize: 2))   // short output
    }
}

/// A minimal writer of R's XDR serialization, for synthetic test inputs.
struct RWriter {
    var bytes: [UInt8] = []

    static func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    static func be16(_ v: Int) -> [UInt8] { [UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    mutating func int(_ v: Int32) { bytes += Self.be32(Int(UInt32(bitPattern: v))) }
    mutating func int(_ v: Int) { int(Int32(v)) }
    mutating func flags(_ type: Int, attr: Bool = false, tag: Bool = false, object: Bool = false, levels: Int = 0) {
        int(Int32(bitPattern: UInt32(type | (object ? 1 << 8 : 0) | (attr ? 1 << 9 : 0) | (tag ? 1 << 10 : 0) | levels << 12)))
    }
    mutating func header(version: Int) {
        bytes += Array("X\n".utf8); int(version); int(0x040202); int(0x030500)
        if version == 3 { int(5); bytes += Array("UTF-8".utf8) }
    }
    mutating func nilValue() { flags(254) }
    mutating func ref(_ index: Int) { flags(255 | index << 8) }
    mutating func charsxp(_ raw: [UInt8], levels: Int = 64) { flags(9, levels: levels); int(raw.count); bytes += raw }
    mutating func symbol(_ name: String) { flags(1); charsxp(Array(name.utf8)) }
    mutating func strVector(_ values: [String?]) {
        flags(16); int(values.count)
        for v in values { if let v { charsxp(Array(v.utf8), levels: v.utf8.allSatisfy { $0 < 0x80 } ? 64 : 8) } else { int(9); int(-1) } }
    }
    mutating func intVector(_ values: [Int32]) { flags(13); int(values.count); for v in values { int(v) } }
    mutating func realVector(_ values: [Double]) {
        flags(14); int(values.count)
        for v in values { let b = v.bitPattern; bytes += Self.be32(Int(b >> 32)) + Self.be32(Int(b & 0xFFFF_FFFF)) }
    }
    /// ALTREP class info: pairlist(class symbol, package symbol, type). With `newSymbols` false the
    /// symbols are back-references (`refBase` is the reference number of the "base" symbol).
    mutating func altrepInfo(cls: String, newSymbols: Bool, refBase: Int = 0, type: Int = 13) {
        flags(2); symbol(cls)
        flags(2); if newSymbols { symbol("base") } else { ref(refBase) }
        flags(2); intVector([Int32(type)])
        nilValue()
    }
    /// One attribute node; `last` closes the pairlist.
    mutating func attr(_ name: String, newSymbol: Bool = false, ref refIndex: Int = 0, last: Bool = false, _ value: (inout RWriter) -> Void) {
        flags(2, tag: true)
        if newSymbol { symbol(name) } else { ref(refIndex) }
        value(&self)
        if last { nilValue() }
    }

    // Whole objects.

    enum Column { case strings([String?]), reals([Double]) }
    static func strings(_ v: [String?]) -> Column { .strings(v) }
    static func reals(_ v: [Double]) -> Column { .reals(v) }

    static func dataFrame(_ columns: KeyValuePairs<String, Column>) -> RWriter {
        var w = RWriter()
        w.flags(19, attr: true, object: true); w.int(columns.count)
        var rows = 0
        for (_, c) in columns {
            switch c {
            case .strings(let v): w.strVector(v); rows = v.count
            case .reals(let v): w.realVector(v); rows = v.count
            }
        }
        w.attr("names", newSymbol: true) { $0.strVector(columns.map(\.key)) }
        w.attr("class", newSymbol: true) { $0.strVector(["data.frame"]) }
        w.attr("row.names", newSymbol: true, last: true) { $0.intVector([RObject.naInteger, Int32(-rows)]) }
        return w
    }

    static func serialize(_ body: RWriter) -> [UInt8] {
        var w = RWriter()
        w.header(version: 3)
        return w.bytes + body.bytes
    }

    /// A lazy-load index list(variables = list(name = c(offset, length)), references = list(), compressed = n),
    /// uncompressed (the reader also accepts gzip).
    static func index(variables: [String: (Int, Int)], compressed: Int) -> [UInt8] {
        var w = RWriter()
        w.header(version: 2)
        w.flags(19, attr: true); w.int(3)
        let names = variables.keys.sorted()
        w.flags(19, attr: true); w.int(names.count)
        for n in names { w.intVector([Int32(variables[n]!.0), Int32(variables[n]!.1)]) }
        w.attr("names", newSymbol: true, last: true) { $0.strVector(names) }
        w.flags(19); w.int(0)
        w.intVector([Int32(compressed)])
        w.attr("names", ref: 1, last: true) { $0.strVector(["variables", "references", "compressed"]) }
        return w.bytes
    }

    /// A zlib stream holding `data` in one stored deflate block.
    static func storedZlib(_ data: [UInt8]) -> [UInt8] {
        precondition(data.count < 65536)
        var a: UInt32 = 1, b: UInt32 = 0
        for x in data { a = (a + UInt32(x)) % 65521; b = (b + a) % 65521 }
        let len = data.count
        return [0x78, 0x01, 0x01, UInt8(len & 0xFF), UInt8(len >> 8), UInt8(~len & 0xFF), UInt8((~len >> 8) & 0xFF)]
            + data + be32(Int(b << 16 | a))
    }
}
