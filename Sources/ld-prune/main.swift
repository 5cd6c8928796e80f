import ArgumentParser
import Shared

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ld-prune",
        abstract: "Filter record streams: prune label batches at a ratio, select image subsets by score, dump any stream as NDJSON.",
        version: LD.version
    )

    func run() throws {
        throw LDError("not implemented yet")
    }
}

ToolMain.run(Prune.self, name: "ld-prune")
