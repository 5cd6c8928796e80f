import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import XCTest

/// Scale-out (issue 23): merges of shards that prove they are whole, and every core by default.
final class ScaleOutTests: ToolTestCase {
    func fixtures() throws {
        let data = ToolFixtures.tinyImages(classes: 4, perClass: 2)
        try data.writeStream(path: path("images.ldi"), producer: "test")
        try ToolFixtures.tinyTeacher(for: data, path: path("teacher.ldm"))
    }

    func recover(_ extra: [String]) throws {
        let r = try run("ld-recover", ["--teacher", "teacher.ldm", "--ipc", "2", "--iterations", "2", "--batch-size", "2",
                                       "-q", "--threads", "1"] + extra)
        XCTAssertEqual(r.status, 0, r.err)
    }

    func train(_ data: String) throws -> Result {
        try run("ld-train", ["--data", data, "--hard", "--val", "images.ldi", "--width", "4", "--epochs", "1", "-q", "--threads", "1"])
    }

    func testRecoveredSetMergesMustBeWhole() throws {
        try fixtures()
        try recover(["--classes", "0:2", "-o", "a.ldi"])
        try recover(["--classes", "2:4", "-o", "b.ldi"])
        try recover(["--classes", "0:4", "--ipc-end", "1", "-o", "low.ldi"])
        try recover(["--classes", "0:4", "-o", "whole.ldi"])
        _ = try shell("cat a.ldi b.ldi > merged.ldi && cat b.ldi a.ldi > reversed.ldi && cat a.ldi a.ldi b.ldi > twice.ldi")
        // Whole in any order: the same set as the single run.
        for ok in ["merged.ldi", "reversed.ldi"] {
            XCTAssertEqual(try Dataset.load(path(ok)).contentHash, try Dataset.load(path("whole.ldi")).contentHash, ok)
            XCTAssertEqual(try train(ok).status, 0)
        }
        assertOneLineError(try train("a.ldi"), mentioning: "image 4 (class 2, IPC slot 0) is missing (and 3 more)")
        assertOneLineError(try train("twice.ldi"), mentioning: "image 0 (class 0, IPC slot 0) appears twice")
        assertOneLineError(try train("low.ldi"), mentioning: "image 1 (class 0, IPC slot 1) is missing")
    }

    func testDefaultThreadsFollowTheAffinityMask() throws {
        try fixtures()
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/taskset") else { throw XCTSkip("no taskset") }
        let r = try shell("taskset -c 0 ld-squeeze --data images.ldi --width 4 --depth 2 --epochs 1 -o m.ldm -v --metrics /dev/null 2>&1 | grep '^engine:'")
        XCTAssertTrue(r.stdout.contains("engine: 1 thread(s)"), r.stdout + r.err)
        let all = try shell("ld-squeeze --data images.ldi --width 4 --depth 2 --epochs 1 -o m.ldm -v --metrics /dev/null 2>&1 | grep '^engine:'")
        XCTAssertTrue(all.stdout.contains("engine: \(Engine.availableCores) thread(s)"), all.stdout + all.err)
    }
}
