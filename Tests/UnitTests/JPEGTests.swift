import Foundation
import XCTest
import LDKernels
import LDData

/// JPEG decoding: the pixels PIL decodes (Fixtures/JPEG, made by make_fixtures.py there), PIL's draft sizes,
/// image folders of JPEG and PNG decoded by content, and every bad file refused with one line naming it.
final class JPEGTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/JPEG").path
    func fixture(_ name: String) -> String { JPEGTests.fixtures + "/" + name }

    func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "ld-jpeg-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func expected() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture("expected.json")))) as! [String: Any]
    }

    /// Same bytes as PIL's decode (accurate DCT, smooth upsampling) for baseline 4:2:0 with partial MCUs,
    /// progressive and gray files; a gray file asked for RGB is replicated as PIL's convert("RGB").
    func testPixelsEqualPILsDecode() throws {
        let e = try expected()
        for name in ["rgb420.jpg", "progressive.jpg", "gray.jpg"] {
            let want = e[name] as! [String: Any]
            let got = try JPEG.decode(try Files.readFile(fixture(name)), name: name)
            XCTAssertEqual(got.width, want["width"] as? Int, name)
            XCTAssertEqual(got.height, want["height"] as? Int, name)
            let pixels = (want["pixels"] as! [Int]).map { UInt8($0) }
            XCTAssertEqual(got.pixels.count, pixels.count, name)
            let diff = zip(got.pixels, pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
            XCTAssertEqual(diff, 0, "\(name): largest difference to PIL's decode")
        }
        let rgb = try JPEG.decode(try Files.readFile(fixture("gray.jpg")), name: "gray.jpg", channels: 3)
        XCTAssertEqual(rgb.channels, 3)
        XCTAssertTrue(rgb.pixels == (e["gray_as_rgb"] as! [Int]).map { UInt8($0) }, "gray -> RGB as PIL")
    }

    /// The reduced decode PIL's draft() picks: 1/1, 1/2, 1/4 or 1/8, both sides at least the target, and
    /// the pixels of that reduced decode.
    func testDraftScaleIsPILs() throws {
        let e = try expected()
        let bytes = try Files.readFile(fixture("draft.jpg"))
        let sizes = e["draft_97x61"] as! [String: [Int]]
        try bytes.withUnsafeBytes { raw in
            let d = try JPEG.Decoder(raw, name: "draft.jpg")
            for (target, size) in sizes {
                let s = d.scaledSize(JPEG.draftScale(width: d.width, height: d.height, target: Int(target)!))
                XCTAssertEqual([s.width, s.height], size, "target \(target)")
            }
            let k = JPEG.draftScale(width: d.width, height: d.height, target: 24)
            let (w, h) = d.scaledSize(k)
            var out = [UInt8](repeating: 0, count: 3 * w * h)
            try out.withUnsafeMutableBufferPointer { try d.finish(into: $0.baseAddress!, denominator: k) }
            let want = (e["draft_24_pixels"] as! [Int]).map { UInt8($0) }
            XCTAssertEqual(zip(out, want).map { abs(Int($0) - Int($1)) }.max(), 0, "1/\(k) decode as PIL's draft")
        }
    }

    func testEncodeDecodeRoundTrip() throws {
        var pixels = [UInt8](repeating: 0, count: 3 * 40 * 30)
        for c in 0..<3 { for y in 0..<30 { for x in 0..<40 { pixels[(c * 30 + y) * 40 + x] = UInt8(30 + 3 * x + 2 * y + 20 * c) } } }
        for progressive in [false, true] {
            let bytes = try JPEG.encode(pixels, channels: 3, height: 30, width: 40, quality: 98, progressive: progressive)
            let back = try JPEG.decode(bytes)
            XCTAssertEqual([back.channels, back.height, back.width], [3, 30, 40])
            let mean = zip(back.pixels, pixels).map { Double(abs(Int($0) - Int($1))) }.reduce(0, +) / Double(pixels.count)
            XCTAssertLessThan(mean, 4, "progressive \(progressive)")
        }
    }

    /// Every bad file is one line naming the file; nothing crashes, nothing is half-decoded.
    func testBadFilesAreRefusedNamingTheProblem() throws {
        let good = try Files.readFile(fixture("rgb420.jpg"))
        func refused(_ bytes: [UInt8], _ words: [String], file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try JPEG.decode(bytes, name: "x.jpg"), file: file, line: line) { error in
                let m = "\(error)"
                XCTAssertTrue(m.hasPrefix("x.jpg: "), m, file: file, line: line)
                XCTAssertFalse(m.contains("\n"), m, file: file, line: line)
                for w in words { XCTAssertTrue(m.contains(w), "\(m) lacks '\(w)'", file: file, line: line) }
            }
        }
        refused([], ["empty file"])
        refused(Array(good.prefix(good.count / 2)), ["truncated"])
        refused(Array(good.prefix(2)), ["not a JPEG"])
        var corrupt = good
        for i in (good.count / 2)..<(good.count / 2 + 40) { corrupt[i] = 0xFF }   // markers inside the scan
        refused(corrupt, ["JPEG"])
        refused(try Files.readFile(fixture("cmyk.jpg")), ["CMYK"])
        // A header declaring 65535 x 65535 (libjpeg's limit is 65500 a side) or 60000 x 60000 (ld's limit
        // on pixels) is refused before any pixel memory is allocated.
        var huge = good
        let sof = (0..<(huge.count - 9)).first { huge[$0] == 0xFF && (huge[$0 + 1] == 0xC0 || huge[$0 + 1] == 0xC2) }!
        for k in 5...8 { huge[sof + k] = 0xFF }
        refused(huge, ["65500"])
        for k in [5, 7] { huge[sof + k] = 0xEA; huge[sof + k + 1] = 0x60 }   // 60000
        refused(huge, ["60000x60000", "more than"])
        // A 12-bit header.
        var twelve = good
        twelve[sof + 4] = 12
        refused(twelve, ["12-bit"])
    }

    /// An ImageFolder of JPEGs and PNGs, named by any case of extension, decoded by content (a .jpg that is a
    /// PNG), gray images in an RGB set replicated; an empty class folder is fine; sizes must agree.
    func testImageFolderReadsJPEGAndPNGByContent() throws {
        let dir = try tempDir()
        for c in ["a", "b", "c"] { try FileManager.default.createDirectory(atPath: "\(dir)/\(c)", withIntermediateDirectories: true) }
        let rgb = try JPEG.decode(try Files.readFile(fixture("rgb420.jpg")))
        try FileManager.default.copyItem(atPath: fixture("rgb420.jpg"), toPath: "\(dir)/a/1.JPEG")
        try FileManager.default.copyItem(atPath: fixture("progressive.jpg"), toPath: "\(dir)/a/2.jpeg")
        let gray = [UInt8](repeating: 77, count: 17 * 23)
        try Data(PNG.encode(gray, channels: 1, height: 17, width: 23)).write(to: URL(fileURLWithPath: "\(dir)/c/png-really.jpg"))
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: "\(dir)/c/notes.txt"))
        let set = try Dataset.load("folder:\(dir)")
        XCTAssertEqual(set.count, 3)
        XCTAssertEqual([set.channels, set.height, set.width], [3, 17, 23])
        XCTAssertEqual(set.classes, 3, "the empty class folder b still counts")
        XCTAssertEqual(set.labels, [0, 0, 2])
        XCTAssertTrue(Array(set.pixels[0..<(3 * 17 * 23)]) == rgb.pixels)
        XCTAssertTrue(set.pixels[(2 * 3 * 17 * 23)...].allSatisfy { $0 == 77 }, "gray PNG replicated into RGB")

        try Data(try JPEG.encode([UInt8](repeating: 9, count: 3 * 8 * 8), channels: 3, height: 8, width: 8))
            .write(to: URL(fileURLWithPath: "\(dir)/b/small.jpg"))
        XCTAssertThrowsError(try Dataset.load("folder:\(dir)")) { error in
            XCTAssertTrue("\(error)".contains("small.jpg") && "\(error)".contains("8x8"), "\(error)")
        }
        try FileManager.default.removeItem(atPath: "\(dir)/b/small.jpg")
        try Data().write(to: URL(fileURLWithPath: "\(dir)/b/empty.jpg"))
        XCTAssertThrowsError(try Dataset.load("folder:\(dir)")) { error in
            XCTAssertTrue("\(error)".contains("empty.jpg: empty file"), "\(error)")
        }
    }
}
