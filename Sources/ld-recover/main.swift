import ArgumentParser
import Shared

struct Recover: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ld-recover",
        abstract: "Synthesise distilled images per class by BatchNorm-statistics matching (SRe2L, CDA, LPLD).",
        version: LD.version
    )

    func run() throws {
        throw LDError("not implemented yet")
    }
}

ToolMain.run(Recover.self, name: "ld-recover")
