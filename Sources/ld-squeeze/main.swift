import ArgumentParser
import Shared

struct Squeeze: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ld-squeeze",
        abstract: "Train and evaluate a teacher; store per-class BatchNorm statistics and per-example training-dynamics scores.",
        version: LD.version
    )

    func run() throws {
        throw LDError("not implemented yet")
    }
}

ToolMain.run(Squeeze.self, name: "ld-squeeze")
