import ArgumentParser
import Shared

struct Relabel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ld-relabel",
        abstract: "Write FKD-style soft labels: per epoch and batch, the augmentation parameters and the teacher's logits.",
        version: LD.version
    )

    func run() throws {
        throw LDError("not implemented yet")
    }
}

ToolMain.run(Relabel.self, name: "ld-relabel")
