import XCTest

/// Every tool answers --help on stdout with exit 0, and a bad flag with a usage error (exit 64) on stderr.
final class HelpTests: ToolTestCase {
    static let tools = ["ld-squeeze", "ld-recover", "ld-relabel", "ld-prune", "ld-train"]

    func testHelpTeaches() throws {
        for tool in HelpTests.tools {
            let r = try run(tool, ["--help"])
            XCTAssertEqual(r.status, 0, tool)
            XCTAssertTrue(r.stdout.contains("USAGE: \(tool)"), "\(tool): \(r.stdout)")
            XCTAssertTrue(r.err.isEmpty, "\(tool) wrote to stderr: \(r.err)")
        }
    }

    func testUnknownFlagIsAUsageError() throws {
        for tool in HelpTests.tools {
            let r = try run(tool, ["--no-such-flag"])
            XCTAssertEqual(r.status, 64, "\(tool): \(r.err)")
            XCTAssertTrue(r.out.isEmpty, tool)
        }
    }

    func testFixturesAreDeterministic() throws {
        let data = ToolFixtures.tinyImages()
        let a = try ToolFixtures.tinyTeacher(for: data, path: path("a.ldm"))
        let b = try ToolFixtures.tinyTeacher(for: data, path: path("b.ldm"))
        XCTAssertEqual(a.hash, b.hash)
        XCTAssertTrue(a.hasClassStatistics)
    }
}
