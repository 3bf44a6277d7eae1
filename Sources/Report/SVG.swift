// Inline-SVG charts for the study report: line charts with bands, scatter plots with fits,
// heatmaps and grouped bar charts. Every chart is a self-contained `<svg>` string (no scripts,
// fonts, images or links), sized by a viewBox so it scales to the page width.
//
// Conventions shared by all charts:
// - The root `<svg>` has `role="img"` and a `<title>` with the chart title (its accessible name).
// - Every data element (a series, band, scatter group, bar series, reference line, heatmap row)
//   is a `<g>` or `<path>` with a `class` and `data-series="NAME"` (XML-escaped), so tests and
//   readers can find it; legend entries carry `data-legend="NAME"` instead.
// - Non-finite values (NaN, ±inf) are skipped and leave a gap; they are never printed.
// - Numbers are printed with at most four significant digits (tick labels: the decimals their
//   step needs), coordinates with at most two decimals.

import Foundation

// MARK: - Escaping and number formatting

/// Escapes `&`, `<`, `>`, `"` and `'` so the text is safe in XML/HTML content and attributes.
///
/// Control characters that XML 1.0 forbids (U+0000–U+001F except tab, newline and carriage
/// return) are dropped, so any series name or label still yields well-formed SVG.
public func xmlEscape(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for scalar in s.unicodeScalars {
        switch scalar {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
        default:
            if scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF { continue }
            out.unicodeScalars.append(scalar)
        }
    }
    return out
}

/// Formats `v` with a fixed number of decimals, printing negative zero as zero.
func formatFixed(_ v: Double, decimals: Int) -> String {
    let text = String(format: "%.*f", max(0, min(decimals, 12)), v)
    if text.hasPrefix("-"), text.dropFirst().allSatisfy({ $0 == "0" || $0 == "." }) {
        return String(text.dropFirst())
    }
    return text
}

/// Removes trailing zeros (and a trailing decimal point) from a fixed-point number.
func trimZeros(_ text: String) -> String {
    guard text.contains(".") else { return text }
    var t = Substring(text)
    while t.last == "0" { t = t.dropLast() }
    if t.last == "." { t = t.dropLast() }
    return t.isEmpty || t == "-" ? "0" : String(t)
}

/// Formats a value for labels and tooltips with at most four significant digits.
///
/// Values from 1e-4 up to 1e9 are printed in fixed notation (`0.3`, `0.8125`, `1235`); smaller
/// or larger magnitudes use scientific notation (`1.235e-05`). Callers skip non-finite values.
func formatValue(_ v: Double) -> String {
    guard v.isFinite else { return "" }
    if v == 0 { return "0" }
    let magnitude = abs(v)
    if magnitude >= 1e-4 && magnitude < 1e9 {
        let exponent = Int(floor(log10(magnitude)))
        return trimZeros(formatFixed(v, decimals: max(0, 3 - exponent)))
    }
    return String(format: "%.3e", v)
}

/// Formats an SVG coordinate with at most two decimals.
func coord(_ v: Double) -> String {
    trimZeros(formatFixed(v.isFinite ? v : 0, decimals: 2))
}

// MARK: - Nice ticks

/// A tick step `mantissa × 10^exponent` with mantissa 1, 2 or 5.
struct TickStep: Equatable {
    var mantissa: Int
    var exponent: Int

    /// The tick value `k × step`, computed so that decimal steps give the nearest double
    /// (0.6 is `6 / 10`, not `3 × 0.2`).
    func value(_ k: Int) -> Double {
        var power = 1.0
        for _ in 0..<abs(exponent) { power *= 10 }
        let n = Double(k) * Double(mantissa)
        return exponent >= 0 ? n * power : n / power
    }

    var size: Double { value(1) }
    /// Decimals needed to print every multiple of this step exactly.
    var decimals: Int { max(0, -exponent) }
}

/// The 1/2/5×10ⁿ step closest to `range / count` (Heckbert's "nice numbers").
func niceStep(range: Double, count: Int) -> TickStep {
    let rough = range / Double(max(1, count))
    guard rough.isFinite, rough > 0 else { return TickStep(mantissa: 1, exponent: 0) }
    var exponent = Int(floor(log10(rough)))
    let fraction = rough / TickStep(mantissa: 1, exponent: exponent).size
    let mantissa: Int
    if fraction < 1.5 {
        mantissa = 1
    } else if fraction < 3 {
        mantissa = 2
    } else if fraction < 7 {
        mantissa = 5
    } else {
        mantissa = 1
        exponent += 1
    }
    return TickStep(mantissa: mantissa, exponent: exponent)
}

/// Widens an empty or inverted range so ticks can be placed on it.
func widenDegenerate(_ lo: Double, _ hi: Double) -> (Double, Double) {
    var (lo, hi) = (Swift.min(lo, hi), Swift.max(lo, hi))
    if hi - lo <= abs(lo) * 1e-12 {
        let d = lo == 0 ? 1 : abs(lo) * 0.1
        lo -= d
        hi += d
    }
    return (lo, hi)
}

/// The multiples of `step` inside `[lo, hi]` (with a small tolerance at both ends).
func multiples(of step: TickStep, from lo: Double, to hi: Double) -> [Double] {
    let s = step.size
    let first = (lo / s - 1e-9).rounded(.up)
    let last = (hi / s + 1e-9).rounded(.down)
    guard first.isFinite, last.isFinite, abs(first) < 1e12, abs(last) < 1e12, last - first < 10_000
    else { return [] }
    return (Int(first)...Swift.max(Int(first), Int(last))).compactMap { k in
        Double(k) <= last ? step.value(k) : nil
    }
}

/// "Nice" tick values (steps of 1, 2 or 5 × 10ⁿ) inside `[min, max]`, about `count` intervals.
///
/// The step is the 1/2/5×10ⁿ value nearest to `(max − min) / count`; the ticks are its
/// multiples that lie within the range, computed so decimal ticks are the nearest doubles
/// (so `0.6`, never `0.6000000000000001`). Examples: `0…1, count 5` → 0, 0.2, 0.4, 0.6, 0.8, 1;
/// `0.73…0.91, count 5` → 0.75, 0.8, 0.85, 0.9. An empty range is widened around its value;
/// a non-finite bound gives no ticks.
public func niceTicks(min: Double, max: Double, count: Int) -> [Double] {
    guard min.isFinite, max.isFinite else { return [] }
    let (lo, hi) = widenDegenerate(min, max)
    return multiples(of: niceStep(range: hi - lo, count: count), from: lo, to: hi)
}

/// An axis: its domain, tick values and the decimals for tick labels.
struct AxisScale {
    var lo: Double
    var hi: Double
    var ticks: [Double]
    var decimals: Int

    /// A scale for data in `[min, max]`.
    ///
    /// - `extend`: widen the domain to the enclosing ticks (otherwise it stays `[min, max]`).
    /// - `integer`: steps of at least 1, and the domain padded by half a step (mixture sizes).
    init(min: Double, max: Double, count: Int, extend: Bool, integer: Bool = false) {
        var (lo, hi) = (min.isFinite && max.isFinite) ? widenDegenerate(min, max) : (0, 1)
        var step = niceStep(range: hi - lo, count: count)
        if integer && step.exponent < 0 { step = TickStep(mantissa: 1, exponent: 0) }
        if integer {
            lo -= step.size / 2
            hi += step.size / 2
        } else if extend {
            let s = step.size
            lo = step.value(Int((lo / s + 1e-9).rounded(.down)))
            hi = step.value(Int((hi / s - 1e-9).rounded(.up)))
        }
        self.lo = lo
        self.hi = hi
        self.ticks = multiples(of: step, from: lo, to: hi)
        self.decimals = step.decimals
    }

    func label(_ v: Double) -> String { formatFixed(v, decimals: decimals) }
}

// MARK: - Palette, markers, text

/// The Okabe–Ito colour-blind-safe palette, ordered so the first colours contrast best on white
/// (yellow last).
let okabeIto = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]

/// Palette colour `i`, cycling.
func paletteColor(_ i: Int) -> String {
    okabeIto[((i % okabeIto.count) + okabeIto.count) % okabeIto.count]
}

/// Marker shapes, cycled with the colours so series stay distinct in greyscale.
enum MarkerShape: CaseIterable {
    case circle, square, triangle, diamond

    static func at(_ i: Int) -> MarkerShape {
        allCases[((i % allCases.count) + allCases.count) % allCases.count]
    }
}

/// One marker of the given shape centred at (`x`, `y`), with an optional tooltip.
func markerSVG(_ shape: MarkerShape, x: Double, y: Double, r: Double, color: String,
               tooltip: String? = nil, opacity: Double = 1) -> String {
    let paint = "fill=\"\(color)\" stroke=\"#ffffff\" stroke-width=\"1\""
        + (opacity < 1 ? " fill-opacity=\"\(coord(opacity))\"" : "")
    let tip = tooltip.map { "<title>\(xmlEscape($0))</title>" } ?? ""
    let close = tip.isEmpty ? "/>" : ">\(tip)"
    switch shape {
    case .circle:
        return "<circle class=\"marker\" cx=\"\(coord(x))\" cy=\"\(coord(y))\" r=\"\(coord(r))\" \(paint)\(close)"
            + (tip.isEmpty ? "" : "</circle>")
    case .square:
        let s = r * 1.75
        return "<rect class=\"marker\" x=\"\(coord(x - s / 2))\" y=\"\(coord(y - s / 2))\" width=\"\(coord(s))\" "
            + "height=\"\(coord(s))\" \(paint)\(close)" + (tip.isEmpty ? "" : "</rect>")
    case .triangle:
        let h = r * 1.25
        let d = "M\(coord(x)) \(coord(y - h))L\(coord(x + h)) \(coord(y + h * 0.8))L\(coord(x - h)) \(coord(y + h * 0.8))Z"
        return "<path class=\"marker\" d=\"\(d)\" \(paint)\(close)" + (tip.isEmpty ? "" : "</path>")
    case .diamond:
        let h = r * 1.35
        let d = "M\(coord(x)) \(coord(y - h))L\(coord(x + h)) \(coord(y))L\(coord(x)) \(coord(y + h))L\(coord(x - h)) \(coord(y))Z"
        return "<path class=\"marker\" d=\"\(d)\" \(paint)\(close)" + (tip.isEmpty ? "" : "</path>")
    }
}

/// Rough rendered width of `text` in the system sans-serif font (0.6 em per character).
func textWidth(_ text: String, size: Double) -> Double {
    Double(text.count) * size * 0.6
}

/// A `<text>` element; `text` is escaped here.
func textSVG(_ text: String, x: Double, y: Double, size: Double = 12, anchor: String = "start",
             fill: String = "#222222", weight: String? = nil, rotate: Double? = nil,
             className: String? = nil, dy: String? = nil) -> String {
    var attrs = "x=\"\(coord(x))\" y=\"\(coord(y))\" font-size=\"\(coord(size))\" fill=\"\(fill)\""
    if anchor != "start" { attrs += " text-anchor=\"\(anchor)\"" }
    if let weight { attrs += " font-weight=\"\(weight)\"" }
    if let dy { attrs += " dy=\"\(dy)\"" }
    if let rotate { attrs += " transform=\"rotate(\(coord(rotate)) \(coord(x)) \(coord(y)))\"" }
    if let className { attrs = "class=\"\(className)\" " + attrs }
    return "<text \(attrs)>\(xmlEscape(text))</text>"
}

// MARK: - Chart scaffolding

/// Width of line, scatter and bar charts in viewBox units (CSS pixels at full size).
let chartWidth = 800.0

/// Wraps chart content in the root `<svg>`: viewBox, `width="100%"` capped at the natural
/// width, `role="img"`, `<title>` and an optional `<desc>`.
func svgDocument(kind: String, width: Double, height: Double, title: String,
                 description: [String], body: [String]) -> String {
    var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart \(kind)\" "
        + "viewBox=\"0 0 \(coord(width)) \(coord(height))\" width=\"100%\" "
        + "style=\"max-width:\(coord(width))px;height:auto\" role=\"img\" "
        + "font-family=\"system-ui, sans-serif\">\n"
    out += "<title>\(xmlEscape(title))</title>\n"
    if !description.isEmpty {
        out += "<desc>\(xmlEscape(description.joined(separator: "\n")))</desc>\n"
    }
    out += "<rect class=\"background\" x=\"0\" y=\"0\" width=\"\(coord(width))\" height=\"\(coord(height))\" fill=\"#ffffff\"/>\n"
    for part in body { out += part + "\n" }
    out += "</svg>"
    return out
}

/// The title and subtitle lines at the top of a chart; returns the SVG and the height used.
func headerSVG(title: String, subtitle: [String], x: Double) -> (svg: String, height: Double) {
    var parts = [textSVG(title, x: x, y: 24, size: 16, weight: "600", className: "chart-title")]
    for (i, line) in subtitle.enumerated() {
        parts.append(textSVG(line, x: x, y: 44 + Double(i) * 17, size: 12.5, fill: "#444444",
                             className: "chart-subtitle"))
    }
    return (parts.joined(separator: "\n"), 34 + Double(subtitle.count) * 17)
}

/// What a legend entry shows next to its name.
enum LegendSwatch {
    case line(color: String, dash: String?, marker: MarkerShape?)
    case band(color: String, opacity: Double)
    case marker(color: String, shape: MarkerShape)
    case bar(color: String)
}

/// A named legend entry.
struct LegendEntry {
    var name: String
    var swatch: LegendSwatch
}

/// Lays legend entries out in rows that wrap at `maxWidth`; returns the SVG and its height.
func legendSVG(_ entries: [LegendEntry], left: Double, top: Double,
               maxWidth: Double) -> (svg: String, height: Double) {
    guard !entries.isEmpty else { return ("", 0) }
    let rowHeight = 20.0, swatchWidth = 24.0, fontSize = 12.0
    var parts = ["<g class=\"legend\">"]
    var x = left, y = top + 10
    for entry in entries {
        let width = swatchWidth + 6 + textWidth(entry.name, size: fontSize)
        if x > left && x + width > left + maxWidth {
            x = left
            y += rowHeight
        }
        var item = "<g class=\"legend-item\" data-legend=\"\(xmlEscape(entry.name))\">"
        switch entry.swatch {
        case let .line(color, dash, marker):
            item += "<line x1=\"\(coord(x))\" y1=\"\(coord(y))\" x2=\"\(coord(x + swatchWidth))\" y2=\"\(coord(y))\" "
                + "stroke=\"\(color)\" stroke-width=\"2\"" + (dash.map { " stroke-dasharray=\"\($0)\"" } ?? "") + "/>"
            if let marker {
                item += markerSVG(marker, x: x + swatchWidth / 2, y: y, r: 3.5, color: color)
            }
        case let .band(color, opacity):
            item += "<rect x=\"\(coord(x))\" y=\"\(coord(y - 6))\" width=\"\(coord(swatchWidth))\" height=\"12\" "
                + "fill=\"\(color)\" fill-opacity=\"\(coord(opacity))\"/>"
        case let .marker(color, shape):
            item += markerSVG(shape, x: x + swatchWidth / 2, y: y, r: 4, color: color)
        case let .bar(color):
            item += "<rect x=\"\(coord(x + 5))\" y=\"\(coord(y - 6))\" width=\"14\" height=\"12\" fill=\"\(color)\"/>"
        }
        item += textSVG(entry.name, x: x + swatchWidth + 6, y: y, size: fontSize, dy: "0.35em")
        item += "</g>"
        parts.append(item)
        x += width + 18
    }
    parts.append("</g>")
    return (parts.joined(separator: "\n"), y - top + rowHeight - 4)
}

/// The plotting rectangle and the data → viewBox mapping.
struct PlotFrame {
    var left: Double
    var top: Double
    var width: Double
    var height: Double
    var x: AxisScale
    var y: AxisScale

    var right: Double { left + width }
    var bottom: Double { top + height }

    func px(_ v: Double) -> Double { left + (v - x.lo) / (x.hi - x.lo) * width }
    func py(_ v: Double) -> Double { bottom - (v - y.lo) / (y.hi - y.lo) * height }

    /// Opens a nested `<svg>` that clips the data to the plot area (plus `pad` units so edge
    /// markers stay whole); needs no ids, so several charts can share one page.
    func clipOpen(pad: Double = 7) -> String {
        let x0 = left - pad, y0 = top - pad, w = width + 2 * pad, h = height + 2 * pad
        return "<svg class=\"plot-area\" x=\"\(coord(x0))\" y=\"\(coord(y0))\" width=\"\(coord(w))\" "
            + "height=\"\(coord(h))\" viewBox=\"\(coord(x0)) \(coord(y0)) \(coord(w)) \(coord(h))\" overflow=\"hidden\">"
    }
}

/// Width of the widest y tick label of a scale, at 11 units.
func tickLabelWidth(_ scale: AxisScale) -> Double {
    scale.ticks.map { textWidth(scale.label($0), size: 11) }.max() ?? 20
}

/// Horizontal grid lines, the y axis with tick marks and labels, and its rotated title.
func yAxisSVG(_ frame: PlotFrame, title: String) -> String {
    var parts = ["<g class=\"axis y-axis\">"]
    for t in frame.y.ticks {
        let y = frame.py(t)
        parts.append("<line class=\"grid\" x1=\"\(coord(frame.left))\" y1=\"\(coord(y))\" x2=\"\(coord(frame.right))\" "
            + "y2=\"\(coord(y))\" stroke=\"#e6e6e6\" stroke-width=\"1\"/>")
        parts.append("<line class=\"tick\" x1=\"\(coord(frame.left - 5))\" y1=\"\(coord(y))\" x2=\"\(coord(frame.left))\" "
            + "y2=\"\(coord(y))\" stroke=\"#333333\" stroke-width=\"1\"/>")
        parts.append(textSVG(frame.y.label(t), x: frame.left - 8, y: y, size: 11, anchor: "end",
                             className: "tick-label", dy: "0.35em"))
    }
    parts.append("<line class=\"domain\" x1=\"\(coord(frame.left))\" y1=\"\(coord(frame.top))\" x2=\"\(coord(frame.left))\" "
        + "y2=\"\(coord(frame.bottom))\" stroke=\"#333333\" stroke-width=\"1\"/>")
    parts.append(textSVG(title, x: 16, y: frame.top + frame.height / 2, size: 12.5, anchor: "middle",
                         rotate: -90, className: "axis-title"))
    parts.append("</g>")
    return parts.joined(separator: "\n")
}

/// The x axis with tick marks, labels and title; returns the SVG and the y of the title's baseline.
func xAxisSVG(_ frame: PlotFrame, title: String) -> (svg: String, titleY: Double) {
    var parts = ["<g class=\"axis x-axis\">"]
    for t in frame.x.ticks {
        let x = frame.px(t)
        parts.append("<line class=\"tick\" x1=\"\(coord(x))\" y1=\"\(coord(frame.bottom))\" x2=\"\(coord(x))\" "
            + "y2=\"\(coord(frame.bottom + 5))\" stroke=\"#333333\" stroke-width=\"1\"/>")
        parts.append(textSVG(frame.x.label(t), x: x, y: frame.bottom + 18, size: 11, anchor: "middle",
                             className: "tick-label"))
    }
    parts.append("<line class=\"domain\" x1=\"\(coord(frame.left))\" y1=\"\(coord(frame.bottom))\" x2=\"\(coord(frame.right))\" "
        + "y2=\"\(coord(frame.bottom))\" stroke=\"#333333\" stroke-width=\"1\"/>")
    let titleY = frame.bottom + 40
    parts.append(textSVG(title, x: frame.left + frame.width / 2, y: titleY, size: 12.5, anchor: "middle",
                         className: "axis-title"))
    parts.append("</g>")
    return (parts.joined(separator: "\n"), titleY)
}

/// Runs of consecutive elements for which `valid` holds (the pieces between gaps).
func runs<T>(_ items: [T], where valid: (T) -> Bool) -> [[T]] {
    var result: [[T]] = [], current: [T] = []
    for item in items {
        if valid(item) {
            current.append(item)
        } else if !current.isEmpty {
            result.append(current)
            current = []
        }
    }
    if !current.isEmpty { result.append(current) }
    return result
}

/// The smallest and largest finite value, or nil when there is none.
func finiteExtent<S: Sequence>(_ values: S) -> (min: Double, max: Double)? where S.Element == Double {
    var lo = Double.infinity, hi = -Double.infinity
    for v in values where v.isFinite {
        lo = min(lo, v)
        hi = max(hi, v)
    }
    return lo <= hi ? (lo, hi) : nil
}

// MARK: - Data types

/// A data point of a line or scatter chart.
///
/// A small struct rather than a tuple so that series are `Equatable` and `Sendable`.
/// Points with a NaN or infinite coordinate are skipped when drawn (a line shows a gap).
public struct ChartPoint: Sendable, Equatable, Hashable {
    public var x: Double
    public var y: Double

    public init(x: Double, y: Double) {
        self.x = x
        self.y = y
    }
}

/// A named line of a `LineChart`, drawn with markers in the given order of its points.
public struct Series: Sendable, Equatable {
    public var name: String
    public var points: [ChartPoint]
    /// Palette index of the colour; nil uses the series' position in the chart.
    public var colorIndex: Int?
    /// Draw a marker at each finite point (on by default).
    public var showMarkers: Bool
    /// Draw the line dashed (e.g. for a baseline series).
    public var dashed: Bool

    public init(name: String, points: [ChartPoint], colorIndex: Int? = nil,
                showMarkers: Bool = true, dashed: Bool = false) {
        self.name = name
        self.points = points
        self.colorIndex = colorIndex
        self.showMarkers = showMarkers
        self.dashed = dashed
    }

    /// A series from parallel x and y arrays (extra elements of the longer one are ignored).
    public init(name: String, xs: [Double], ys: [Double], colorIndex: Int? = nil,
                showMarkers: Bool = true, dashed: Bool = false) {
        self.init(name: name, points: zip(xs, ys).map { ChartPoint(x: $0, y: $1) },
                  colorIndex: colorIndex, showMarkers: showMarkers, dashed: dashed)
    }
}

/// One x position of a `Band`: the lower and upper y bounds there.
public struct BandPoint: Sendable, Equatable, Hashable {
    public var x: Double
    public var lower: Double
    public var upper: Double

    public init(x: Double, lower: Double, upper: Double) {
        self.x = x
        self.lower = lower
        self.upper = upper
    }
}

/// A semi-transparent filled band between a lower and an upper y at each x (±1 std, min–max),
/// drawn under the lines of a `LineChart` and listed in its legend.
public struct Band: Sendable, Equatable {
    public var name: String
    public var points: [BandPoint]
    /// Palette index of the fill; set it to the index of the series the band belongs to.
    /// Nil picks the next colour after the chart's series.
    public var colorIndex: Int?
    /// Fill opacity, 0…1 (0.18 by default; use a lower one for a wider band drawn underneath).
    public var opacity: Double

    public init(name: String, points: [BandPoint], colorIndex: Int? = nil, opacity: Double = 0.18) {
        self.name = name
        self.points = points
        self.colorIndex = colorIndex
        self.opacity = opacity
    }

    /// A band from parallel arrays of x, lower and upper values.
    public init(name: String, xs: [Double], lower: [Double], upper: [Double],
                colorIndex: Int? = nil, opacity: Double = 0.18) {
        let n = min(xs.count, lower.count, upper.count)
        self.init(name: name,
                  points: (0..<n).map { BandPoint(x: xs[$0], lower: lower[$0], upper: upper[$0]) },
                  colorIndex: colorIndex, opacity: opacity)
    }
}

/// A named, dashed horizontal line across a chart (a baseline, the base model's accuracy).
public struct ReferenceLine: Sendable, Equatable {
    public var name: String
    public var y: Double

    public init(name: String, y: Double) {
        self.name = name
        self.y = y
    }
}

/// Dash patterns for reference lines, cycled.
let referenceDashes = ["6 4", "2 3", "10 3 2 3"]

// MARK: - Line chart

/// Lines with markers over x (accuracy vs mixture size), with shaded bands and dashed
/// reference lines; `svg()` renders it.
public struct LineChart: Sendable, Equatable {
    public var title: String
    /// X-axis title with units, e.g. "mixture size k (adapters)".
    public var xLabel: String
    /// Y-axis title with units, e.g. "accuracy (fraction correct)".
    public var yLabel: String
    public var series: [Series]
    /// Bands, drawn under the lines.
    public var bands: [Band]
    /// A fixed y range; nil fits nice ticks around the data. Data outside it is clipped.
    public var yRange: ClosedRange<Double>?
    /// Integer x ticks (steps of at least 1) and half a step of padding at both ends.
    public var integerX: Bool
    /// Dashed horizontal lines, labelled at the right end and listed in the legend.
    public var references: [ReferenceLine]
    /// Extra lines drawn under the title (notes, test results).
    public var subtitle: [String]

    public init(title: String, xLabel: String, yLabel: String, series: [Series] = [],
                bands: [Band] = [], yRange: ClosedRange<Double>? = nil, integerX: Bool = false,
                references: [ReferenceLine] = [], subtitle: [String] = []) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.bands = bands
        self.yRange = yRange
        self.integerX = integerX
        self.references = references
        self.subtitle = subtitle
    }

    /// The chart as a standalone `<svg>` element (800 units wide, scales to its container).
    public func svg() -> String {
        let seriesColors = series.enumerated().map { paletteColor($0.element.colorIndex ?? $0.offset) }
        let bandColors = bands.enumerated().map { paletteColor($0.element.colorIndex ?? (series.count + $0.offset)) }

        var xs: [Double] = [], ys: [Double] = []
        for s in series {
            for p in s.points where p.x.isFinite && p.y.isFinite {
                xs.append(p.x)
                ys.append(p.y)
            }
        }
        for b in bands {
            for p in b.points where p.x.isFinite && p.lower.isFinite && p.upper.isFinite {
                xs.append(p.x)
                ys += [p.lower, p.upper]
            }
        }
        ys += references.map(\.y)
        let xExtent = finiteExtent(xs) ?? (0, 1)
        let xScale = AxisScale(min: xExtent.min, max: xExtent.max, count: integerX ? 12 : 8,
                               extend: true, integer: integerX)
        let yScale: AxisScale
        if let yRange, yRange.lowerBound.isFinite, yRange.upperBound.isFinite {
            yScale = AxisScale(min: yRange.lowerBound, max: yRange.upperBound, count: 6, extend: false)
        } else {
            let e = finiteExtent(ys) ?? (0, 1)
            yScale = AxisScale(min: e.min, max: e.max, count: 6, extend: true)
        }

        let header = headerSVG(title: title, subtitle: subtitle, x: 12)
        let left = 34 + tickLabelWidth(yScale) + 8
        let frame = PlotFrame(left: left, top: header.height + 14, width: chartWidth - left - 24,
                              height: 320, x: xScale, y: yScale)
        var body = [header.svg, yAxisSVG(frame, title: yLabel)]
        let xAxis = xAxisSVG(frame, title: xLabel)
        body.append(xAxis.svg)

        body.append(frame.clipOpen())
        for (j, band) in bands.enumerated() {
            var d = ""
            for run in runs(band.points, where: { $0.x.isFinite && $0.lower.isFinite && $0.upper.isFinite }) {
                for (i, p) in run.enumerated() {
                    d += (i == 0 ? "M" : "L") + "\(coord(frame.px(p.x))) \(coord(frame.py(p.upper)))"
                }
                for p in run.reversed() {
                    d += "L\(coord(frame.px(p.x))) \(coord(frame.py(p.lower)))"
                }
                d += "Z"
            }
            body.append("<path class=\"band\" data-series=\"\(xmlEscape(band.name))\" d=\"\(d)\" "
                + "fill=\"\(bandColors[j])\" fill-opacity=\"\(coord(band.opacity))\" stroke=\"none\"/>")
        }
        for (k, ref) in references.enumerated() where ref.y.isFinite {
            let y = frame.py(ref.y)
            body.append("<g class=\"reference\" data-series=\"\(xmlEscape(ref.name))\">"
                + "<line x1=\"\(coord(frame.left))\" y1=\"\(coord(y))\" x2=\"\(coord(frame.right))\" y2=\"\(coord(y))\" "
                + "stroke=\"#444444\" stroke-width=\"1.5\" stroke-dasharray=\"\(referenceDashes[k % referenceDashes.count])\"/>"
                + textSVG(ref.name, x: frame.right - 4, y: y - 5, size: 11, anchor: "end", fill: "#444444")
                + "</g>")
        }
        for (i, s) in series.enumerated() {
            let color = seriesColors[i]
            var parts = ["<g class=\"series\" data-series=\"\(xmlEscape(s.name))\">"]
            var d = ""
            for run in runs(s.points, where: { $0.x.isFinite && $0.y.isFinite }) {
                for (k, p) in run.enumerated() {
                    d += (k == 0 ? "M" : "L") + "\(coord(frame.px(p.x))) \(coord(frame.py(p.y)))"
                }
            }
            parts.append("<path class=\"line\" d=\"\(d)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" "
                + "stroke-linejoin=\"round\"" + (s.dashed ? " stroke-dasharray=\"6 4\"" : "") + "/>")
            if s.showMarkers {
                for p in s.points where p.x.isFinite && p.y.isFinite {
                    parts.append(markerSVG(MarkerShape.at(i), x: frame.px(p.x), y: frame.py(p.y), r: 3.5,
                                           color: color,
                                           tooltip: "\(s.name): x = \(formatValue(p.x)), y = \(formatValue(p.y))"))
                }
            }
            parts.append("</g>")
            body.append(parts.joined())
        }
        body.append("</svg>")

        var entries = series.enumerated().map { i, s in
            LegendEntry(name: s.name, swatch: .line(color: seriesColors[i], dash: s.dashed ? "6 4" : nil,
                                                    marker: s.showMarkers ? MarkerShape.at(i) : nil))
        }
        entries += bands.enumerated().map { j, b in
            LegendEntry(name: b.name, swatch: .band(color: bandColors[j], opacity: max(b.opacity, 0.25)))
        }
        entries += references.enumerated().map { k, r in
            LegendEntry(name: r.name, swatch: .line(color: "#444444",
                                                    dash: referenceDashes[k % referenceDashes.count], marker: nil))
        }
        let legend = legendSVG(entries, left: frame.left, top: xAxis.titleY + 12, maxWidth: frame.width)
        body.append(legend.svg)
        let height = xAxis.titleY + 12 + legend.height + 10
        return svgDocument(kind: "line-chart", width: chartWidth, height: height, title: title,
                           description: subtitle, body: body)
    }
}

// MARK: - Scatter chart

/// A named set of points of a `ScatterChart`, with its own colour, marker and legend entry.
public struct ScatterGroup: Sendable, Equatable {
    public var name: String
    public var points: [ChartPoint]

    public init(name: String, points: [ChartPoint]) {
        self.name = name
        self.points = points
    }

    /// A group from parallel x and y arrays.
    public init(name: String, xs: [Double], ys: [Double]) {
        self.init(name: name, points: zip(xs, ys).map { ChartPoint(x: $0, y: $1) })
    }
}

/// Least-squares intercept and slope of `y = a + b·x` over the finite points, or nil when
/// fewer than two points or the x values do not vary.
func leastSquaresFit(_ points: [ChartPoint]) -> (intercept: Double, slope: Double)? {
    let finite = points.filter { $0.x.isFinite && $0.y.isFinite }
    guard finite.count >= 2 else { return nil }
    let n = Double(finite.count)
    let mx = finite.reduce(0) { $0 + $1.x } / n
    let my = finite.reduce(0) { $0 + $1.y } / n
    var sxx = 0.0, sxy = 0.0
    for p in finite {
        sxx += (p.x - mx) * (p.x - mx)
        sxy += (p.x - mx) * (p.y - my)
    }
    guard sxx > 0 else { return nil }
    let slope = sxy / sxx
    return (my - slope * mx, slope)
}

/// Points in groups (e.g. mixture accuracy vs adapter similarity), with optional
/// least-squares lines and annotation lines under the title; `svg()` renders it.
public struct ScatterChart: Sendable, Equatable {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var groups: [ScatterGroup]
    /// Draw a least-squares line through each group (over the group's x range).
    public var fit: Bool
    /// Annotation lines under the title, e.g. "Pearson r = -0.61 (p = 0.003), Spearman ρ = -0.58".
    public var subtitle: [String]

    public init(title: String, xLabel: String, yLabel: String, groups: [ScatterGroup] = [],
                fit: Bool = false, subtitle: [String] = []) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.groups = groups
        self.fit = fit
        self.subtitle = subtitle
    }

    /// The chart as a standalone `<svg>` element (800 units wide, scales to its container).
    public func svg() -> String {
        let all = groups.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        let xe = finiteExtent(all.map(\.x)) ?? (0, 1)
        let ye = finiteExtent(all.map(\.y)) ?? (0, 1)
        let xScale = AxisScale(min: xe.min, max: xe.max, count: 8, extend: true)
        let yScale = AxisScale(min: ye.min, max: ye.max, count: 6, extend: true)

        let header = headerSVG(title: title, subtitle: subtitle, x: 12)
        let left = 34 + tickLabelWidth(yScale) + 8
        let frame = PlotFrame(left: left, top: header.height + 14, width: chartWidth - left - 24,
                              height: 340, x: xScale, y: yScale)
        var body = [header.svg, yAxisSVG(frame, title: yLabel)]
        let xAxis = xAxisSVG(frame, title: xLabel)
        body.append(xAxis.svg)

        body.append(frame.clipOpen())
        for (i, group) in groups.enumerated() {
            let color = paletteColor(i)
            var parts = ["<g class=\"group\" data-series=\"\(xmlEscape(group.name))\">"]
            for p in group.points where p.x.isFinite && p.y.isFinite {
                parts.append(markerSVG(MarkerShape.at(i), x: frame.px(p.x), y: frame.py(p.y), r: 4.5,
                                       color: color,
                                       tooltip: "\(group.name): x = \(formatValue(p.x)), y = \(formatValue(p.y))",
                                       opacity: 0.85))
            }
            if fit, let line = leastSquaresFit(group.points),
               let range = finiteExtent(group.points.filter { $0.y.isFinite }.map(\.x)) {
                let y0 = line.intercept + line.slope * range.min
                let y1 = line.intercept + line.slope * range.max
                parts.append("<line class=\"fit\" x1=\"\(coord(frame.px(range.min)))\" y1=\"\(coord(frame.py(y0)))\" "
                    + "x2=\"\(coord(frame.px(range.max)))\" y2=\"\(coord(frame.py(y1)))\" stroke=\"\(color)\" "
                    + "stroke-width=\"2\"><title>\(xmlEscape("\(group.name): least-squares y = \(formatValue(line.intercept)) + \(formatValue(line.slope))·x"))</title></line>")
            }
            parts.append("</g>")
            body.append(parts.joined())
        }
        body.append("</svg>")

        let entries = groups.enumerated().map { i, g in
            LegendEntry(name: g.name, swatch: fit
                ? .line(color: paletteColor(i), dash: nil, marker: MarkerShape.at(i))
                : .marker(color: paletteColor(i), shape: MarkerShape.at(i)))
        }
        let legend = legendSVG(entries, left: frame.left, top: xAxis.titleY + 12, maxWidth: frame.width)
        body.append(legend.svg)
        let height = xAxis.titleY + 12 + legend.height + 10
        return svgDocument(kind: "scatter-chart", width: chartWidth, height: height, title: title,
                           description: subtitle, body: body)
    }
}

// MARK: - Heatmap

/// A table of values drawn as coloured cells (e.g. accuracy of the adapter trained on each row
/// task evaluated on each column task), with a colour legend bar; `svg()` renders it.
///
/// The colour scale runs from the smallest (near white) to the largest value (dark blue); cell
/// text turns white on dark cells. NaN cells (and cells missing from short rows) are grey with
/// no text. Readable up to about 13×13 cells with labels like "election-tweets".
public struct Heatmap: Sendable, Equatable {
    public var title: String
    public var rowLabels: [String]
    public var columnLabels: [String]
    /// `values[row][column]`; NaN marks an empty cell.
    public var values: [[Double]]
    /// Decimals printed in each cell (0…4).
    public var digits: Int
    /// Title of the row axis (drawn rotated at the left), empty for none.
    public var rowTitle: String
    /// Title of the column axis (drawn under the column labels), empty for none.
    public var columnTitle: String
    /// Fixed colour-scale range; nil uses the finite minimum and maximum of `values`.
    public var range: ClosedRange<Double>?
    /// Extra lines drawn under the title.
    public var subtitle: [String]

    public init(title: String, rowLabels: [String], columnLabels: [String], values: [[Double]],
                digits: Int = 2, rowTitle: String = "", columnTitle: String = "",
                range: ClosedRange<Double>? = nil, subtitle: [String] = []) {
        self.title = title
        self.rowLabels = rowLabels
        self.columnLabels = columnLabels
        self.values = values
        self.digits = digits
        self.rowTitle = rowTitle
        self.columnTitle = columnTitle
        self.range = range
        self.subtitle = subtitle
    }

    /// The value at (`row`, `column`), NaN when missing.
    func value(_ row: Int, _ column: Int) -> Double {
        row < values.count && column < values[row].count ? values[row][column] : .nan
    }

    /// The chart as a standalone `<svg>` element (at most about 860 units wide).
    public func svg() -> String {
        let rows = rowLabels.count, cols = columnLabels.count
        let digits = max(0, min(self.digits, 4))
        let finite = (0..<rows).flatMap { r in (0..<cols).map { value(r, $0) } }.filter(\.isFinite)
        let extent: (min: Double, max: Double)?
        if let range, range.lowerBound.isFinite, range.upperBound.isFinite {
            extent = (range.lowerBound, range.upperBound)
        } else {
            extent = finiteExtent(finite)
        }
        let hasEmpty = finite.count < rows * cols

        let labelSize = 12.0
        let rowLabelWidth = rowLabels.map { textWidth($0, size: labelSize) }.max() ?? 0
        let colLabelWidth = columnLabels.map { textWidth($0, size: labelSize) }.max() ?? 0
        let rowTitleSpace = rowTitle.isEmpty ? 0.0 : 24
        let legendSpace = 100.0
        let maxWidth = 860.0
        var cell = (maxWidth - rowTitleSpace - rowLabelWidth - 16 - legendSpace) / Double(max(cols, 1))
        cell = max(20, min(64, cell))
        let diagonal = 0.7071
        let left = max(rowTitleSpace + rowLabelWidth + 14, colLabelWidth * diagonal - cell / 2 + 8)
        let width = left + cell * Double(cols) + legendSpace

        let header = headerSVG(title: title, subtitle: subtitle, x: 12)
        let top = header.height + 16
        let gridBottom = top + cell * Double(rows)
        var body = [header.svg]

        // Cell text size: fit the widest printed value into about 85% of a cell.
        let sample = finite.map { formatFixed($0, decimals: digits) }.map(\.count).max() ?? 4
        let valueSize = max(7, min(12, cell * 0.85 / (Double(sample) * 0.6)))

        for r in 0..<rows {
            let y = top + Double(r) * cell
            var parts = ["<g class=\"heatmap-row\" data-series=\"\(xmlEscape(rowLabels[r]))\">"]
            for c in 0..<cols {
                let x = left + Double(c) * cell
                let v = value(r, c)
                let tip = "\(rowLabels[r]) → \(columnLabels[c]): " + (v.isFinite ? formatValue(v) : "no data")
                if v.isFinite, let extent {
                    let rgb = heatColor(v, min: extent.min, max: extent.max)
                    parts.append("<rect class=\"cell\" data-row=\"\(r)\" data-col=\"\(c)\" x=\"\(coord(x))\" y=\"\(coord(y))\" "
                        + "width=\"\(coord(cell))\" height=\"\(coord(cell))\" fill=\"\(hex(rgb))\" stroke=\"#ffffff\" "
                        + "stroke-width=\"1\"><title>\(xmlEscape(tip))</title></rect>")
                    parts.append(textSVG(formatFixed(v, decimals: digits), x: x + cell / 2, y: y + cell / 2,
                                         size: valueSize, anchor: "middle",
                                         fill: luminance(rgb) < 0.5 ? "#ffffff" : "#111111",
                                         className: "cell-value", dy: "0.35em"))
                } else {
                    parts.append("<rect class=\"cell empty\" data-row=\"\(r)\" data-col=\"\(c)\" x=\"\(coord(x))\" "
                        + "y=\"\(coord(y))\" width=\"\(coord(cell))\" height=\"\(coord(cell))\" fill=\"#d9d9d9\" "
                        + "stroke=\"#ffffff\" stroke-width=\"1\"><title>\(xmlEscape(tip))</title></rect>")
                }
            }
            parts.append(textSVG(rowLabels[r], x: left - 6, y: y + cell / 2, size: labelSize, anchor: "end",
                                 className: "row-label", dy: "0.35em"))
            parts.append("</g>")
            body.append(parts.joined())
        }
        var labels = ["<g class=\"column-labels\">"]
        for c in 0..<cols {
            let x = left + (Double(c) + 0.5) * cell
            labels.append(textSVG(columnLabels[c], x: x, y: gridBottom + 10, size: labelSize, anchor: "end",
                                  rotate: -45, className: "column-label", dy: "0.35em"))
        }
        labels.append("</g>")
        body.append(labels.joined(separator: "\n"))
        var bottom = gridBottom + 12 + colLabelWidth * diagonal
        if !columnTitle.isEmpty {
            bottom += 18
            body.append(textSVG(columnTitle, x: left + cell * Double(cols) / 2, y: bottom, size: 12.5,
                                anchor: "middle", className: "axis-title"))
        }
        if !rowTitle.isEmpty {
            body.append(textSVG(rowTitle, x: 16, y: top + cell * Double(rows) / 2, size: 12.5, anchor: "middle",
                                rotate: -90, className: "axis-title"))
        }

        // Colour legend: a stacked bar from min (bottom) to max (top), then the "no data" swatch.
        let barX = left + cell * Double(cols) + 18
        let barHeight = min(200, max(80, cell * Double(rows)))
        var legend = ["<g class=\"legend color-legend\">"]
        if let extent {
            let steps = 24
            for s in 0..<steps {
                let t0 = Double(s) / Double(steps)
                let v = extent.min + (extent.max - extent.min) * (t0 + 0.5 / Double(steps))
                let y = top + barHeight * (1 - t0 - 1 / Double(steps))
                legend.append("<rect x=\"\(coord(barX))\" y=\"\(coord(y))\" width=\"14\" "
                    + "height=\"\(coord(barHeight / Double(steps) + 0.5))\" fill=\"\(hex(heatColor(v, min: extent.min, max: extent.max)))\"/>")
            }
            legend.append("<rect x=\"\(coord(barX))\" y=\"\(coord(top))\" width=\"14\" height=\"\(coord(barHeight))\" "
                + "fill=\"none\" stroke=\"#999999\" stroke-width=\"0.5\"/>")
            legend.append(textSVG(formatFixed(extent.max, decimals: digits), x: barX + 20, y: top, size: 11,
                                  className: "legend-max", dy: "0.7em"))
            legend.append(textSVG(formatFixed(extent.min, decimals: digits), x: barX + 20, y: top + barHeight,
                                  size: 11, className: "legend-min"))
        }
        if hasEmpty {
            let y = top + barHeight + 14
            legend.append("<g class=\"legend-item\" data-legend=\"no data\"><rect x=\"\(coord(barX))\" y=\"\(coord(y))\" "
                + "width=\"14\" height=\"14\" fill=\"#d9d9d9\"/>"
                + textSVG("no data", x: barX + 20, y: y + 7, size: 11, dy: "0.35em") + "</g>")
        }
        legend.append("</g>")
        body.append(legend.joined(separator: "\n"))

        let height = max(bottom, top + barHeight + 36) + 12
        return svgDocument(kind: "heatmap", width: width, height: height, title: title,
                           description: subtitle, body: body)
    }
}

/// Sequential palette (white → light blue → dark blue), after the ColorBrewer "Blues" end points.
let heatStops: [(Double, Double, Double)] = [(247, 251, 255), (107, 174, 214), (8, 48, 107)]

/// The colour of `v` on the scale from `min` to `max` (the middle when the range is empty).
func heatColor(_ v: Double, min lo: Double, max hi: Double) -> (Double, Double, Double) {
    var t = hi > lo ? (v - lo) / (hi - lo) : 0.5
    t = Swift.max(0, Swift.min(1, t))
    let scaled = t * Double(heatStops.count - 1)
    let i = Swift.min(Int(scaled), heatStops.count - 2)
    let f = scaled - Double(i)
    let a = heatStops[i], b = heatStops[i + 1]
    return (a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f, a.2 + (b.2 - a.2) * f)
}

/// Relative luminance (0 black … 1 white) of an sRGB colour, for choosing the text colour.
func luminance(_ rgb: (Double, Double, Double)) -> Double {
    (0.2126 * rgb.0 + 0.7152 * rgb.1 + 0.0722 * rgb.2) / 255
}

/// `#rrggbb` for an RGB triple in 0…255.
func hex(_ rgb: (Double, Double, Double)) -> String {
    let parts = [rgb.0, rgb.1, rgb.2].map { Int(max(0, min(255, $0.rounded()))) }
    return "#" + parts.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

// MARK: - Bar chart

/// One named series of a `BarChart`: a value per category and optional error bounds.
///
/// `lower` and `upper` are absolute y values (e.g. a confidence interval), not offsets from the
/// value. A NaN value draws no bar; a NaN bound draws no error bar. Arrays shorter than the
/// categories are treated as NaN for the missing entries.
public struct BarSeries: Sendable, Equatable {
    public var name: String
    public var values: [Double]
    public var lower: [Double]?
    public var upper: [Double]?

    public init(name: String, values: [Double], lower: [Double]? = nil, upper: [Double]? = nil) {
        self.name = name
        self.values = values
        self.lower = lower
        self.upper = upper
    }
}

/// Grouped vertical bars per category (e.g. "share of mixtures significantly worse" per k),
/// with optional error bars; `svg()` renders it.
public struct BarChart: Sendable, Equatable {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var categories: [String]
    public var series: [BarSeries]
    /// A fixed y range; nil fits nice ticks around the data and zero.
    public var yRange: ClosedRange<Double>?
    /// Rotate the category labels; nil rotates them when they do not fit side by side.
    public var rotateLabels: Bool?
    /// Extra lines drawn under the title.
    public var subtitle: [String]

    public init(title: String, xLabel: String, yLabel: String, categories: [String],
                series: [BarSeries], yRange: ClosedRange<Double>? = nil, rotateLabels: Bool? = nil,
                subtitle: [String] = []) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.categories = categories
        self.series = series
        self.yRange = yRange
        self.rotateLabels = rotateLabels
        self.subtitle = subtitle
    }

    /// The chart as a standalone `<svg>` element (800 units wide, scales to its container).
    public func svg() -> String {
        func at(_ array: [Double]?, _ i: Int) -> Double {
            guard let array, i < array.count else { return .nan }
            return array[i]
        }
        var ys = [0.0]
        for s in series {
            for i in categories.indices {
                ys += [at(s.values, i), at(s.lower, i), at(s.upper, i)]
            }
        }
        let yScale: AxisScale
        if let yRange, yRange.lowerBound.isFinite, yRange.upperBound.isFinite {
            yScale = AxisScale(min: yRange.lowerBound, max: yRange.upperBound, count: 6, extend: false)
        } else {
            let e = finiteExtent(ys) ?? (0, 1)
            yScale = AxisScale(min: e.min, max: e.max, count: 6, extend: true)
        }

        let header = headerSVG(title: title, subtitle: subtitle, x: 12)
        var left = 34 + tickLabelWidth(yScale) + 8
        let labelWidth = categories.map { textWidth($0, size: 11) }.max() ?? 0
        let count = Double(max(categories.count, 1))
        let rotate = rotateLabels ?? (labelWidth > (chartWidth - left - 24) / count - 6)
        let angle = 40.0
        if rotate, let first = categories.first {
            // Rotated labels reach left of their bar: keep the first one inside the chart, i.e.
            // left + slot / 2 >= reach with slot = (chartWidth - left - 24) / count.
            let reach = textWidth(first, size: 11) * cos(angle * .pi / 180) + 8
            let half = 1 / (2 * count)
            left = max(left, ((reach - (chartWidth - 24) * half) / (1 - half)).rounded(.up))
        }
        // The x scale is unused for bars (categories are placed by slot); it keeps the frame whole.
        let frame = PlotFrame(left: left, top: header.height + 14, width: chartWidth - left - 24, height: 300,
                              x: AxisScale(min: 0, max: 1, count: 1, extend: false), y: yScale)
        let slot = frame.width / count
        let labelDepth = rotate ? labelWidth * sin(angle * .pi / 180) + 8 : 12

        var body = [header.svg, yAxisSVG(frame, title: yLabel)]
        var axis = ["<g class=\"axis x-axis\">"]
        for (i, category) in categories.enumerated() {
            let x = frame.left + (Double(i) + 0.5) * slot
            axis.append("<line class=\"tick\" x1=\"\(coord(x))\" y1=\"\(coord(frame.bottom))\" x2=\"\(coord(x))\" "
                + "y2=\"\(coord(frame.bottom + 5))\" stroke=\"#333333\" stroke-width=\"1\"/>")
            if rotate {
                axis.append(textSVG(category, x: x, y: frame.bottom + 12, size: 11, anchor: "end", rotate: -angle,
                                    className: "tick-label", dy: "0.35em"))
            } else {
                axis.append(textSVG(category, x: x, y: frame.bottom + 18, size: 11, anchor: "middle",
                                    className: "tick-label"))
            }
        }
        let zeroY = frame.py(max(yScale.lo, min(yScale.hi, 0)))
        axis.append("<line class=\"domain\" x1=\"\(coord(frame.left))\" y1=\"\(coord(frame.bottom))\" "
            + "x2=\"\(coord(frame.right))\" y2=\"\(coord(frame.bottom))\" stroke=\"#333333\" stroke-width=\"1\"/>")
        let titleY = frame.bottom + labelDepth + 24
        axis.append(textSVG(xLabel, x: frame.left + frame.width / 2, y: titleY, size: 12.5, anchor: "middle",
                            className: "axis-title"))
        axis.append("</g>")
        body.append(axis.joined(separator: "\n"))

        body.append(frame.clipOpen(pad: 2))
        let groupWidth = slot * 0.8
        let barWidth = groupWidth / Double(max(series.count, 1))
        for (j, s) in series.enumerated() {
            let color = paletteColor(j)
            var parts = ["<g class=\"bar-series\" data-series=\"\(xmlEscape(s.name))\">"]
            for (i, category) in categories.enumerated() {
                let x = frame.left + Double(i) * slot + (slot - groupWidth) / 2 + Double(j) * barWidth
                let v = at(s.values, i), lo = at(s.lower, i), hi = at(s.upper, i)
                if v.isFinite {
                    let y = frame.py(v)
                    var tip = "\(s.name), \(category): \(formatValue(v))"
                    if lo.isFinite && hi.isFinite { tip += " [\(formatValue(lo)), \(formatValue(hi))]" }
                    parts.append("<rect class=\"bar\" x=\"\(coord(x + 1))\" y=\"\(coord(min(y, zeroY)))\" "
                        + "width=\"\(coord(max(barWidth - 2, 1)))\" height=\"\(coord(abs(zeroY - y)))\" "
                        + "fill=\"\(color)\"><title>\(xmlEscape(tip))</title></rect>")
                }
                if lo.isFinite && hi.isFinite {
                    let cx = x + barWidth / 2, cap = min(barWidth * 0.25, 6)
                    let y0 = frame.py(lo), y1 = frame.py(hi)
                    parts.append("<path class=\"error-bar\" d=\"M\(coord(cx)) \(coord(y0))L\(coord(cx)) \(coord(y1))"
                        + "M\(coord(cx - cap)) \(coord(y0))L\(coord(cx + cap)) \(coord(y0))"
                        + "M\(coord(cx - cap)) \(coord(y1))L\(coord(cx + cap)) \(coord(y1))\" "
                        + "stroke=\"#222222\" stroke-width=\"1.2\" fill=\"none\"/>")
                }
            }
            parts.append("</g>")
            body.append(parts.joined())
        }
        if yScale.lo < 0 && yScale.hi > 0 {
            body.append("<line class=\"zero\" x1=\"\(coord(frame.left))\" y1=\"\(coord(zeroY))\" "
                + "x2=\"\(coord(frame.right))\" y2=\"\(coord(zeroY))\" stroke=\"#333333\" stroke-width=\"1\"/>")
        }
        body.append("</svg>")

        let entries = series.enumerated().map { j, s in LegendEntry(name: s.name, swatch: .bar(color: paletteColor(j))) }
        let legend = legendSVG(entries, left: frame.left, top: titleY + 12, maxWidth: frame.width)
        body.append(legend.svg)
        let height = titleY + 12 + legend.height + 10
        return svgDocument(kind: "bar-chart", width: chartWidth, height: height, title: title,
                           description: subtitle, body: body)
    }
}
