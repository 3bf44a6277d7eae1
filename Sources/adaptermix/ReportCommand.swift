import ArgumentParser
import Foundation
import Sweep

/// `adaptermix report --journal J --out DIR`: the study's tables and figures from a sweep journal
/// (docs/guide.md, CSV columns in docs/formats.md). Safe while the sweep runs: it reads what is
/// recorded so far.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write the study report (index.html with inline SVG figures, and CSV tables) from a sweep journal.")

    @Option(help: ArgumentHelp("The sweep journal.", valueName: "FILE"))
    var journal: String

    @Option(help: ArgumentHelp("Folder for index.html and the CSV files (created if missing).", valueName: "DIR"))
    var out: String

    func run() throws {
        try reportingErrors {
            let j = try Journal.open(path: journal)
            let written = try StudyReport(journal: j).write(to: URL(fileURLWithPath: out))
            print("report: \(written.page.path) (\(written.figures) figures; \(written.csvFiles.count) CSV files: \(written.csvFiles.joined(separator: ", ")))")
        }
    }
}
