import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDInterop
import XCTest

/// ld-squeeze --import / --export end to end: the round trip, the imported teacher in the other tools, and
/// bad input (one line on stderr, exit 1, no model file, no temporary left behind).
final class InteropToolTests: ToolTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("UnitTests/Fixtures/Interop").path

    @discardableResult
    func fixtures() throws -> Dataset {
        let data = ToolFixtures.tinyImages(classes: 4, perClass: 2)
        try data.writeStream(path: path("images.ldi"), producer: "test")
        try ToolFixtures.tinyTeacher(for: data, path: path("teacher.ldm"))
        return data
    }

    func testExportThenImportGivesTheSameTeacherEverywhere() throws {
        try fixtures()
        let export = try run("ld-squeeze", ["--export", "teacher.ldm", "-o", "teacher.safetensors"])
        XCTAssertEqual(export.status, 0, export.err)
        XCTAssertTrue(export.err.contains("convnet w4 d2") && export.err.contains("torchvision"), export.err)
        XCTAssertTrue(export.out.isEmpty)
        // the file says what it is: no flags needed to import it again
        let back = try run("ld-squeeze", ["--import", "teacher.safetensors", "-o", "back.ldm"])
        XCTAssertEqual(back.status, 0, back.err)
        XCTAssertTrue(back.err.contains("safetensors, 16 tensors: convnet w4 d2, 1x8x8 input, 4 classes"), back.err)
        let a = try ModelFile.load(path: path("teacher.ldm")), b = try ModelFile.load(path: path("back.ldm"))
        XCTAssertEqual(a.model.config, b.model.config)
        XCTAssertEqual(a.mean, b.mean); XCTAssertEqual(a.std, b.std); XCTAssertEqual(a.classNames, b.classNames)
        for (x, y) in zip(a.model.parameters, b.model.parameters) { XCTAssertEqual(x.value.array, y.value.array, x.name) }
        // --eval-only and ld-relabel give the same figures and logits with the imported teacher
        let evalA = try run("ld-squeeze", ["--eval-only", "teacher.ldm", "--val", "images.ldi"])
        let evalB = try run("ld-squeeze", ["--eval-only", "back.ldm", "--val", "images.ldi"])
        XCTAssertEqual(evalA.status, 0, evalA.err); XCTAssertEqual(evalB.status, 0, evalB.err)
        XCTAssertEqual(evalA.stdout.replacingOccurrences(of: "teacher.ldm", with: "back.ldm"), evalB.stdout)
        for teacher in ["teacher.ldm", "back.ldm"] {
            let r = try run("ld-relabel", ["--teacher", teacher, "--data", "images.ldi", "--epochs", "2", "--batch-size", "4",
                                           "--seed", "7", "--threads", "1", "-q", "-o", "\(teacher).ldl"])
            XCTAssertEqual(r.status, 0, r.err)
        }
        XCTAssertEqual(try payloads("teacher.ldm.ldl"), try payloads("back.ldm.ldl"))
        // LPLD's class statistics of an imported (pretrained) teacher
        let stats = try run("ld-squeeze", ["--import", "teacher.safetensors", "--class-stats", "--data", "images.ldi", "-o", "stats.ldm"])
        XCTAssertEqual(stats.status, 0, stats.err)
        XCTAssertTrue(stats.err.contains("class statistics of 8 images of images.ldi (exact)"), stats.err)
        let withStats = try ModelFile.load(path: path("stats.ldm"))
        XCTAssertTrue(withStats.hasClassStatistics)
        XCTAssertEqual(withStats.model.batchNorms[0].classStatistics?.count, [128, 128, 128, 128], "2 images of 8x8 per class")
    }

    func payloads(_ file: String) throws -> [[UInt8]] {
        let r = try StreamReader(path: path(file))
        var out: [[UInt8]] = []
        while let rec = try r.next() { out.append(rec.payload) }
        return out
    }

    func testImportOfATorchCheckpointPrintsTheArchitecture() throws {
        let r = try run("ld-squeeze", ["--import", InteropToolTests.fixtures + "/convnet_ckpt.pt", "--preset", "fmnist", "-o", "t.ldm"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("torch.save checkpoint, 16 tensors: convnet w8 d2, 1x28x28 input, 10 classes"), r.err)
        let file = try ModelFile.load(path: path("t.ldm"))
        XCTAssertEqual(file.classNames, Dataset.fashionMNISTClassNames)
        let names = (0..<10).map { "class \($0)" }.joined(separator: "\n")
        try names.write(toFile: path("names.txt"), atomically: true, encoding: .utf8)
        let r2 = try run("ld-squeeze", ["--import", InteropToolTests.fixtures + "/resnet18_small.pt", "--mean", "0.5,0.5,0.5",
                                        "--std", "0.25,0.25,0.25", "--class-names", "names.txt", "-o", "r.ldm", "-q"])
        XCTAssertEqual(r2.status, 0, r2.err)
        XCTAssertEqual(r2.err, "", "-q prints nothing")
        let resnet = try ModelFile.load(path: path("r.ldm"))
        XCTAssertEqual(resnet.model.config.summary, "resnet18 small")
        XCTAssertEqual(resnet.classNames[3], "class 3")
        XCTAssertEqual(resnet.std, [0.25, 0.25, 0.25])
    }

    /// The scratch folder holds only `expected` (no model file, no temporary).
    func assertOnly(_ expected: Set<String>, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir)), expected, file: file, line: line)
    }

    func testBadImportsFailWithOneLineAndWriteNothing() throws {
        // a pickle that names os.system, in a torch.save-shaped archive
        var pickle: [UInt8] = [0x80, 0x02] + Array("cos\nsystem\n".utf8) + [UInt8(ascii: "X"), 9, 0, 0, 0] + Array("touch pwn".utf8)
        pickle += [0x85, UInt8(ascii: "R"), UInt8(ascii: ".")]
        try Data(TestZip.make([("archive/data.pkl", pickle)])).write(to: URL(fileURLWithPath: path("evil.pt")))
        let pt = try Files.readFile(InteropToolTests.fixtures + "/convnet.pt")
        try Data(pt[..<(pt.count / 2)]).write(to: URL(fileURLWithPath: path("cut.pt")))
        let cases: [(args: [String], mentioning: String)] = [
            (["--import", "evil.pt", "--preset", "fmnist"], "'os.system'"),
            (["--import", "cut.pt", "--preset", "fmnist"], "truncated or damaged"),
            (["--import", InteropToolTests.fixtures + "/convnet.pt"], "no normalisation given"),
            (["--import", InteropToolTests.fixtures + "/convnet.pt", "--preset", "cifar10"], "preset cifar10 is for 3"),
            (["--import", InteropToolTests.fixtures + "/convnet.pt", "--preset", "fmnist", "--image-size", "32"], "classifier.weight"),
            (["--export", "missing.ldm"], "missing.ldm"),
        ]
        for c in cases {
            let r = try run("ld-squeeze", c.args + ["-o", c.args[0] == "--export" ? "out.safetensors" : "out.ldm"])
            assertOneLineError(r, mentioning: c.mentioning)
            XCTAssertEqual(r.status, 1, c.args.joined(separator: " "))
            try assertOnly(["evil.pt", "cut.pt"])
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("pwn")))
        // the output may not be the input
        let st = try Files.readFile(InteropToolTests.fixtures + "/convnet.safetensors")
        try Data(st).write(to: URL(fileURLWithPath: path("same.ldm")))
        let same = try run("ld-squeeze", ["--import", "same.ldm", "--preset", "fmnist", "-o", "same.ldm"])
        XCTAssertEqual(same.status, 1, same.err)
        XCTAssertEqual(same.err.split(separator: "\n").count, 1, same.err)
        XCTAssertEqual(try Files.readFile(path("same.ldm")), st, "the input is untouched")
    }

    func testConversionFlagsAreChecked() throws {
        for args in [["--import", "a.pt"], ["--import", "a.pt", "--export", "b.ldm", "-o", "x"],
                     ["--export", "b.ldm", "--preset", "imagenet", "-o", "x"], ["--import", "a.pt", "--preset", "mnist", "-o", "x"],
                     ["--import", "a.pt", "--mean", "0.5,x", "-o", "x"], ["--data", "fmnist:train", "--preset", "fmnist", "-o", "x"],
                     ["--import", "a.pt", "--class-stats", "-o", "x"], ["--import", "a.pt", "--data", "fmnist:train", "-o", "x"]] {
            let r = try run("ld-squeeze", args)
            XCTAssertEqual(r.status, 64, "\(args): \(r.err)")
        }
        // a PyTorch file name for a trained model points at the conversion; --export writes .safetensors only
        for (tool, args) in [("ld-train", ["--data", "syn/", "--hard", "-o", "student.safetensors"]),
                             ("ld-squeeze", ["--data", "fmnist:train", "-o", "teacher.pth"]),
                             ("ld-squeeze", ["--import", "a.safetensors", "-o", "b.safetensors"]),
                             ("ld-squeeze", ["--export", "a.ldm", "-o", "b.ldm"])] {
            let r = try run(tool, args, env: ["LD_PARSE_ONLY": "1"])
            XCTAssertEqual(r.status, 64, "\(args): \(r.err)")
        }
        let r = try run("ld-train", ["--data", "syn/", "--hard", "-o", "student.safetensors"], env: ["LD_PARSE_ONLY": "1"])
        XCTAssertTrue(r.err.contains("ld-squeeze --export"), r.err)
    }
}
