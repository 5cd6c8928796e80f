import Foundation
import XCTest
import LDKernels
import LDData

/// torchvision's evaluation transform and PIL's bilinear resampling; image folders of any size brought to
/// a model's input size; Tiny-ImageNet's layouts.
final class TransformTests: XCTestCase {
    func expected() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: JPEGTests.fixtures + "/expected.json"))) as! [String: Any]
    }

    func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "ld-transform-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// Resize(int(S/0.875)) + CenterCrop(S) as torchvision defines them: the shorter side to the target, the
    /// longer truncated; crop offsets rounded half to even (Python's round).
    func testEvalTransformGeometryIsTorchvisions() {
        let imagenet = EvalTransform(size: 224)
        XCTAssertEqual(imagenet.resizeTo, 256)
        XCTAssertTrue(imagenet.resized(height: 375, width: 500) == (256, 341))
        XCTAssertTrue(imagenet.cropOrigin(height: 375, width: 500) == (16, 58), "(341 - 224) / 2 = 58.5 rounds to 58")
        XCTAssertTrue(imagenet.resized(height: 500, width: 333) == (384, 256))
        XCTAssertTrue(imagenet.cropOrigin(height: 500, width: 333) == (80, 16))
        XCTAssertEqual(EvalTransform(size: 64).resizeTo, 73)
        XCTAssertEqual(EvalTransform(size: 32).resizeTo, 36)
        // extreme aspect ratio, odd sizes
        let tiny = EvalTransform(size: 32)
        XCTAssertTrue(tiny.resized(height: 10, width: 1000) == (36, 3600))
        XCTAssertTrue(tiny.cropOrigin(height: 10, width: 1000) == (2, 1784))
        XCTAssertTrue(tiny.resized(height: 1001, width: 7) == (5148, 36))
        XCTAssertTrue(tiny.cropOrigin(height: 1001, width: 7) == (2558, 2))
        XCTAssertTrue(EvalTransform(size: 8).cropOrigin(height: 17, width: 23) == (0, 2), "(12 - 8) / 2, (9 - 8) / 2 = 0.5 -> 0")
    }

    /// PIL's antialiased bilinear resize (down by 2-3x) and torchvision's Resize + CenterCrop on a decoded JPEG:
    /// at most one level apart (PIL rounds in fixed point).
    func testResamplingMatchesPIL() throws {
        let e = try expected()
        let src = try JPEG.decode(try Files.readFile(JPEGTests.fixtures + "/rgb420.jpg"))
        func compare(_ key: String, h: Int, w: Int, _ run: (UnsafePointer<UInt8>, UnsafeMutablePointer<UInt8>) -> Void) {
            var out = [UInt8](repeating: 0, count: 3 * h * w)
            src.pixels.withUnsafeBufferPointer { s in out.withUnsafeMutableBufferPointer { run(s.baseAddress!, $0.baseAddress!) } }
            let want = (e[key] as! [Int]).map { UInt8($0) }
            XCTAssertEqual(want.count, out.count, key)
            let diffs = zip(out, want).map { abs(Int($0) - Int($1)) }
            XCTAssertLessThanOrEqual(diffs.max() ?? 99, 1, key)
            XCTAssertLessThan(Double(diffs.filter { $0 > 0 }.count) / Double(diffs.count), 0.1, "\(key): pixels off by one")
        }
        for (key, h, w) in [("resize_11x8", 8, 11), ("resize_40x30", 30, 40)] {
            compare(key, h: h, w: w) { s, d in
                Resample.resize(s, channels: 3, height: 17, width: 23, box: (0, 0, 23, 17), outH: h, outW: w, into: d)
            }
        }
        compare("eval_8", h: 8, w: 8) { s, d in EvalTransform(size: 8).apply(s, channels: 3, height: 17, width: 23, into: d) }
    }

    /// A folder of several sizes: without the model's size it is refused naming the odd file; with it, images
    /// of that size are kept as they are and others go through the evaluation transform. Class folders nest
    /// (Tiny-ImageNet's train/CLASS/images/), and Tiny-ImageNet's val layout is read by its annotations.
    func testFoldersOfAnySizeAndTinyImageNetLayouts() throws {
        let dir = try tempDir()
        let fm = FileManager.default
        for d in ["train/n02/images", "train/n01/images", "val/images"] { try fm.createDirectory(atPath: "\(dir)/\(d)", withIntermediateDirectories: true) }
        func write(_ path: String, h: Int, w: Int, value: UInt8) throws {
            var px = [UInt8](repeating: value, count: 3 * h * w)
            for i in 0..<(h * w) { px[i] = UInt8((i * 3) & 255) }
            try Data(try JPEG.encode(px, channels: 3, height: h, width: w, quality: 95)).write(to: URL(fileURLWithPath: "\(dir)/\(path)"))
        }
        try write("train/n01/images/a.JPEG", h: 8, w: 8, value: 10)
        try write("train/n01/images/b.JPEG", h: 30, w: 50, value: 20)
        try write("train/n02/images/c.JPEG", h: 64, w: 16, value: 30)
        try write("val/images/val_0.JPEG", h: 12, w: 9, value: 40)
        try write("val/images/val_1.JPEG", h: 8, w: 8, value: 50)
        try Data("val_1.JPEG\tn01\t0\t0\t8\t8\nval_0.JPEG\tn02\t1\t1\t5\t5\n".utf8).write(to: URL(fileURLWithPath: "\(dir)/val/val_annotations.txt"))

        XCTAssertThrowsError(try Dataset.load("folder:\(dir)/train")) { XCTAssertTrue("\($0)".contains("b.JPEG") && "\($0)".contains("--image-size"), "\($0)") }
        let train = try Dataset.load("folder:\(dir)/train", imageSize: 8)
        XCTAssertEqual([train.count, train.channels, train.height, train.width], [3, 3, 8, 8])
        XCTAssertEqual(train.classNames, ["n01", "n02"])
        XCTAssertEqual(train.labels, [0, 0, 1])
        let a = try JPEG.decode(try Files.readFile("\(dir)/train/n01/images/a.JPEG"))
        XCTAssertTrue(Array(train.pixels[0..<192]) == a.pixels, "an image of the model's size is taken as it is")
        // b: 30x50, at least 2x the resize target (9) a side: decoded at 1/2 (PIL's draft) to 15x25, then
        // Resize(9) -> 9x15 -> CenterCrop(8)
        let bBytes = try Files.readFile("\(dir)/train/n01/images/b.JPEG")
        var half = [UInt8](repeating: 0, count: 3 * 15 * 25), b = [UInt8](repeating: 0, count: 192)
        try bBytes.withUnsafeBytes { raw in
            let d = try JPEG.Decoder(raw, name: "b")
            XCTAssertEqual(JPEG.draftScale(width: 50, height: 30, target: 9), 2)
            try half.withUnsafeMutableBufferPointer { try d.finish(into: $0.baseAddress!, denominator: 2) }
        }
        half.withUnsafeBufferPointer { s in b.withUnsafeMutableBufferPointer {
            EvalTransform(size: 8).apply(s.baseAddress!, channels: 3, height: 15, width: 25, into: $0.baseAddress!) } }
        XCTAssertTrue(Array(train.pixels[192..<384]) == b)

        let val = try Dataset.load("folder:\(dir)/val", imageSize: 8)
        XCTAssertEqual(val.classNames, ["n01", "n02"])
        XCTAssertEqual(val.labels, [1, 0], "val_0 is n02, val_1 is n01")
        try Data("val_2.JPEG\tn01\t0\t0\t8\t8\n".utf8).write(to: URL(fileURLWithPath: "\(dir)/val/val_annotations.txt"))
        XCTAssertThrowsError(try Dataset.load("folder:\(dir)/val", imageSize: 8)) { XCTAssertTrue("\($0)".contains("val_2.JPEG"), "\($0)") }
    }
}
