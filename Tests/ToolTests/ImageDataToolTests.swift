import Foundation
import LDKernels
import LDData
import LDNetworks
import XCTest

/// JPEG folders of any size through the tools: packed once into an image stream (whole or in shards that
/// concatenate), a teacher trained straight from the folder at a chosen input size.
final class ImageDataToolTests: ToolTestCase {
    /// 3 classes x 3 JPEGs of assorted sizes (one gray), in nested class folders.
    func jpegFolder() throws -> String {
        let dir = path("jpegs")
        var rng = LDRandom(seed: 5, stage: .subset)
        for (c, name) in ["cat", "dog", "eel"].enumerated() {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(name)/images", withIntermediateDirectories: true)
            for k in 0..<3 {
                let (h, w) = [(20, 30), (16, 16), (41, 17)][k]
                let channels = c == 2 && k == 1 ? 1 : 3
                let px = (0..<(channels * h * w)).map { i in UInt8((i * (c + 3) + Int(rng.next() % 7)) & 255) }
                try Data(try JPEG.encode(px, channels: channels, height: h, width: w, quality: 92))
                    .write(to: URL(fileURLWithPath: "\(dir)/\(name)/images/\(k).jpg"))
            }
        }
        return dir
    }

    func testPackWholeAndShardsLoadAsTheSameSet() throws {
        let dir = try jpegFolder()
        let whole = try run("ld-prune", ["--pack", "--data", "folder:\(dir)", "--image-size", "16", "-o", "all.ldi"])
        XCTAssertEqual(whole.status, 0, whole.err)
        let set = try Dataset.load(path("all.ldi"))
        XCTAssertEqual([set.count, set.channels, set.height, set.width, set.classes], [9, 3, 16, 16, 3])
        XCTAssertEqual(set.classNames, ["cat", "dog", "eel"])
        XCTAssertTrue(set.pixels == (try Dataset.load("folder:\(dir)", imageSize: 16)).pixels, "the stream holds what the folder loads as")
        var parts = Data()
        for k in [2, 0, 1] {
            let r = try run("ld-prune", ["--pack", "--data", "folder:\(dir)", "--image-size", "16", "--shard", "\(k)/3", "-o", "part\(k).ldi", "-q"])
            XCTAssertEqual(r.status, 0, r.err)
            parts.append(try Data(contentsOf: URL(fileURLWithPath: path("part\(k).ldi"))))
        }
        try parts.write(to: URL(fileURLWithPath: path("cat.ldi")))
        let joined = try Dataset.load(path("cat.ldi"))
        XCTAssertEqual(joined.contentHash, set.contentHash, "shards concatenated in any order load as the whole set")
        let dump = try run("ld-prune", ["--dump", "all.ldi"])
        XCTAssertEqual(dump.status, 0, dump.err)
        XCTAssertEqual(dump.stdout.split(separator: "\n").count, 11, "header, 9 records, end")
        assertOneLineError(try run("ld-prune", ["--pack", "--data", "folder:\(dir)", "--shard", "3/3"]), mentioning: "--shard")
        assertOneLineError(try run("ld-prune", ["--ratio", "4", "--image-size", "16"]), mentioning: "--pack")
        // Without a size, images of several sizes are refused naming one and saying what to give.
        assertOneLineError(try run("ld-prune", ["--pack", "--data", "folder:\(dir)", "-o", "x.ldi"]), mentioning: "--image-size")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("x.ldi")))
    }

    func testTeacherTrainsStraightFromAFolderOfAnySize() throws {
        let dir = try jpegFolder()
        let r = try run("ld-squeeze", ["--data", "folder:\(dir)", "--image-size", "16", "--val", "folder:\(dir)", "--width", "8",
                                       "--epochs", "1", "--batch-size", "4", "--threads", "1", "-o", "t.ldm", "-q"])
        XCTAssertEqual(r.status, 0, r.err)
        let eval = try run("ld-squeeze", ["--eval-only", "t.ldm", "--val", "folder:\(dir)"])
        XCTAssertEqual(eval.status, 0, eval.err)
        XCTAssertTrue(eval.stdout.contains("\"images\":9"), eval.stdout)
        // RandomResizedCrop crops from the whole images (the folder stays on disk): another teacher than the
        // same recipe on the packed 16 px views.
        XCTAssertEqual(try run("ld-prune", ["--pack", "--data", "folder:\(dir)", "--image-size", "16", "-o", "p.ldi"]).status, 0)
        for (name, data) in [("whole", "folder:\(dir)"), ("views", "p.ldi")] {
            let r = try run("ld-squeeze", ["--data", data, "--image-size", "16", "--augment", "rrc", "--width", "8",
                                           "--epochs", "1", "--batch-size", "4", "--threads", "1", "-o", "\(name).ldm", "-q"])
            XCTAssertEqual(r.status, 0, r.err)
        }
        XCTAssertNotEqual(try ModelFile.load(path: path("whole.ldm")).model.parameters.map { $0.value.array },
                          try ModelFile.load(path: path("views.ldm")).model.parameters.map { $0.value.array })
    }

    /// A folder kept on disk (`--data-memory` below its decoded size) gives every tool the same results as in
    /// memory: a teacher trained from it (the same model file), its evaluation, a pack (the same stream).
    func testAFolderOnDiskGivesTheSameResultsAsInMemory() throws {
        let dir = try jpegFolder()
        for (name, extra) in [("mem", [String]()), ("disk", ["--data-memory", "1K"])] {
            let r = try run("ld-squeeze", ["--data", "folder:\(dir)", "--image-size", "16", "--val", "folder:\(dir)", "--width", "8",
                                           "--epochs", "2", "--batch-size", "4", "--threads", "1", "-o", "\(name).ldm", "-q"] + extra)
            XCTAssertEqual(r.status, 0, r.err)
            let p = try run("ld-prune", ["--pack", "--data", "folder:\(dir)", "--image-size", "16", "-o", "\(name).ldi"] + extra)
            XCTAssertEqual(p.status, 0, p.err)
        }
        // The same weights, bit for bit (the files differ in the recorded training-set identity, which for a
        // set on disk is that of its files).
        let (m, d) = (try ModelFile.load(path: path("mem.ldm")), try ModelFile.load(path: path("disk.ldm")))
        XCTAssertEqual(m.model.parameters.map { $0.value.array }, d.model.parameters.map { $0.value.array })
        XCTAssertEqual(m.model.batchNorms.map { $0.runningMean.array }, d.model.batchNorms.map { $0.runningMean.array })
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("mem.ldi"))), try Data(contentsOf: URL(fileURLWithPath: path("disk.ldi"))),
                       "the same packed stream")
        let a = try run("ld-squeeze", ["--eval-only", "mem.ldm", "--val", "folder:\(dir)"])
        let b = try run("ld-squeeze", ["--eval-only", "mem.ldm", "--val", "folder:\(dir)", "--data-memory", "1"])
        XCTAssertEqual(a.status, 0, a.err)
        XCTAssertEqual(a.stdout, b.stdout)
        assertOneLineError(try run("ld-squeeze", ["--eval-only", "mem.ldm", "--val", "folder:\(dir)", "--data-memory", "lots"]), mentioning: "--data-memory")
    }

    /// A flat validation folder and its labels file (ImageNet's LOC_val_solution.csv form) as `list:FILE:DIR`.
    func testLabelsFileOfAFlatFolder() throws {
        let dir = try jpegFolder()
        let flat = path("flat")
        try FileManager.default.createDirectory(atPath: flat, withIntermediateDirectories: true)
        var csv = "ImageId,PredictionString\n"
        for (c, name) in ["cat", "dog", "eel"].enumerated() {
            for k in 0..<3 {
                try FileManager.default.copyItem(atPath: "\(dir)/\(name)/images/\(k).jpg", toPath: "\(flat)/v\(c)\(k).jpg")
                csv += "v\(c)\(k),\(name) 1 2 3 4\n"
            }
        }
        try Data(csv.utf8).write(to: URL(fileURLWithPath: path("val.csv")))
        let r = try run("ld-prune", ["--pack", "--data", "list:val.csv:flat", "--image-size", "16", "-o", "flat.ldi"])
        XCTAssertEqual(r.status, 0, r.err)
        let a = try Dataset.load(path("flat.ldi")), b = try Dataset.load("folder:\(dir)", imageSize: 16)
        XCTAssertEqual(a.classNames, b.classNames)
        XCTAssertEqual(a.labels, b.labels)
        XCTAssertTrue(a.pixels == b.pixels, "the same images, in the same order, as the class folders")
        try Data("ImageId,PredictionString\nv00,cat\nv99,dog\n".utf8).write(to: URL(fileURLWithPath: path("bad.csv")))
        assertOneLineError(try run("ld-prune", ["--pack", "--data", "list:bad.csv:flat", "--image-size", "16", "-o", "x.ldi"]), mentioning: "v99")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("x.ldi")))
    }

    /// The evaluation transform's ratio: recorded by a pack, stored in a teacher, applied by the tools that use
    /// the model, and a set packed with another ratio refused naming both.
    func testEvalRatioTravelsWithTheModelAndMismatchesAreRefused() throws {
        let dir = try jpegFolder()
        XCTAssertEqual(try run("ld-prune", ["--pack", "--data", "folder:\(dir)", "--image-size", "16", "--eval-ratio", "0.5", "-o", "half.ldi"]).status, 0)
        XCTAssertEqual(try run("ld-prune", ["--pack", "--data", "folder:\(dir)", "--image-size", "16", "-o", "std.ldi"]).status, 0)
        XCTAssertEqual(try Dataset.load(path("half.ldi")).evalRatio, 0.5)
        XCTAssertEqual(try Dataset.load(path("std.ldi")).evalRatio, 0.875)
        XCTAssertFalse(try Dataset.load(path("half.ldi")).pixels == (try Dataset.load(path("std.ldi"))).pixels)
        let r = try run("ld-squeeze", ["--data", "folder:\(dir)", "--image-size", "16", "--eval-ratio", "0.5", "--width", "8",
                                       "--epochs", "1", "--batch-size", "4", "--threads", "1", "-o", "t.ldm", "-q"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(try ModelFile.load(path: path("t.ldm")).evalRatio, 0.5)
        // The folder is brought to 16 px with the model's ratio: the same figures as the stream packed with it.
        let a = try run("ld-squeeze", ["--eval-only", "t.ldm", "--val", "folder:\(dir)"])
        let b = try run("ld-squeeze", ["--eval-only", "t.ldm", "--val", "half.ldi"])
        XCTAssertEqual(a.status, 0, a.err)
        XCTAssertEqual(a.stdout.replacingOccurrences(of: "folder:\(dir)", with: "X"), b.stdout.replacingOccurrences(of: "half.ldi", with: "X"))
        assertOneLineError(try run("ld-squeeze", ["--eval-only", "t.ldm", "--val", "std.ldi"]), mentioning: "ratio 0.875")
        assertOneLineError(try run("ld-relabel", ["--teacher", "t.ldm", "--data", "std.ldi", "--epochs", "1", "--batch-size", "4", "-o", "l.ldl"]), mentioning: "--eval-ratio 0.5")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("l.ldl")))
        assertOneLineError(try run("ld-prune", ["--pack", "--data", "folder:\(dir)", "--image-size", "16", "--eval-ratio", "1.5"]), mentioning: "--eval-ratio")
        // A teacher with the default ratio writes no eval_ratio (model files made before it keep their bytes).
        XCTAssertEqual(try run("ld-squeeze", ["--data", "std.ldi", "--width", "8", "--epochs", "1", "--batch-size", "4", "--threads", "1", "-o", "s.ldm", "-q"]).status, 0)
        XCTAssertFalse(String(decoding: try Data(contentsOf: URL(fileURLWithPath: path("s.ldm"))).prefix(4096), as: UTF8.self).contains("eval_ratio"))
    }
}
