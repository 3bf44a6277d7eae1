import Foundation
import XCTest

/// docs/guide.md promises that every command on it is run by `make demo`, by `make test` or by the
/// Slurm test that `make test` runs. This keeps the promise checked: each command in the guide's
/// `sh` blocks must be a Makefile target, or invoked in scripts/demo.sh (`.build/release/adaptermix`
/// written `"$BIN"` there; verbatim, or the same subcommand with the demo's arguments) or in
/// cluster/slurm/test-local.sh (the same program and subcommand), and every option an
/// `adaptermix` command uses must be one its `--help` lists.
final class GuideTests: XCTestCase {
    func read(_ path: String) throws -> String {
        try String(contentsOf: CLITests.root.appendingPathComponent(path), encoding: .utf8)
    }

    /// Lines inside ```sh blocks.
    func commands(in markdown: String) -> [String] {
        var out: [String] = [], inside = false
        for line in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") { inside = line == "```sh"; continue }
            if inside, !line.trimmingCharacters(in: .whitespaces).isEmpty { out.append(line.trimmingCharacters(in: .whitespaces)) }
        }
        return out
    }

    func testEveryGuideCommandIsRunAndItsOptionsExist() throws {
        let guide = commands(in: try read("docs/guide.md"))
        XCTAssertGreaterThanOrEqual(guide.count, 8)
        let demo = try read("scripts/demo.sh").replacingOccurrences(of: "\"$BIN\"", with: ".build/release/adaptermix")
        let slurm = try read("cluster/slurm/test-local.sh")
        let makefile = try read("Makefile")
        for command in guide {
            let words = command.split(separator: " ").map(String.init)
            if words[0] == "make" {
                XCTAssertTrue(makefile.contains("\n\(words[1]):"), "\(command): no such Makefile target")
            } else if words[0] == ".build/release/adaptermix" {
                let sub = words[1]
                if !demo.contains(command) {
                    // Not verbatim in the demo: the demo or the Slurm test must run the same subcommand.
                    let invocation = "\(sub) \(words.count > 2 && !words[2].hasPrefix("-") ? words[2] : "")"
                    XCTAssertTrue(demo.contains(".build/release/adaptermix \(invocation)") || slurm.contains("\"$BIN\" \(invocation)"),
                                  "\(command): run neither by scripts/demo.sh nor by cluster/slurm/test-local.sh")
                }
                // Every --option it uses is one the (sub)command accepts.
                let path = words.count > 2 && !words[2].hasPrefix("-") ? [sub, words[2]] : [sub]
                let help = try CLITests.run(path + ["--help"])
                XCTAssertEqual(help.status, 0, "\(path) --help")
                for option in words where option.hasPrefix("--") {
                    XCTAssertTrue(help.stdout.contains(option), "\(command): `adaptermix \(path.joined(separator: " "))` has no \(option)")
                }
            } else if words[0].hasPrefix("cluster/slurm/") {
                XCTAssertTrue(slurm.contains(words[0].replacingOccurrences(of: "cluster/slurm/", with: "")), "\(command): not run by cluster/slurm/test-local.sh")
            } else {
                XCTFail("\(command): a command the guide test does not know how to check")
            }
        }
    }
}
