// The self-contained HTML page of the study report: headings with a table of contents,
// escaped paragraphs and tables, inline SVG figures and relative links to the CSV files written
// next to the page. No scripts, web fonts, stylesheets or remote URLs, so it reads offline.

import Foundation

/// A self-contained HTML5 report page, built block by block and rendered with `render()`.
///
/// Text passed to `heading`, `paragraph`, `table` and `link` is escaped; only `raw` (and the
/// SVG given to `figure`) is inserted as-is. Level-2 headings make the table of contents.
public struct HTMLPage: Sendable, Equatable {
    /// A heading recorded for the table of contents.
    struct Heading: Sendable, Equatable {
        var level: Int
        var text: String
        var id: String
    }

    public var title: String
    /// Rendered blocks of the body, in order.
    var blocks: [String] = []
    var headings: [Heading] = []
    var usedIDs: Set<String> = ["contents"]

    public init(title: String) {
        self.title = title
    }

    /// Adds a heading (`level` clamped to 1…6; the page title is already the first `<h1>`) with
    /// an anchor id made from its text; level-2 headings are listed in the table of contents.
    public mutating func heading(_ text: String, level: Int = 2) {
        let level = max(1, min(level, 6))
        let id = uniqueID(for: text)
        headings.append(Heading(level: level, text: text, id: id))
        blocks.append("<h\(level) id=\"\(id)\">\(xmlEscape(text))</h\(level)>")
    }

    /// Adds a paragraph of plain text (escaped).
    public mutating func paragraph(_ text: String) {
        blocks.append("<p>\(xmlEscape(text))</p>")
    }

    /// Adds HTML as-is, e.g. a chart's `svg()`; the caller vouches that it is self-contained.
    public mutating func raw(_ html: String) {
        blocks.append(html)
    }

    /// Adds an SVG chart in a `<figure>`, with an optional caption (escaped).
    public mutating func figure(_ svg: String, caption: String? = nil) {
        var html = "<figure>\n\(svg)\n"
        if let caption { html += "<figcaption>\(xmlEscape(caption))</figcaption>\n" }
        blocks.append(html + "</figure>")
    }

    /// Adds a table; every cell is escaped and numeric-looking cells ("0.812", "-3", "12.5%",
    /// "0.81 ± 0.02") are right-aligned, as is the header of a column whose cells all are.
    public mutating func table(header: [String], rows: [[String]], caption: String? = nil) {
        let columns = max(header.count, rows.map(\.count).max() ?? 0)
        let numericColumn = (0..<columns).map { c in
            let cells = rows.compactMap { c < $0.count ? $0[c] : nil }.filter { !$0.isEmpty }
            return !cells.isEmpty && cells.allSatisfy(isNumericLooking)
        }
        var html = "<div class=\"table-wrap\"><table>\n"
        if let caption { html += "<caption>\(xmlEscape(caption))</caption>\n" }
        if !header.isEmpty {
            html += "<thead><tr>"
            for (c, cell) in header.enumerated() {
                html += (numericColumn[c] ? "<th class=\"num\">" : "<th>") + xmlEscape(cell) + "</th>"
            }
            html += "</tr></thead>\n"
        }
        html += "<tbody>\n"
        for row in rows {
            html += "<tr>"
            for cell in row {
                html += (isNumericLooking(cell) ? "<td class=\"num\">" : "<td>") + xmlEscape(cell) + "</td>"
            }
            html += "</tr>\n"
        }
        html += "</tbody></table></div>"
        blocks.append(html)
    }

    /// Adds a paragraph with a relative link to a local file next to the page (a CSV table).
    ///
    /// The path is kept relative: leading slashes are dropped and characters outside
    /// `A–Z a–z 0–9 - . _ ~ /` are percent-encoded (a colon too), so it can never become a
    /// remote or absolute URL.
    public mutating func link(to file: String, text: String) {
        blocks.append("<p><a href=\"\(xmlEscape(relativeHref(file)))\">\(xmlEscape(text))</a></p>")
    }

    /// The complete HTML5 document.
    public func render() -> String {
        var out = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(xmlEscape(title))</title>
        <style>
        \(HTMLPage.styleSheet)
        </style>
        </head>
        <body>
        <main>
        <h1>\(xmlEscape(title))</h1>

        """
        let sections = headings.filter { $0.level == 2 }
        if !sections.isEmpty {
            out += "<nav class=\"toc\" id=\"contents\" aria-label=\"Contents\">\n<p class=\"toc-title\">Contents</p>\n<ol>\n"
            for h in sections {
                out += "<li><a href=\"#\(h.id)\">\(xmlEscape(h.text))</a></li>\n"
            }
            out += "</ol>\n</nav>\n"
        }
        for block in blocks { out += block + "\n" }
        out += "</main>\n</body>\n</html>\n"
        return out
    }

    /// The page's only styles: the system font stack, a ~900 px column, plain tables.
    static let styleSheet = """
    body { margin: 0; color: #222; background: #fff; font-family: system-ui, sans-serif; line-height: 1.5; }
    main { max-width: 900px; margin: 0 auto; padding: 1rem 1.25rem 3rem; }
    h1 { font-size: 1.8rem; margin: 1rem 0 0.5rem; }
    h2 { font-size: 1.35rem; margin-top: 2.5rem; padding-bottom: 0.2rem; border-bottom: 1px solid #ddd; }
    h3 { font-size: 1.1rem; margin-top: 1.8rem; }
    a { color: #0b5cad; }
    nav.toc { background: #f6f7f9; border: 1px solid #e2e4e8; padding: 0.5rem 1rem; margin: 1rem 0 2rem; }
    nav.toc .toc-title { font-weight: 600; margin: 0.2rem 0; }
    nav.toc ol { margin: 0.2rem 0 0.4rem; padding-left: 1.5rem; }
    figure { margin: 1.5rem 0; }
    figure svg, main > svg { display: block; width: 100%; height: auto; }
    figcaption { font-size: 0.9rem; color: #555; margin-top: 0.4rem; }
    .table-wrap { overflow-x: auto; margin: 1rem 0; }
    table { border-collapse: collapse; font-size: 0.92rem; }
    caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
    th, td { padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; border-bottom: 1px solid #e3e3e3; }
    th { border-bottom: 2px solid #bbb; }
    th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
    """

    /// A fresh anchor id from heading text: lower-case ASCII letters and digits joined by "-",
    /// with "-2", "-3", … appended when taken.
    mutating func uniqueID(for text: String) -> String {
        var slug = ""
        for scalar in text.lowercased().unicodeScalars {
            if scalar.isASCII, scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) {
                slug.unicodeScalars.append(scalar)
            } else if !slug.isEmpty, slug.last != "-" {
                slug += "-"
            }
        }
        while slug.last == "-" { slug.removeLast() }
        if slug.isEmpty { slug = "section" }
        var id = slug, n = 2
        while usedIDs.contains(id) {
            id = "\(slug)-\(n)"
            n += 1
        }
        usedIDs.insert(id)
        return id
    }
}

/// Whether a table cell reads as a number: digits with optional sign, decimal point, exponent,
/// thousands separators, a trailing "%" and "±" between two such numbers.
func isNumericLooking(_ cell: String) -> Bool {
    let parts = cell.split(separator: "±", omittingEmptySubsequences: false)
    guard parts.count <= 2 else { return false }
    return parts.allSatisfy { part in
        var text = Substring(part.trimmingCharacters(in: .whitespaces))
        if text.hasSuffix("%") { text = text.dropLast() }
        if let first = text.first, "+-−".contains(first) { text = text.dropFirst() }
        guard let first = text.first, first.isASCII, first.isNumber || first == "." else { return false }
        var digits = 0, sawExponent = false, previous: Character = " "
        for ch in text {
            if ch.isASCII && ch.isNumber {
                digits += 1
            } else if ch == "." || ch == "," {
                if sawExponent { return false }
            } else if (ch == "e" || ch == "E") && !sawExponent && digits > 0 {
                sawExponent = true
            } else if (ch == "+" || ch == "-") && (previous == "e" || previous == "E") {
                // exponent sign
            } else {
                return false
            }
            previous = ch
        }
        return digits > 0 && !(previous == "e" || previous == "E" || previous == "+" || previous == "-")
    }
}

/// A relative href for a local file: leading slashes dropped, unsafe bytes percent-encoded.
func relativeHref(_ file: String) -> String {
    var path = Substring(file)
    while path.first == "/" || path.first == "\\" { path = path.dropFirst() }
    var out = ""
    for byte in path.utf8 {
        let ch = Character(Unicode.Scalar(byte))
        if byte < 0x80, ch.isLetter || ch.isNumber || "-._~/".contains(ch) {
            out.append(ch)
        } else {
            out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
        }
    }
    return out.isEmpty ? "." : out
}
