import LDKernels
import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Entry point shared by the five tools: parse, run, and map every failure to one line on stderr and a
/// non-zero exit status that `set -o pipefail` can trust.
///
/// - usage mistakes (a bad flag or value, `ValidationError`): `tool: message (see tool --help)`, exit 64;
/// - `LDError`: `tool: message`, exit 1;
/// - a closed downstream (`| head`): exit 0, quietly;
/// - help and version requests: their text on stdout, exit 0.
///
/// With `LD_PARSE_ONLY=1` in the environment a tool parses and validates its command line and exits 0
/// without running it (the tests check every documented command line this way).
public enum ToolMain {
    public static func run<C: ParsableCommand>(_ type: C.Type, name: String) -> Never {
        // A closed downstream (`| head`) must end the run quietly, not kill it mid-write with SIGPIPE:
        // writes then fail with EPIPE, which the stream writer turns into a clean exit.
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try type.parseAsRoot(joiningNegativeValues(Array(CommandLine.arguments.dropFirst())))
            if getenv("LD_PARSE_ONLY") != nil { exit(0) }
            try command.run()
            exit(0)
        } catch let error as LDError {
            fputs("\(name): \(oneLine(error.message))\n", stderr)
            exit(1)
        } catch is BrokenPipe {
            exit(0)
        } catch {
            let code = type.exitCode(for: error)
            if code == .success || error is ExitCode { type.exit(withError: error) }
            fputs("\(name): \(oneLine(usageLine(type.message(for: error)))) (see \(name) --help)\n", stderr)
            exit(code.rawValue)
        }
    }

    /// The longest message printed, in characters: a forged file can put megabytes into a field that an
    /// error quotes; the middle of a longer message is cut.
    public static let messageLimit = 400

    /// `message` on one line (line breaks become "; ") and at most `messageLimit` characters.
    public static func oneLine(_ message: String) -> String {
        var s = message.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: "; ")
        s = String(s.unicodeScalars.map { $0.value < 32 || $0.value == 127 ? " " : Character($0) })
        guard s.count > messageLimit else { return s }
        let head = s.prefix(messageLimit * 2 / 3), tail = s.suffix(messageLimit / 4)
        return "\(head) ... (\(s.count - head.count - tail.count) characters cut) ... \(tail)"
    }

    /// `--flag -1` becomes `--flag=-1`: a negative number after an option is that option's value (the
    /// argument parser would otherwise read it as a flag and report a missing value), so the option's own
    /// check can name the problem ("--ipc must be at least 1, got -1").
    static func joiningNegativeValues(_ args: [String]) -> [String] {
        var out: [String] = []
        var i = 0
        while i < args.count {
            let a = args[i]
            if a == "--" { out += args[i...]; break }
            if a.hasPrefix("--"), !a.contains("="), i + 1 < args.count, isNegativeNumber(args[i + 1]) {
                out.append(a + "=" + args[i + 1])
                i += 2
                continue
            }
            out.append(a)
            i += 1
        }
        return out
    }

    /// `-1`, `-0.5`, `-1:5`: a value that starts with a minus and a digit (no tool has a flag like that).
    static func isNegativeNumber(_ s: String) -> Bool {
        let u = Array(s.utf8)
        return u.count > 1 && u[0] == UInt8(ascii: "-") && ((u[1] >= 48 && u[1] <= 57) || u[1] == UInt8(ascii: "."))
    }

    /// An argument parser message without its "Error: " prefix and the usage and help lines it appends;
    /// a list of allowed values stays (on one line after `oneLine`).
    static func usageLine(_ message: String) -> String {
        var kept: [String] = []
        for line in message.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.hasPrefix("Usage:") || t.hasPrefix("See '") || t.hasPrefix("Help:") { break }
            kept.append(t.hasPrefix("- ") ? String(t.dropFirst(2)) : t)
        }
        // "Please provide one of the following:" and the values one per line: one line, values by commas.
        if let k = kept.firstIndex(where: { $0.hasSuffix(":") }), k + 1 < kept.count {
            kept = Array(kept[..<k]) + [kept[k] + " " + kept[(k + 1)...].joined(separator: ", ")]
        }
        var line = kept.isEmpty ? message : kept.joined(separator: "\n")
        if line.hasPrefix("Error: ") { line.removeFirst(7) }
        return line
    }
}
