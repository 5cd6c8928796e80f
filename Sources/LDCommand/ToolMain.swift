import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// Entry point shared by the five tools: parse, run, and map every failure to one line on stderr and a
/// non-zero exit status that `set -o pipefail` can trust.
///
/// - usage mistakes (ArgumentParser's `ValidationError`): usage text and exit 64;
/// - `LDError`: `tool: message`, exit 1;
/// - help and version requests: exit 0.
public enum ToolMain {
    public static func run<C: ParsableCommand>(_ type: C.Type, name: String) -> Never {
        // A closed downstream (`| head`) must end the run quietly, not kill it mid-write with SIGPIPE:
        // writes then fail with EPIPE, which the stream writer turns into a clean exit.
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try type.parseAsRoot()
            try command.run()
            exit(0)
        } catch let error as LDError {
            fputs("\(name): \(error.message)\n", stderr)
            exit(1)
        } catch let error as BrokenPipe {
            _ = error
            exit(0)
        } catch {
            type.exit(withError: error)
        }
    }
}
