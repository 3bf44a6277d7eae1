import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import Report
import XCTest

/// Parses XML with Foundation's `XMLParser` and records every element with its attributes and
/// direct text, so tests check structure rather than substrings.
final class ElementCollector: NSObject, XMLParserDelegate {
    struct Element {
        var name: String
        var attributes: [String: String]
        var text: String

        var classes: Set<String> { Set((attributes["class"] ?? "").split(separator: " ").map(String.init)) }
    }

    private(set) var elements: [Element] = []
    private var stack: [Int] = []
    private(set) var error: Error?

    /// Parses `xml`; returns nil (and records the error) when it is not well-formed.
    static func parse(_ xml: String) -> ElementCollector? {
        let collector = ElementCollector()
        let parser = XMLParser(data: Data(xml.utf8))
        parser.delegate = collector
        guard parser.parse(), collector.error == nil else { return nil }
        return collector
    }

    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
        stack.append(elements.count)
        elements.append(Element(name: elementName, attributes: attributeDict, text: ""))
    }

    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?,
                qualifiedName qName: String?) {
        stack.removeLast()
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if let top = stack.last { elements[top].text += string }
    }

    func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) {
        error = parseError
    }

    /// How many elements carry each `data-series` value.
    var seriesCounts: [String: Int] {
        var counts: [String: Int] = [:]
        for e in elements {
            if let name = e.attributes["data-series"] { counts[name, default: 0] += 1 }
        }
        return counts
    }

    /// The `data-legend` values, in order.
    var legendNames: [String] { elements.compactMap { $0.attributes["data-legend"] } }

    func elements(withClass cls: String) -> [Element] { elements.filter { $0.classes.contains(cls) } }
}

final class SVGTests: XCTestCase {
    // MARK: Fixtures

    static func lineChart() -> LineChart {
        let ks = (1...6).map(Double.init)
        let mean = [0.81, 0.835, 0.84, .nan, 0.852, 0.86]
        return LineChart(
            title: "Accuracy vs mixture size",
            xLabel: "mixture size k (adapters)",
            yLabel: "accuracy (fraction correct)",
            series: [Series(name: "uniform average", xs: ks, ys: mean, colorIndex: 0),
                     Series(name: "a<b & \"c\"", xs: ks, ys: ks.map { 0.78 + 0.01 * $0 }, colorIndex: 1)],
            bands: [Band(name: "uniform ±1 std", xs: ks, lower: mean.map { $0 - 0.02 }, upper: mean.map { $0 + 0.02 },
                         colorIndex: 0),
                    Band(name: "uniform min–max", xs: ks, lower: mean.map { $0 - 0.05 }, upper: mean.map { $0 + 0.04 },
                         colorIndex: 0, opacity: 0.1)],
            integerX: true,
            references: [ReferenceLine(name: "base model", y: 0.79)])
    }

    static func scatterChart() -> ScatterChart {
        ScatterChart(
            title: "Mixture accuracy vs adapter similarity",
            xLabel: "mean pairwise cosine similarity",
            yLabel: "accuracy drop (percentage points)",
            groups: [ScatterGroup(name: "k = 2", xs: [0.1, 0.2, 0.35, 0.5, .infinity], ys: [-1, -2.5, -2.9, -4.1, 3]),
                     ScatterGroup(name: "k = 4", xs: [0.15, 0.3, 0.42, 0.6], ys: [-0.5, -1.8, -2.2, -3.6])],
            fit: true,
            subtitle: ["Pearson r = -0.61 (p = 0.003), Spearman ρ = -0.58 (p = 0.006)"])
    }

    static let tasks = ["sst2", "election-tweets", "imdb", "ag-news", "yelp-polarity", "rotten-tomatoes",
                        "trec", "tweet-eval-irony", "fin-phrasebank", "emotion", "mnli", "qnli", "rte"]

    static func heatmap() -> Heatmap {
        let n = tasks.count
        // Each off-diagonal value 0.5 + 0.4·m/12 (m = 0…12) appears; the diagonal is empty.
        var values = [[Double]](repeating: [Double](repeating: .nan, count: n), count: n)
        for r in 0..<n {
            for c in 0..<n where r != c {
                let m = Double((r * 7 + c * 3) % n)
                values[r][c] = 0.5 + 0.4 * m / Double(n - 1)
            }
        }
        return Heatmap(title: "Pairwise mixture accuracy", rowLabels: tasks, columnLabels: tasks, values: values,
                       digits: 2, rowTitle: "adapter A", columnTitle: "adapter B")
    }

    static func barChart() -> BarChart {
        BarChart(
            title: "Share of mixtures significantly worse than the best member",
            xLabel: "mixture size k",
            yLabel: "share of mixtures (fraction)",
            categories: ["k = 2", "k = 3", "k = 4", "k = 5"],
            series: [BarSeries(name: "uniform", values: [0.1, 0.25, 0.4, 0.55],
                               lower: [0.05, 0.18, 0.31, 0.45], upper: [0.17, 0.33, 0.5, 0.65]),
                     BarSeries(name: "TIES", values: [0.08, .nan, 0.3, 0.41])])
    }

    static func examplePage() -> HTMLPage {
        var page = HTMLPage(title: "AdapterMix — example report")
        page.heading("Accuracy vs mixture size", level: 2)
        page.paragraph("Mean accuracy of weight-averaged mixtures; bands show ±1 std and the min–max range <all seeds>.")
        page.figure(lineChart().svg(), caption: "Figure 1: accuracy vs k.")
        page.heading("Similarity", level: 2)
        page.figure(scatterChart().svg())
        page.heading("Pairwise mixtures", level: 2)
        page.raw(heatmap().svg())
        page.heading("Significance", level: 2)
        page.heading("Per k", level: 3)
        page.figure(barChart().svg())
        var perTask = barChart()
        perTask.title = "Per task (rotated labels)"
        perTask.categories = tasks
        page.figure(perTask.svg())
        page.table(header: ["k", "mixtures", "accuracy", "note"],
                   rows: [["2", "78", "0.812 ± 0.021", "a & b"], ["3", "286", "0.83", "<none>"]],
                   caption: "Table 1: summary")
        page.link(to: "summary.csv", text: "summary.csv (CSV)")
        return page
    }

    static var allCharts: [(name: String, svg: String)] {
        [("line", lineChart().svg()), ("scatter", scatterChart().svg()),
         ("heatmap", heatmap().svg()), ("bar", barChart().svg())]
    }

    // MARK: Ticks and formatting

    func testNiceTicks() {
        XCTAssertEqual(niceTicks(min: 0, max: 1, count: 5), [0, 0.2, 0.4, 0.6, 0.8, 1])
        XCTAssertEqual(niceTicks(min: 0.73, max: 0.91, count: 5), [0.75, 0.8, 0.85, 0.9])
        XCTAssertEqual(niceTicks(min: 0, max: 100, count: 4), [0, 20, 40, 60, 80, 100])
        XCTAssertEqual(niceTicks(min: -1, max: 1, count: 4), [-1, -0.5, 0, 0.5, 1])
        XCTAssertEqual(niceTicks(min: 1, max: 13, count: 6), [2, 4, 6, 8, 10, 12])
        XCTAssertEqual(niceTicks(min: 0, max: 0.001, count: 5), [0, 0.0002, 0.0004, 0.0006, 0.0008, 0.001])
        XCTAssertEqual(niceTicks(min: 0, max: 0.3, count: 3), [0, 0.1, 0.2, 0.3])
        // Degenerate and invalid ranges.
        XCTAssertEqual(niceTicks(min: 5, max: 5, count: 4), [4.6, 4.8, 5, 5.2, 5.4])
        XCTAssertEqual(niceTicks(min: 1, max: 0, count: 5), niceTicks(min: 0, max: 1, count: 5))
        XCTAssertEqual(niceTicks(min: .nan, max: 1, count: 5), [])
    }

    func testNumberFormatting() {
        XCTAssertEqual(formatValue(0.1 + 0.2), "0.3")
        XCTAssertEqual(formatValue(0.812345), "0.8123")
        XCTAssertEqual(formatValue(1234.567), "1235")
        XCTAssertEqual(formatValue(-0.00012346), "-0.0001235")
        XCTAssertEqual(formatValue(0), "0")
        XCTAssertEqual(coord(12.3456), "12.35")
        XCTAssertEqual(coord(-0.001), "0")
        XCTAssertEqual(formatFixed(-0.0001, decimals: 2), "0.00")
        let axis = AxisScale(min: 0.73, max: 0.91, count: 5, extend: true)
        XCTAssertEqual(axis.ticks.map(axis.label), ["0.70", "0.75", "0.80", "0.85", "0.90", "0.95"])
    }

    func testXMLEscape() {
        XCTAssertEqual(xmlEscape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;")
        XCTAssertEqual(xmlEscape("ok\u{1}"), "ok")
    }

    // MARK: Charts

    func testEveryChartIsWellFormedAccessibleSVG() throws {
        for (name, svg) in Self.allCharts {
            let doc = try XCTUnwrap(ElementCollector.parse(svg), "\(name) chart is not well-formed XML")
            let root = try XCTUnwrap(doc.elements.first)
            XCTAssertEqual(root.name, "svg", name)
            XCTAssertEqual(root.attributes["xmlns"], "http://www.w3.org/2000/svg", name)
            XCTAssertEqual(root.attributes["role"], "img", name)
            XCTAssertEqual(root.attributes["width"], "100%", name)
            let viewBox = try XCTUnwrap(root.attributes["viewBox"], name).split(separator: " ").compactMap { Double($0) }
            XCTAssertEqual(viewBox.count, 4, name)
            XCTAssertTrue((600...860).contains(viewBox[2]), "\(name) width \(viewBox[2])")
            XCTAssertEqual(doc.elements[1].name, "title", name)
            XCTAssertFalse(doc.elements[1].text.isEmpty, name)
            XCTAssertNil(svg.range(of: "nan", options: .caseInsensitive), name)
            XCTAssertNil(svg.range(of: "inf", options: .caseInsensitive), name)
            XCTAssertFalse(svg.contains("<script"), name)
            XCTAssertFalse(svg.contains("<image"), name)
            XCTAssertFalse(svg.contains("href"), name)
        }
    }

    func testLineChartSeriesBandsReferencesAndLegend() throws {
        let chart = Self.lineChart()
        let svg = chart.svg()
        let doc = try XCTUnwrap(ElementCollector.parse(svg))
        XCTAssertEqual(doc.seriesCounts, ["uniform average": 1, "a<b & \"c\"": 1, "uniform ±1 std": 1,
                                          "uniform min–max": 1, "base model": 1])
        XCTAssertEqual(doc.legendNames, ["uniform average", "a<b & \"c\"", "uniform ±1 std", "uniform min–max",
                                         "base model"])
        XCTAssertTrue(svg.contains("data-series=\"a&lt;b &amp; &quot;c&quot;\""))
        XCTAssertEqual(doc.elements(withClass: "series").count, 2)
        XCTAssertEqual(doc.elements(withClass: "band").count, 2)

        // The NaN point of "uniform average" is skipped: 5 markers, and the line breaks in two.
        let first = try XCTUnwrap(doc.elements.firstIndex { $0.attributes["data-series"] == "uniform average" })
        let markers = doc.elements[first...].prefix { $0.attributes["data-series"] != "a<b & \"c\"" }
            .filter { $0.classes.contains("marker") }
        XCTAssertEqual(markers.count, 5)
        let line = try XCTUnwrap(doc.elements[first...].first { $0.classes.contains("line") })
        XCTAssertEqual(line.attributes["d"]?.filter { $0 == "M" }.count, 2)

        // Integer x ticks 1…6; y tick labels are nice and share their decimals.
        let labels = doc.elements(withClass: "tick-label").map(\.text)
        XCTAssertEqual(Array(labels.suffix(6)), ["1", "2", "3", "4", "5", "6"])
        XCTAssertTrue(labels.dropLast(6).allSatisfy { $0.count == 4 && $0.hasPrefix("0.") }, "\(labels)")
        let titles = doc.elements(withClass: "axis-title").map(\.text)
        XCTAssertEqual(Set(titles), ["mixture size k (adapters)", "accuracy (fraction correct)"])
    }

    func testFixedYRangeAndEmptyChart() throws {
        var chart = Self.lineChart()
        chart.yRange = 0...1
        let doc = try XCTUnwrap(ElementCollector.parse(chart.svg()))
        let yLabels = doc.elements(withClass: "tick-label").map(\.text).dropLast(6)
        XCTAssertEqual(Array(yLabels), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])

        let empty = LineChart(title: "Nothing yet", xLabel: "x", yLabel: "y",
                              series: [Series(name: "all missing", xs: [1, 2], ys: [.nan, .infinity])])
        let svg = empty.svg()
        XCTAssertNotNil(ElementCollector.parse(svg))
        XCTAssertNil(svg.range(of: "nan", options: .caseInsensitive))
    }

    func testScatterGroupsAndFits() throws {
        let svg = Self.scatterChart().svg()
        let doc = try XCTUnwrap(ElementCollector.parse(svg))
        XCTAssertEqual(doc.seriesCounts, ["k = 2": 1, "k = 4": 1])
        XCTAssertEqual(doc.legendNames, ["k = 2", "k = 4"])
        XCTAssertEqual(doc.elements(withClass: "marker").count, 8 + 2)  // 8 points + 2 legend swatches
        XCTAssertEqual(doc.elements(withClass: "fit").count, 2)
        XCTAssertTrue(doc.elements(withClass: "chart-subtitle").map(\.text).contains {
            $0.hasPrefix("Pearson r = -0.61") && $0.contains("ρ")
        })
    }

    func testLeastSquares() throws {
        let fit = try XCTUnwrap(leastSquaresFit([ChartPoint(x: 0, y: 1), ChartPoint(x: 1, y: 3),
                                              ChartPoint(x: 2, y: 5), ChartPoint(x: .nan, y: 9)]))
        XCTAssertEqual(fit.intercept, 1, accuracy: 1e-12)
        XCTAssertEqual(fit.slope, 2, accuracy: 1e-12)
        XCTAssertNil(leastSquaresFit([ChartPoint(x: 1, y: 1), ChartPoint(x: 1, y: 2)]))
    }

    func testHeatmapCellsAndValues() throws {
        let heatmap = Self.heatmap()
        let n = Self.tasks.count
        let doc = try XCTUnwrap(ElementCollector.parse(heatmap.svg()))
        let cells = doc.elements(withClass: "cell")
        XCTAssertEqual(cells.count, n * n)
        XCTAssertEqual(doc.elements(withClass: "empty").count, n)  // the NaN diagonal
        let texts = doc.elements(withClass: "cell-value")
        XCTAssertEqual(texts.count, n * n - n)
        let expected = (0..<n).flatMap { r in (0..<n).compactMap { c -> String? in
            let v = heatmap.values[r][c]
            return v.isNaN ? nil : String(format: "%.2f", v)
        } }
        XCTAssertEqual(texts.map(\.text), expected)
        XCTAssertEqual(doc.seriesCounts.count, n)
        XCTAssertEqual(doc.elements(withClass: "column-label").map(\.text), Self.tasks)
        XCTAssertEqual(doc.elements(withClass: "row-label").map(\.text), Self.tasks)
        XCTAssertEqual(doc.elements(withClass: "legend-min").first?.text, "0.50")
        XCTAssertEqual(doc.elements(withClass: "legend-max").first?.text, "0.90")
        XCTAssertEqual(doc.legendNames, ["no data"])

        // Text is white on the darkest cells and dark on the lightest.
        let light = try XCTUnwrap(texts.first { $0.text == "0.50" })
        let dark = try XCTUnwrap(texts.first { $0.text == "0.90" })
        XCTAssertEqual(light.attributes["fill"], "#111111")
        XCTAssertEqual(dark.attributes["fill"], "#ffffff")
    }

    func testBarChart() throws {
        let doc = try XCTUnwrap(ElementCollector.parse(Self.barChart().svg()))
        XCTAssertEqual(doc.seriesCounts, ["uniform": 1, "TIES": 1])
        XCTAssertEqual(doc.legendNames, ["uniform", "TIES"])
        XCTAssertEqual(doc.elements(withClass: "bar").count, 7)  // one NaN bar skipped
        XCTAssertEqual(doc.elements(withClass: "error-bar").count, 4)
        let labels = doc.elements(withClass: "tick-label").map(\.text)
        XCTAssertEqual(Array(labels.suffix(4)), ["k = 2", "k = 3", "k = 4", "k = 5"])
        XCTAssertEqual(labels.first, "0.0")

        var rotated = Self.barChart()
        rotated.categories = Self.tasks
        let svg = rotated.svg()
        XCTAssertNotNil(ElementCollector.parse(svg))
        XCTAssertTrue(svg.contains("rotate(-40"))

        // A long first label, rotated, still starts inside the chart.
        let long = "a very long first category name"
        rotated.categories = [long] + (1...9).map { "c\($0)" }
        let doc2 = try XCTUnwrap(ElementCollector.parse(rotated.svg()))
        let label = try XCTUnwrap(doc2.elements(withClass: "tick-label").first { $0.text == long })
        let x = try XCTUnwrap(label.attributes["x"].flatMap(Double.init))
        XCTAssertGreaterThanOrEqual(x - textWidth(long, size: 11) * cos(40 * Double.pi / 180), 0)
    }

    // MARK: Page

    func testHTMLPageIsSelfContained() throws {
        let html = Self.examplePage().render()
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>"))
        XCTAssertTrue(html.contains("<meta charset=\"utf-8\">"))
        XCTAssertTrue(html.contains("font-family: system-ui, sans-serif"))
        let withoutNamespace = html.replacingOccurrences(of: "xmlns=\"http://www.w3.org/2000/svg\"", with: "")
        XCTAssertFalse(withoutNamespace.contains("http://"))
        XCTAssertFalse(withoutNamespace.contains("https://"))
        for banned in ["<script", "<link", "@import", "url(", "<img", "<iframe", "@font-face"] {
            XCTAssertNil(html.range(of: banned, options: .caseInsensitive), banned)
        }
        XCTAssertEqual(html.components(separatedBy: "<svg xmlns=").count - 1, 5)
    }

    func testHTMLPageStructure() {
        let html = Self.examplePage().render()
        // Table of contents: the level-2 headings with in-page anchors, not the level-3 one.
        XCTAssertTrue(html.contains("<li><a href=\"#accuracy-vs-mixture-size\">Accuracy vs mixture size</a></li>"))
        XCTAssertTrue(html.contains("<h2 id=\"significance\">Significance</h2>"))
        XCTAssertTrue(html.contains("<h3 id=\"per-k\">Per k</h3>"))
        XCTAssertFalse(html.contains("href=\"#per-k\""))
        // Escaping and numeric alignment.
        XCTAssertTrue(html.contains("range &lt;all seeds&gt;."))
        XCTAssertTrue(html.contains("<td class=\"num\">0.812 ± 0.021</td><td>a &amp; b</td>"))
        XCTAssertTrue(html.contains("<th class=\"num\">accuracy</th><th>note</th>"))
        XCTAssertTrue(html.contains("<td>&lt;none&gt;</td>"))
        XCTAssertTrue(html.contains("<caption>Table 1: summary</caption>"))
        XCTAssertTrue(html.contains("<a href=\"summary.csv\">summary.csv (CSV)</a>"))
    }

    func testHeadingIDsAndLinksStayLocal() {
        var page = HTMLPage(title: "t")
        page.heading("Results", level: 2)
        page.heading("Results", level: 2)
        page.heading("Contents", level: 2)
        page.heading("ρ!", level: 2)
        page.link(to: "https://example.org/x.csv", text: "bad")
        page.link(to: "/etc/data sets/a.csv", text: "abs")
        let html = page.render()
        XCTAssertTrue(html.contains("id=\"results\""))
        XCTAssertTrue(html.contains("id=\"results-2\""))
        XCTAssertTrue(html.contains("id=\"contents-2\""))
        XCTAssertTrue(html.contains("id=\"section\""))
        XCTAssertTrue(html.contains("href=\"https%3A//example.org/x.csv\""))
        XCTAssertTrue(html.contains("href=\"etc/data%20sets/a.csv\""))
        XCTAssertFalse(html.contains("https://"))
    }

    func testNumericCells() {
        for cell in ["0.812", "-3", "12.5%", "1,024", "1e-05", "0.81 ± 0.02", "−0.4", ".5"] {
            XCTAssertTrue(isNumericLooking(cell), cell)
        }
        for cell in ["", "n/a", "sst2", "k = 2", "1-2", "e5", "2e", "±"] {
            XCTAssertFalse(isNumericLooking(cell), cell)
        }
    }

    /// Writes the example page to `$SVG_EXAMPLE_OUT` (e.g. /tmp/svg-example.html) when set.
    func testWriteExamplePageWhenAsked() throws {
        guard let path = ProcessInfo.processInfo.environment["SVG_EXAMPLE_OUT"], !path.isEmpty else { return }
        try Self.examplePage().render().write(toFile: path, atomically: true, encoding: .utf8)
    }
}
