import LDKernels
import ArgumentParser
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
            var command = try type.parseAsRoot()
            if getenv("LD_PARSE_ONLY") != nil { exit(0) }
            try command.run()
            exit(0)
        } catch let error as LDError {
            fputs("\(name): \(error.message)\n", stderr)
            exit(1)
        } catch is BrokenPipe {
            exit(0)
        } catch {
            let code = type.exitCode(for: error)
            if code == .success || error is ExitCode { type.exit(withError: error) }
            fputs("\(name): \(usageLine(type.message(for: error))) (see \(name) --help)\n", stderr)
            exit(code.rawValue)
        }
    }

    /// The first line of an argument parser message, without its "Error: " prefix.
    static func usageLine(_ message: String) -> String {
        var line = message.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? message
        if line.hasPrefix("Error: ") { line.removeFirst(7) }
        return line
    }
}
