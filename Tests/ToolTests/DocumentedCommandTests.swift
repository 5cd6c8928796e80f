import Foundation
import XCTest

/// Every command line the README's code blocks and the tools' `--help` examples show is parsed by that
/// tool's own argument parser (`LD_PARSE_ONLY=1`: parse and validate, run nothing), so a renamed or removed
/// flag fails here rather than in a user's shell.
final class DocumentedCommandTests: ToolTestCase {
    static let readme: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)) ?? ""
    }()

    func testReadmeCommandLinesParse() throws {
        var blocks: [String] = [], inside = false, current = ""
        for line in DocumentedCommandTests.readme.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") {
                if inside { blocks.append(current); current = "" }
                inside.toggle()
            } else if inside {
                current += line + "\n"
            }
        }
        let commands = blocks.flatMap(DocumentedCommandTests.commands(in:))
        XCTAssertGreaterThanOrEqual(commands.count, 10, "the README's command lines were not found")
        try check(commands, source: "README.md")
    }

    func testHelpExamplesParse() throws {
        var total = 0
        for tool in HelpTests.tools {
            let help = try run(tool, ["--help"]).stdout
            guard let examples = help.range(of: "Examples") else { XCTFail("\(tool) --help has no examples"); continue }
            var section = String(help[examples.upperBound...])
            if let usage = section.range(of: "\nUSAGE:") { section = String(section[..<usage.lowerBound]) }
            let commands = DocumentedCommandTests.commands(in: section)
            XCTAssertFalse(commands.filter { $0.tool == tool }.isEmpty, "\(tool) --help shows no example of itself")
            total += commands.count
            try check(commands, source: "\(tool) --help")
        }
        XCTAssertGreaterThan(total, 15)
    }

    /// The parse check fails for a flag that does not exist (what the two tests above rely on).
    func testARemovedFlagFails() throws {
        let bad = DocumentedCommandTests.commands(in: "ld-train --data syn/ --val fmnist:test --hard --no-such-flag 3\n")
        XCTAssertEqual(bad.count, 1)
        let r = try run(bad[0].tool, bad[0].args, env: ["LD_PARSE_ONLY": "1"])
        XCTAssertEqual(r.status, 64)
    }

    func check(_ commands: [(tool: String, args: [String])], source: String) throws {
        for c in commands {
            // Commands that read a label stream from a pipe are parsed as if one were there.
            let r = try run(c.tool, c.args, stdinPath: "/dev/null", env: ["LD_PARSE_ONLY": "1"])
            XCTAssertEqual(r.status, 0, "\(source): `\(c.tool) \(c.args.joined(separator: " "))`: \(r.err)")
        }
    }

    /// The ld tool invocations in shell text: continuation lines joined; each `ld-*` word starts a command
    /// that runs to the next pipe, quote, redirection, `;` or end of line; shell arithmetic and placeholders
    /// (`$((...))`, `{}`, `$k`) become numbers; a command with `...` (arguments elided) is skipped.
    static func commands(in text: String) -> [(tool: String, args: [String])] {
        let joined = text.replacingOccurrences(of: "\\\n", with: " ")
        var out: [(String, [String])] = []
        for line in joined.split(separator: "\n") {
            var rest = Substring(line)
            while let r = rest.range(of: #"(^|[\s'"(|])ld-(squeeze|recover|relabel|prune|train)\b"#, options: .regularExpression) {
                let start = rest[r].first == "l" ? r.lowerBound : rest.index(after: r.lowerBound)
                var command = String(rest[start...])
                for stop in ["|", "'", "\"", ";", ">", "<", "&&", "#"] {
                    if let s = command.range(of: stop) { command = String(command[..<s.lowerBound]) }
                }
                rest = rest[r.upperBound...]
                command = command.replacingOccurrences(of: #"\$\(\([^)]*\)\)"#, with: "2", options: .regularExpression)
                command = command.replacingOccurrences(of: "{}", with: "0")
                command = command.replacingOccurrences(of: #"\$\w+"#, with: "0", options: .regularExpression)
                let words = command.split(separator: " ").map(String.init)
                guard let tool = words.first, !words.contains("...") else { continue }
                out.append((tool, Array(words.dropFirst())))
            }
        }
        return out
    }
}
