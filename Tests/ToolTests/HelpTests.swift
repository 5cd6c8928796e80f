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

/// One vocabulary: the same flag for the same thing in every tool, every choice an enumeration.
final class VocabularyTests: ToolTestCase {
    func testSharedFlags() throws {
        for tool in HelpTests.tools {
            let help = try run(tool, ["--help"]).stdout
            for flag in ["--seed", "--threads", "--quiet", "--verbose"] {
                XCTAssertTrue(help.contains(flag), "\(tool) --help lacks \(flag)")
            }
            XCTAssertFalse(help.contains("--images"), "\(tool): the image set is --data everywhere")
            XCTAssertFalse(help.contains("--compress"), "\(tool): compression is --zstd everywhere")
            XCTAssertFalse(help.contains("--stream"), "\(tool): -o names the output stream everywhere")
        }
        for tool in ["ld-squeeze", "ld-recover", "ld-relabel", "ld-prune", "ld-train"] {
            XCTAssertTrue(try run(tool, ["--help"]).stdout.contains("--data") || tool == "ld-recover", tool)
        }
    }

    func testChoicesAreListedAndCheckedAtParse() throws {
        let train = try run("ld-train", ["--help"]).stdout
        for value in ["lpld", "rethinkdc-hard", "cutmix", "mixup", "with-replacement", "convnet", "resnet18"] {
            XCTAssertTrue(train.contains(value), "ld-train --help lists \(value)")
        }
        // A wrong choice is a usage error (64) in every tool, before anything is loaded.
        let vgg = try run("ld-squeeze", ["--data", "x", "-o", "m.ldm", "--model", "vgg"])
        XCTAssertEqual(vgg.status, 64)
        assertOneLineError(vgg, mentioning: "convnet")
        XCTAssertEqual(try run("ld-train", ["--data", "x", "--val", "x", "--hard", "--model", "vgg"]).status, 64)
        XCTAssertEqual(try run("ld-recover", ["--teacher", "t.ldm", "--png", "o", "--method", "foo"]).status, 64)
        XCTAssertEqual(try run("ld-relabel", ["--teacher", "t.ldm", "--data", "x", "--batch-size", "4", "--mix", "foo"]).status, 64)
        XCTAssertEqual(try run("ld-prune", ["--ratio", "4", "--rule", "foo"]).status, 64)
        XCTAssertEqual(try run("ld-train", ["--data", "x", "--val", "x", "--hard", "--crop-scale", "0.5"]).status, 64)
    }

    func testOneDefaultWidthAndSeed() throws {
        for tool in ["ld-squeeze", "ld-train"] {
            let help = try run(tool, ["--help"]).stdout
            XCTAssertTrue(help.contains("--width <width>") && help.contains("(default: 64)"), "\(tool): ConvNet width 64")
        }
        for tool in HelpTests.tools {
            let help = try run(tool, ["--help"]).stdout
            let seedLine = help.split(separator: "\n").first { $0.contains("--seed") } ?? ""
            XCTAssertTrue(seedLine.contains("(default: 0)") || help.contains("--seed <seed>"), "\(tool): \(seedLine)")
        }
    }
}
