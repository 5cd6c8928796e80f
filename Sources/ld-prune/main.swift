import ArgumentParser
import Shared

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ld-prune",
        abstract: "Filter record streams: prune label batches at a ratio, select image subsets by score, dump any stream as NDJSON.",
        version: LD.version
    )

    @Flag(name: .long, help: "Print the input streams as NDJSON on stdout (one line per header, record and end).")
    var dump = false

    @Argument(help: "Input streams (`-` is stdin, the default); concatenated streams are read back to back.")
    var inputs: [String] = []

    func run() throws {
        if dump {
            try StreamDump.run(paths: inputs.isEmpty ? ["-"] : inputs)
            return
        }
        throw LDError("not implemented yet")
    }
}

ToolMain.run(Prune.self, name: "ld-prune")
