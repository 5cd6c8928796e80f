import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import XCTest

/// Fashion-MNIST must be installed for the golden and fmnist-based tests (Debian's dataset-fashion-mnist).
private func requireFashionMNIST() throws {
    let dir = DatasetSpec.fashionMNISTDefaultDirectory
    let ok = ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"].contains { FileManager.default.fileExists(atPath: dir + "/" + $0) }
    if !ok { throw XCTSkip("Fashion-MNIST not installed in \(dir)") }
}

/// The tiny golden run: convnet width 8 depth 2, 2 epochs on the first 200 images of fmnist:train (random crop
/// with padding 2 + flip), seed 1, one thread, validation on the first 200 test images, class statistics and
/// scores.
private let goldenArgs = ["--data", "fmnist:train", "--limit", "200", "--val", "fmnist:test", "--val-limit", "200",
                          "--model", "convnet", "--width", "8", "--depth", "2", "--epochs", "2", "--batch-size", "32", "--crop-padding", "2",
                          "--seed", "1", "--threads", "1", "-q", "--class-stats", "--scores", "scores.lds",
                          "--metrics", "metrics.ndjson", "-o", "teacher.ldm"]

/// Golden files: `make golden-update` (LD_GOLDEN_UPDATE=1) rewrites Tests/Golden/ld-squeeze/*.
final class SqueezeGoldenTests: ToolTestCase {
    func testTinyTeacherMatchesGolden() throws {
        try requireFashionMNIST()
        // GEMM results depend on the OpenBLAS kernel family (summation order), so the golden run pins the
        // portable SSE3 one: the same bytes on any x86-64 machine, whatever OPENBLAS_CORETYPE the caller exports.
        let r = try run("ld-squeeze", goldenArgs, env: ["OPENBLAS_CORETYPE": "Prescott"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.isEmpty)
        // Metrics hold no wall-clock time (timings go to stderr only), so they compare byte for byte.
        try assertGoldenFile(path("teacher.ldm"), "ld-squeeze", "teacher.ldm")
        try assertGoldenFile(path("metrics.ndjson"), "ld-squeeze", "metrics.ndjson")
        try assertGoldenFile(path("scores.lds"), "ld-squeeze", "scores.lds")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("teacher.ldm.ckpt")), "checkpoint left after success")
    }
}

final class SqueezeToolTests: ToolTestCase {
    /// A tiny image stream for quick runs (2 classes of 10 8x8 images).
    private func tinyStream(_ name: String = "tiny.ldi", channels: Int = 1, classes: Int = 2, emptyClass: Bool = false) throws -> String {
        var d = ToolFixtures.tinyImages(classes: classes, perClass: 10)
        if channels != 1 {
            d = Dataset(pixels: d.pixels.flatMap { [UInt8](repeating: $0, count: channels) }, labels: d.labels, classes: d.classes,
                        channels: channels, height: d.height, width: d.width, mean: [Float](repeating: 0.5, count: channels),
                        std: [Float](repeating: 0.3, count: channels), classNames: d.classNames, source: "tiny")
        }
        if emptyClass {
            d = Dataset(pixels: d.pixels, labels: d.labels, classes: classes + 1, channels: d.channels, height: d.height,
                        width: d.width, mean: d.mean, std: d.std, classNames: d.classNames + ["never"], source: "tiny")
        }
        try d.writeStream(path: path(name), producer: "test")
        return name
    }

    private let tinyArgs = ["--width", "4", "--depth", "2", "--epochs", "2", "--batch-size", "8", "--threads", "1", "-q"]

    private func files() -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] }

    func testTrainsEvaluatesAndWritesOutputs() throws {
        let data = try tinyStream()
        let r = try run("ld-squeeze", ["--data", data, "--val", data, "-o", "t.ldm", "--scores", "s.lds", "--class-stats"] + tinyArgs)
        XCTAssertEqual(r.status, 0, r.err)
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[1].contains("\"epoch\":2") && lines[1].contains("val_top1"), String(lines[1]))
        let file = try ModelFile.load(path: path("t.ldm"))
        XCTAssertTrue(file.hasClassStatistics)
        XCTAssertEqual(file.classNames, ["c0", "c1"])
        XCTAssertEqual(file.info["epochs"], .int(2))
        XCTAssertNotNil(file.info["val_top1"])
        let e = try run("ld-squeeze", ["--eval-only", "t.ldm", "--val", data, "--threads", "1"])
        XCTAssertEqual(e.status, 0, e.err)
        XCTAssertTrue(e.stdout.hasPrefix("{") && e.stdout.contains("\"top1\"") && e.stdout.contains("\"top5\""), e.stdout)
        XCTAssertEqual(Set(files()), Set([data, "t.ldm", "s.lds"]))
    }

    /// An interrupted run (the test hook stands for Ctrl-C) writes a checkpoint, exits 130 with one line naming
    /// --resume; resuming gives the same model file and metrics as an uninterrupted run.
    func testInterruptAndResumeMatchUninterruptedRun() throws {
        let data = try tinyStream()
        let args = ["--data", data, "--val", data, "--scores", "s.lds", "--epochs", "3", "--width", "4", "--depth", "2",
                    "--batch-size", "8", "--threads", "1", "-q"]
        let whole = try run("ld-squeeze", args + ["-o", "whole.ldm", "--metrics", "whole.ndjson"])
        XCTAssertEqual(whole.status, 0, whole.err)
        try FileManager.default.moveItem(atPath: path("s.lds"), toPath: path("whole.lds"))

        let cut = try run("ld-squeeze", args + ["-o", "cut.ldm", "--metrics", "cut.ndjson"], env: ["LD_SQUEEZE_STOP_AFTER_STEPS": "4"])
        XCTAssertEqual(cut.status, 130, cut.err)
        XCTAssertEqual(cut.err.split(separator: "\n").count, 1, cut.err)
        XCTAssertTrue(cut.err.contains("--resume"), cut.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("cut.ldm.ckpt")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("cut.ldm")))
        XCTAssertFalse(files().contains { $0.contains(".tmp-") }, "\(files())")

        // A different flag is refused.
        let bad = try run("ld-squeeze", args + ["-o", "cut.ldm", "--metrics", "cut.ndjson", "--resume", "--lr", "0.2"])
        assertOneLineError(bad, mentioning: "other settings")

        let resumed = try run("ld-squeeze", args + ["-o", "cut.ldm", "--metrics", "cut.ndjson", "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertEqual(FileManager.default.contents(atPath: path("cut.ldm")), FileManager.default.contents(atPath: path("whole.ldm")))
        XCTAssertEqual(FileManager.default.contents(atPath: path("cut.ndjson")), FileManager.default.contents(atPath: path("whole.ndjson")))
        XCTAssertEqual(FileManager.default.contents(atPath: path("s.lds")), FileManager.default.contents(atPath: path("whole.lds")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("cut.ldm.ckpt")))
    }

    func testBadInputOneLineAndNoFileLeft() throws {
        let data = try tinyStream()
        let rgb = try tinyStream("rgb.ldi", channels: 3)
        let three = try tinyStream("three.ldi", classes: 3)
        let empty = try tinyStream("empty.ldi", emptyClass: true)
        let before = Set(files())
        let cases: [([String], String)] = [
            (["--data", data, "--model", "vgg"], "'vgg' is invalid for '--model"),
            (["--data", "nosuch:thing"], "nosuch"),
            (["--data", "missing.ldi"], "missing.ldi"),
            (["--data", data, "--val", rgb], "3x8x8"),
            (["--data", data, "--val", three], "3 classes"),
            (["--data", empty], "no training images"),
            (["--data", data, "--lr", "nan"], "--lr"),
            (["--data", data, "--optimizer", "lbfgs"], "--optimizer"),
            (["--data", data, "--warmup-epochs", "2"], "--warmup-epochs"),
            (["--data", data, "--class-stats-mode", "median"], "--class-stats-mode"),
            (["--data", data, "--lr", "1e12"], "try a lower --lr"),
        ]
        for (args, mention) in cases {
            let r = try run("ld-squeeze", args + ["-o", "out.ldm"] + tinyArgs)
            assertOneLineError(r, mentioning: mention)
            XCTAssertEqual(Set(files()).subtracting(["out.ldm.ckpt"]), before, "\(args)")
            try? FileManager.default.removeItem(atPath: path("out.ldm.ckpt"))
        }
        try ToolFixtures.tinyTeacher(for: ToolFixtures.tinyImages(), path: path("teacher.ldm"))
        let mismatch = try run("ld-squeeze", ["--eval-only", "teacher.ldm", "--val", rgb])
        assertOneLineError(mismatch, mentioning: "3x8x8")
        try FileManager.default.removeItem(atPath: path("teacher.ldm"))
        let unwritable = try run("ld-squeeze", ["--data", data, "-o", "no/such/folder/t.ldm"] + tinyArgs)
        assertOneLineError(unwritable, mentioning: "no/such/folder/t.ldm")
        let badScores = try run("ld-squeeze", ["--data", data, "-o", "t.ldm", "--scores", "no/such/s.lds"] + tinyArgs)
        assertOneLineError(badScores, mentioning: "no/such/s.lds")
        XCTAssertEqual(Set(files()), before)
    }

    func testUsageErrors() throws {
        XCTAssertEqual(try run("ld-squeeze", ["--data", "x"]).status, 64)                // no -o
        XCTAssertEqual(try run("ld-squeeze", ["--eval-only", "m.ldm"]).status, 64)       // no --val
        XCTAssertEqual(try run("ld-squeeze", ["--data", "x", "-o", "t", "--limit", "0"]).status, 64)
    }
}
