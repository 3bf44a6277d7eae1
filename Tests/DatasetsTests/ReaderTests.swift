import Datasets
import Foundation
import XCTest

/// The generic record readers on small files written by the tests.
final class ReaderTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("adaptermix-readers-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    func write(_ name: String, _ text: String) throws -> URL {
        try write(name, bytes: Array(text.utf8))
    }

    func write(_ name: String, bytes: [UInt8]) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// Asserts that `body` throws a DatasetError whose description names the file and `line`, and contains `contains`.
    func assertError(_ body: @autoclosure () throws -> Any, file name: String, line: Int, contains: [String] = [],
                     file: StaticString = #filePath, sourceLine: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: sourceLine) { error in
            guard let e = error as? DatasetError else {
                return XCTFail("not a DatasetError: \(error)", file: file, line: sourceLine)
            }
            let text = e.description
            XCTAssertTrue(text.contains(name), "no file name in: \(text)", file: file, line: sourceLine)
            XCTAssertEqual(e.line, line, text, file: file, line: sourceLine)
            XCTAssertTrue(text.contains("\(name):\(line):"), "no \(name):\(line): in: \(text)", file: file, line: sourceLine)
            for c in contains { XCTAssertTrue(text.contains(c), "no \"\(c)\" in: \(text)", file: file, line: sourceLine) }
        }
    }

    // MARK: - formats

    func testErrorNamesFileAndLine() {
        XCTAssertEqual("\(DatasetError(file: "a.csv", line: 3, reason: "missing column \"text\"", hint: "check the header"))",
                       "a.csv:3: missing column \"text\" — check the header")
    }

    func testCSVQuotingNewlinesAndCRLF() throws {
        let url = try write("reviews.csv",
                            "label,text,extra\r\n" +
                            "pos,\"Good, really \"\"good\"\"\",x\r\n" +
                            "neg,\"two\r\nlines\",\"\"\r\n" +
                            "\r\n" +
                            "pos,plain text with a \" inside,y\r\n" +
                            "neg,last without line end,z")
        let xs = try loadRecords(url: url, format: .csv(), mapping: ColumnMapping(text: "text", label: "label"))
        XCTAssertEqual(xs, [
            Example(id: "reviews.csv:2", text: "Good, really \"good\"", label: "pos"),
            Example(id: "reviews.csv:3", text: "two\r\nlines", label: "neg"),
            Example(id: "reviews.csv:6", text: "plain text with a \" inside", label: "pos"),
            Example(id: "reviews.csv:7", text: "last without line end", label: "neg"),
        ])
    }

    func testCSVBareCRCountsAsLineAndBOMIsSkipped() throws {
        let url = try write("mac.csv", bytes: [0xEF, 0xBB, 0xBF] + Array("text,label\r\"a\rb\",x\rc,y\n".utf8))
        let xs = try loadRecords(url: url, format: .csv(), mapping: ColumnMapping(text: "text", label: "label"))
        XCTAssertEqual(xs.map(\.id), ["mac.csv:2", "mac.csv:4"])
        XCTAssertEqual(xs.map(\.text), ["a\rb", "c"])
    }

    func testTSVWithoutQuotingKeepsQuotes() throws {
        let url = try write("plain.tsv", "text\tlabel\n\"quoted\" start\tA\nsecond  \tB\n")
        let xs = try loadRecords(url: url, format: .tsv(), mapping: ColumnMapping(text: "text", label: "label"))
        XCTAssertEqual(xs.map(\.text), ["\"quoted\" start", "second"])
        XCTAssertEqual(xs.map(\.label), ["A", "B"])
    }

    func testTSVWithQuotingOption() throws {
        let url = try write("quoted.tsv", "A\t\"has\ttab and \"\"quote\"\"\"\nB\tplain\n")
        let xs = try loadRecords(url: url, format: .tsv(header: false, quoting: true), mapping: ColumnMapping(text: "1", label: "0"))
        XCTAssertEqual(xs, [Example(id: "quoted.tsv:1", text: "has\ttab and \"quote\"", label: "A"),
                            Example(id: "quoted.tsv:2", text: "plain", label: "B")])
    }

    func testHeaderlessWithIndices() throws {
        let url = try write("noheader.csv", "1,first,x\n0,second,y\n")
        let xs = try loadRecords(url: url, format: .csv(header: false), mapping: ColumnMapping(text: "1", textPair: "2", label: "0"))
        XCTAssertEqual(xs, [Example(id: "noheader.csv:1", text: "first", textPair: "x", label: "1"),
                            Example(id: "noheader.csv:2", text: "second", textPair: "y", label: "0")])
        // Names cannot be used without a header; the message says to use indices.
        XCTAssertThrowsError(try loadRecords(url: url, format: .csv(header: false), mapping: ColumnMapping(text: "text", label: "0"))) { e in
            XCTAssertTrue("\(e)".contains("noheader.csv") && "\(e)".contains("0-based indices"), "\(e)")
        }
        XCTAssertThrowsError(try loadRecords(url: url, format: .csv(header: false), mapping: ColumnMapping(text: "3", label: "0"))) { e in
            XCTAssertTrue("\(e)".contains("column 3") && "\(e)".contains("3 columns"), "\(e)")
        }
    }

    func testGLUETSVByNameAndIndex() throws {
        let url = try write("dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA man plays.\tSomeone plays.\tentailment\n1\t\"Quoted\tNo.\tneutral\n")
        let byName = try loadRecords(url: url, format: .glueTSV, mapping: ColumnMapping(text: "sentence1", textPair: "sentence2", label: "label"))
        XCTAssertEqual(byName, [
            Example(id: "dev.tsv:2", text: "A man plays.", textPair: "Someone plays.", label: "entailment"),
            Example(id: "dev.tsv:3", text: "\"Quoted", textPair: "No.", label: "neutral"),
        ])
        let byIndex = try loadRecords(url: url, format: .glueTSV, mapping: ColumnMapping(text: "1", textPair: "2", label: "3"))
        XCTAssertEqual(byIndex, byName)
    }

    func testJSONLines() throws {
        let url = try write("qa.jsonl", """
            {"question": "is it \\"so\\"?", "passage": "caf\\u00e9 \\ud83d\\ude00", "label": true, "idx": 7}

            {"idx": 8, "label": false, "question": "  no  ", "passage": "tab\\there"}
            {"question": "n", "passage": "p", "label": 3, "extra": [1, {"a": null}]}

            """)
        let xs = try loadRecords(url: url, format: .jsonLines, mapping: ColumnMapping(text: "question", textPair: "passage", label: "label"))
        XCTAssertEqual(xs, [
            Example(id: "qa.jsonl:1", text: "is it \"so\"?", textPair: "café 😀", label: "true"),
            Example(id: "qa.jsonl:3", text: "no", textPair: "tab\there", label: "false"),
            Example(id: "qa.jsonl:4", text: "n", textPair: "p", label: "3"),
        ])
        let table = try readRecordTable(url: url, format: .jsonLines)
        XCTAssertEqual(table.columns, ["question", "passage", "label", "idx", "extra"])
        XCTAssertEqual(table.rows[2].values[4], "[1,{\"a\":null}]")
    }

    func testJSONLinesMissingLabelIsErrorOrCountedSkip() throws {
        let url = try write("part.jsonl", "{\"q\": \"a\", \"label\": \"x\"}\n{\"q\": \"b\"}\n{\"q\": \"c\", \"label\": null}\n")
        assertError(try loadRecords(url: url, format: .jsonLines, mapping: ColumnMapping(text: "q", label: "label")),
                    file: "part.jsonl", line: 2, contains: ["missing label"])
        let load = try loadRecords(url: url, format: .jsonLines, mapping: ColumnMapping(text: "q", label: "label"),
                                   options: RecordOptions(skipping: [.missingLabel]))
        XCTAssertEqual(load.examples.map(\.text), ["a"])
        XCTAssertEqual(load.skipped, ["missing label": 2])
    }

    func testOrangeTab() throws {
        let url = try write("corpus.tab",
                            "Category\tText\tScore\r\n" +
                            "d\tstring\tcontinuous\r\n" +
                            "class\tmeta include=True\t\r\n" +
                            "\r\n" +
                            "sport\t\"He said \"\"go\"\"\"\t1.5\r\n" +
                            "tech\tchips\t2\r\n" +
                            "?\tno class\t3\r\n")
        let load = try loadRecords(url: url, format: .orangeTab, mapping: .orangeClass(text: "Text"),
                                   options: RecordOptions(skipping: [.missingLabel]))
        XCTAssertEqual(load.examples, [Example(id: "corpus.tab:5", text: "He said \"go\"", label: "sport"),
                                       Example(id: "corpus.tab:6", text: "chips", label: "tech")])
        XCTAssertEqual(load.skipped, ["missing label": 1])
        // An explicit label column works too; "?" is still a missing label there.
        assertError(try loadRecords(url: url, format: .orangeTab, mapping: ColumnMapping(text: "Text", label: "Category")),
                    file: "corpus.tab", line: 7, contains: ["missing label"])
        let table = try readRecordTable(url: url, format: .orangeTab)
        XCTAssertEqual(table.columns, ["Category", "Text", "Score"])
        XCTAssertEqual(table.classColumn, 0)
    }

    func testOrangeTabEmptyFlagsRow() throws {
        let url = try write("noflags.tab", "label\ttext\nd\ts\n\nA\tone\n")
        let xs = try loadRecords(url: url, format: .orangeTab, mapping: ColumnMapping(text: "text", label: "label"))
        XCTAssertEqual(xs, [Example(id: "noflags.tab:4", text: "one", label: "A")])
        XCTAssertThrowsError(try loadRecords(url: url, format: .orangeTab, mapping: .orangeClass(text: "text"))) { e in
            XCTAssertTrue("\(e)".contains("noflags.tab") && "\(e)".contains("class"), "\(e)")
        }
    }

    // MARK: - encodings

    func testLatin1AndWindows1252() throws {
        // "café" in Latin-1, and curly quotes (0x93 0x94) in Windows-1252.
        let latin = try write("latin.csv", bytes: Array("text,label\n".utf8) + [0x63, 0x61, 0x66, 0xE9] + Array(",x\n".utf8))
        XCTAssertEqual(try loadRecords(url: latin, format: .csv(), mapping: ColumnMapping(text: "text", label: "label"), encoding: .latin1).map(\.text),
                       ["café"])
        let cp = try write("cp.csv", bytes: Array("text,label\n".utf8) + [0x93, 0x68, 0x69, 0x94, 0x80] + Array(",x\n".utf8))
        XCTAssertEqual(try loadRecords(url: cp, format: .csv(), mapping: ColumnMapping(text: "text", label: "label"), encoding: .windows1252).map(\.text),
                       ["\u{201C}hi\u{201D}€"])
        // UTF-8 with a declared fallback: each field that is not UTF-8 is read as Latin-1.
        let mixed = try write("mixed.csv", bytes: Array("text,label\ncafé,x\n".utf8) + [0x63, 0x61, 0x66, 0xE9] + Array(",y\n".utf8))
        XCTAssertEqual(try loadRecords(url: mixed, format: .csv(), mapping: ColumnMapping(text: "text", label: "label"),
                                       encoding: .utf8(fallback: .latin1)).map(\.text), ["café", "café"])
        let jl = try write("latin.jsonl", bytes: Array("{\"t\": \"".utf8) + [0xE9, 0x74, 0xE9] + Array("\", \"l\": \"a\"}\n".utf8))
        XCTAssertEqual(try loadRecords(url: jl, format: .jsonLines, mapping: ColumnMapping(text: "t", label: "l"), encoding: .latin1).map(\.text),
                       ["été"])
        XCTAssertEqual(Charset(name: "ISO-8859-1"), .latin1)
        XCTAssertEqual(Charset(name: "cp1252"), .windows1252)
        XCTAssertEqual(Charset(name: "UTF8"), .utf8)
    }

    func testWrongEncodingIsAnErrorWithLine() throws {
        // The Latin-1 byte is on line 4, inside a record that starts on line 3.
        let url = try write("wrong.csv", bytes: Array("text,label\nok,x\n\"multi\nline ".utf8) + [0xE9] + Array("\",y\n".utf8))
        assertError(try loadRecords(url: url, format: .csv(), mapping: ColumnMapping(text: "text", label: "label")),
                    file: "wrong.csv", line: 4, contains: ["invalid UTF-8", "0xE9", "latin-1"])
        let jl = try write("wrong.jsonl", bytes: Array("{\"t\": \"a\", \"l\": \"x\"}\n{\"t\": \"".utf8) + [0xE9] + Array("\", \"l\": \"x\"}\n".utf8))
        assertError(try loadRecords(url: jl, format: .jsonLines, mapping: ColumnMapping(text: "t", label: "l")),
                    file: "wrong.jsonl", line: 2, contains: ["invalid UTF-8"])
    }

    // MARK: - bad input

    func testMissingColumnListsColumns() throws {
        let url = try write("cols.csv", "sentence,category\nhello,a\n")
        assertError(try loadRecords(url: url, format: .csv(), mapping: ColumnMapping(text: "text", label: "category")),
                    file: "cols.csv", line: 1, contains: ["missing text column \"text\"", "\"sentence\"", "\"category\""])
        let jl = try write("cols.jsonl", "{\"sentence\": \"a\", \"category\": \"b\"}\n")
        XCTAssertThrowsError(try loadRecords(url: jl, format: .jsonLines, mapping: ColumnMapping(text: "text", label: "category"))) { e in
            XCTAssertTrue("\(e)".contains("cols.jsonl") && "\(e)".contains("\"sentence\""), "\(e)")
        }
    }

    func testEmptyTextIsErrorOrCountedSkip() throws {
        let url = try write("empty.csv", "text,label\nfine,a\n\"  \",b\n,c\n")
        assertError(try loadRecords(url: url, format: .csv(), mapping: ColumnMapping(text: "text", label: "label")),
                    file: "empty.csv", line: 3, contains: ["empty text"])
        let load = try loadRecords(url: url, format: .csv(), mapping: ColumnMapping(text: "text", label: "label"),
                                   options: RecordOptions(skipping: [.emptyText]))
        XCTAssertEqual(load.examples.map(\.id), ["empty.csv:2"])
        XCTAssertEqual(load.skipped, ["empty text": 2])
        let pair = try write("pair.jsonl", "{\"a\": \"x\", \"b\": \"\", \"l\": \"y\"}\n")
        assertError(try loadRecords(url: pair, format: .jsonLines, mapping: ColumnMapping(text: "a", textPair: "b", label: "l")),
                    file: "pair.jsonl", line: 1, contains: ["empty text pair"])
    }

    func testMissingLabelInCSV() throws {
        let url = try write("nolabel.csv", "text,label\nfine,a\nhere,\n")
        assertError(try loadRecords(url: url, format: .csv(), mapping: ColumnMapping(text: "text", label: "label")),
                    file: "nolabel.csv", line: 3, contains: ["missing label"])
    }

    func testUnknownLabelNamesIt() throws {
        let url = try write("labels.csv", "text,label\na,pos\nb,neg\nc,maybe\n")
        assertError(try loadRecords(url: url, format: .csv(), mapping: ColumnMapping(text: "text", label: "label"),
                                    options: RecordOptions(allowedLabels: ["pos", "neg"])),
                    file: "labels.csv", line: 4, contains: ["unknown label \"maybe\"", "neg, pos"])
        let load = try loadRecords(url: url, format: .csv(), mapping: ColumnMapping(text: "text", label: "label"),
                                   options: RecordOptions(allowedLabels: ["pos", "neg"], skipping: [.unknownLabel]))
        XCTAssertEqual(load.examples.count, 2)
        XCTAssertEqual(load.skipped, ["unknown label": 1])
        // Rows that are not examples are dropped under their own, counted, reason.
        let dropped = try loadRecords(url: url, format: .csv(), mapping: ColumnMapping(text: "text", label: "label"),
                                      options: RecordOptions(allowedLabels: ["pos", "neg"], dropLabels: ["maybe": "undecided"]))
        XCTAssertEqual(dropped.skipped, ["undecided": 1])
    }

    func testWrongFieldCount() throws {
        let url = try write("fields.csv", "text,label\na,x\nb,y,extra\n")
        assertError(try loadRecords(url: url, format: .csv(), mapping: ColumnMapping(text: "text", label: "label")),
                    file: "fields.csv", line: 3, contains: ["wrong number of fields", "3", "2"])
        let tsv = try write("fields.tsv", "x\ta\nb\n")
        assertError(try loadRecords(url: tsv, format: .tsv(header: false), mapping: ColumnMapping(text: "1", label: "0")),
                    file: "fields.tsv", line: 2, contains: ["wrong number of fields"])
        let tab = try write("fields.tab", "c\tt\nd\ts\nclass\t\na\tb\tc\n")
        assertError(try loadRecords(url: tab, format: .orangeTab, mapping: .orangeClass(text: "t")),
                    file: "fields.tab", line: 4, contains: ["wrong number of fields"])
    }

    func testUnterminatedQuote() throws {
        let url = try write("open.csv", "text,label\na,x\n\"never closed,y\nmore,z\n")
        assertError(try loadRecords(url: url, format: .csv(), mapping: ColumnMapping(text: "text", label: "label")),
                    file: "open.csv", line: 3, contains: ["unterminated quote"])
    }

    func testTextAfterClosingQuote() throws {
        let url = try write("after.csv", "text,label\n\"quoted\"tail,x\n")
        assertError(try loadRecords(url: url, format: .csv(), mapping: ColumnMapping(text: "text", label: "label")),
                    file: "after.csv", line: 2, contains: ["closing quote"])
    }

    func testInvalidJSONLine() throws {
        let url = try write("bad.jsonl", "{\"t\": \"a\", \"l\": \"x\"}\n{\"t\": \"b\", \"l\": }\n")
        assertError(try loadRecords(url: url, format: .jsonLines, mapping: ColumnMapping(text: "t", label: "l")),
                    file: "bad.jsonl", line: 2, contains: ["invalid JSON"])
        let notObject = try write("array.jsonl", "[1, 2]\n")
        assertError(try loadRecords(url: notObject, format: .jsonLines, mapping: ColumnMapping(text: "t", label: "l")),
                    file: "array.jsonl", line: 1, contains: ["not an object"])
        let truncated = try write("cut.jsonl", "{\"t\": \"unterminated\n")
        assertError(try loadRecords(url: truncated, format: .jsonLines, mapping: ColumnMapping(text: "t", label: "l")),
                    file: "cut.jsonl", line: 1, contains: ["invalid JSON"])
    }

    func testLabelTransformErrorNamesLine() throws {
        let url = try write("scores.tsv", "1\t0.9\tgood\n2\tn/a\tbad\n")
        assertError(try loadRecords(url: url, format: .tsv(header: false), mapping: ColumnMapping(text: "2", label: "1"),
                                    options: RecordOptions(labelTransform: { s in
                                        guard let x = Double(s) else { throw RecordValueError("score \"\(s)\" is not a number") }
                                        return x > 0.5 ? "pos" : "neg"
                                    })),
                    file: "scores.tsv", line: 2, contains: ["n/a"])
    }

    func testMissingFileIsDatasetError() {
        let url = dir.appendingPathComponent("absent.csv")
        XCTAssertThrowsError(try loadRecords(url: url, format: .csv(), mapping: ColumnMapping(text: "t", label: "l"))) { e in
            XCTAssertTrue("\(e)".contains("absent.csv") && "\(e)".contains("no such file"), "\(e)")
        }
    }

    // MARK: - clean-ups

    func testHTMLCleanup() {
        XCTAssertEqual(HTMLText.decodeEntities("a &amp; b &lt;#&gt; &eacute;t&eacute; &#8217; &#x2019; &unknown; & alone &#0;"),
                       "a & b <#> été \u{2019} \u{2019} &unknown; & alone &#0;")
        XCTAssertEqual(HTMLText.stripMarkup("one<br />two<BR>three<a href=\"http://x\">link</a> <span class=\"s\">s</span> I <3 it <#>"),
                       "one\ntwo\nthreelink s I <3 it <#>")
        XCTAssertEqual(HTMLText.decodeEntities("no entities"), "no entities")
    }

    func testFormatNames() {
        XCTAssertEqual(RecordFormat(name: "csv"), .csv())
        XCTAssertEqual(RecordFormat(name: "tsv-noheader"), .tsv(header: false))
        XCTAssertEqual(RecordFormat(name: "jsonl"), .jsonLines)
        XCTAssertEqual(RecordFormat(name: "glue-tsv"), .glueTSV)
        XCTAssertEqual(RecordFormat(name: "orange-tab"), .orangeTab)
        XCTAssertNil(RecordFormat(name: "xlsx"))
    }

    func testLargeFileParsesQuickly() throws {
        // 20,000 quoted CSV rows with embedded newlines: a guard against quadratic parsing.
        var s = "text,label\n"
        for i in 0..<20_000 { s += "\"row \(i), with \"\"quotes\"\"\nand a line break\",\(i % 3)\n" }
        let url = try write("big.csv", s)
        let start = Date()
        let xs = try loadRecords(url: url, format: .csv(), mapping: ColumnMapping(text: "text", label: "label"))
        XCTAssertEqual(xs.count, 20_000)
        XCTAssertEqual(xs.last?.id, "big.csv:40000")  // header on line 1, row i on line 2 + 2i
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }
}
