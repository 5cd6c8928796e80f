import Foundation
import LDKernels
import LDData
import LDNetworks
import XCTest

/// A model and data whose class orders differ: remapped by name and said on stderr, never silently wrong;
/// different names refused naming the first; `--class-map` pairs them explicitly.
final class ClassOrderTests: ToolTestCase {
    /// 8 images of 4 classes, the tiny teacher for them, and the same images with the class list reversed
    /// (class k of the reversed set is class 3 - k of the teacher: same images, same names, other order).
    func fixtures() throws -> Dataset {
        let data = ToolFixtures.tinyImages(classes: 4, perClass: 2)
        try data.writeStream(path: path("images.ldi"), producer: "test")
        _ = try ToolFixtures.tinyTeacher(for: data, path: path("teacher.ldm"))
        var reversed = data
        reversed.classNames = data.classNames.reversed()
        reversed.labels = data.labels.map { 3 - $0 }
        try reversed.writeStream(path: path("reversed.ldi"), producer: "test")
        return data
    }

    func top1(_ r: Result) -> String? {
        r.stdout.split(separator: ",").first { $0.contains("\"top1\"") }.map(String.init)
    }

    func testReorderedClassesAreRemappedByNameAndSaid() throws {
        try fixtures()
        let same = try run("ld-squeeze", ["--eval-only", "teacher.ldm", "--val", "images.ldi"])
        let reordered = try run("ld-squeeze", ["--eval-only", "teacher.ldm", "--val", "reversed.ldi"])
        XCTAssertEqual(same.status, 0, same.err)
        XCTAssertEqual(reordered.status, 0, reordered.err)
        XCTAssertNotNil(top1(same))
        XCTAssertEqual(top1(same), top1(reordered), "the same accuracy: each image's class means the same thing")
        XCTAssertFalse(same.err.contains("remapped"), same.err)
        XCTAssertTrue(reordered.err.contains("in another order: remapped by name"), reordered.err)
        // ld-relabel says so too (its labels are the teacher's, in the teacher's order, whatever the images').
        let relabel = try run("ld-relabel", ["--teacher", "teacher.ldm", "--data", "reversed.ldi", "--epochs", "1",
                                             "--batch-size", "4", "--threads", "1", "-o", "r.ldl"])
        XCTAssertEqual(relabel.status, 0, relabel.err)
        XCTAssertTrue(relabel.err.contains("remapped by name"), relabel.err)
    }

    func testDifferentNamesAreRefusedAndAClassMapPairsThem() throws {
        let data = try fixtures()
        var renamed = data
        renamed.classNames = ["n01", "n02", "n03", "n04"]
        try renamed.writeStream(path: path("wnids.ldi"), producer: "test")
        let r = try run("ld-squeeze", ["--eval-only", "teacher.ldm", "--val", "wnids.ldi"])
        assertOneLineError(r, mentioning: "class 0 is 'n01', which the model does not have (its class 0 is '\(data.classNames[0])')")
        XCTAssertTrue(r.err.contains("--class-map"), r.err)
        // The map: wnids to the teacher's names or indices, in another order than the files'.
        let map = "# wnid -> model class\nn04 3\nn02 \(data.classNames[1])\nn01 0\nn03 2\n"
        try Data(map.utf8).write(to: URL(fileURLWithPath: path("map.txt")))
        let mapped = try run("ld-squeeze", ["--eval-only", "teacher.ldm", "--val", "wnids.ldi", "--class-map", "map.txt"])
        let same = try run("ld-squeeze", ["--eval-only", "teacher.ldm", "--val", "images.ldi"])
        XCTAssertEqual(mapped.status, 0, mapped.err)
        XCTAssertEqual(top1(mapped), top1(same))
        try Data("n01 0\nn02 1\n".utf8).write(to: URL(fileURLWithPath: path("short.txt")))
        assertOneLineError(try run("ld-squeeze", ["--eval-only", "teacher.ldm", "--val", "wnids.ldi", "--class-map", "short.txt"]),
                           mentioning: "class 'n03'")
        try Data("n01 0 extra\n".utf8).write(to: URL(fileURLWithPath: path("bad.txt")))
        assertOneLineError(try run("ld-squeeze", ["--eval-only", "teacher.ldm", "--val", "wnids.ldi", "--class-map", "bad.txt"]),
                           mentioning: "line 1 has 3 fields")
        // ld-train with a teacher: the same refusal.
        assertOneLineError(try run("ld-train", ["--data", "wnids.ldi", "--teacher", "teacher.ldm", "--val", "images.ldi",
                                                "--epochs", "1", "-q"]), mentioning: "'n01'")
    }

    /// A student trained on one class order is evaluated on a --val set listing them in another: remapped.
    func testStudentValidationSetIsAlignedToItsData() throws {
        try fixtures()
        let args = ["--hard", "--epochs", "2", "--batch-size", "4", "--threads", "1", "--seed", "3", "--eval-every", "0"]
        let same = try run("ld-train", ["--data", "images.ldi", "--val", "images.ldi"] + args)
        let reordered = try run("ld-train", ["--data", "images.ldi", "--val", "reversed.ldi"] + args)
        XCTAssertEqual(same.status, 0, same.err)
        XCTAssertEqual(reordered.status, 0, reordered.err)
        func lastTop1(_ r: Result) -> String? {
            r.stdout.split(separator: "\n").last?.split(separator: ",").first { $0.contains("last_top1") }.map(String.init)
        }
        XCTAssertNotNil(lastTop1(same), same.stdout)
        XCTAssertEqual(lastTop1(same), lastTop1(reordered))
        XCTAssertTrue(reordered.err.contains("remapped by name"), reordered.err)
    }
}

/// Models without BatchNorm (the vision transformer): soft labels and students yes, recovery no.
final class NoBatchNormToolTests: ToolTestCase {
    func testRecoverAndClassStatisticsRefuseAModelWithoutBatchNorm() throws {
        let data = ToolFixtures.tinyImages(classes: 4, perClass: 2, size: 16)
        try data.writeStream(path: path("images.ldi"), producer: "test")
        var rng = LDRandom(seed: 1, stage: .weightInit)
        let config = try ModelConfig.named("vit-tiny", width: 64, depth: 3, stem: "small", channels: 1, imageSize: 16, classes: 4)
        var file = ModelFile(model: try Model(config, rng: &rng), mean: data.mean, std: data.std, classNames: data.classNames)
        try file.save(path: path("vit.ldm"), producer: "test")
        let r = try run("ld-recover", ["--teacher", "vit.ldm", "--ipc", "1", "--iterations", "2", "-o", "syn.ldi"])
        assertOneLineError(r, mentioning: "no BatchNorm layers")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("syn.ldi")))
        // as a teacher of soft labels it works
        let relabel = try run("ld-relabel", ["--teacher", "vit.ldm", "--data", "images.ldi", "--epochs", "1", "--batch-size", "4",
                                             "--threads", "1", "-o", "l.ldl", "-q"])
        XCTAssertEqual(relabel.status, 0, relabel.err)
        assertOneLineError(try run("ld-squeeze", ["--data", "images.ldi", "--model", "vit-tiny", "--epochs", "1", "--class-stats",
                                                  "-o", "t.ldm"]), mentioning: "no BatchNorm")
    }
}
