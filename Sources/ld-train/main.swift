import ArgumentParser
import Shared

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ld-train",
        abstract: "Train a student on a (distilled) image set with replayed, online or hard labels; evaluate on real data.",
        version: LD.version
    )

    func run() throws {
        throw LDError("not implemented yet")
    }
}

ToolMain.run(Train.self, name: "ld-train")
