import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import XCTest

/// Runs the built `ld-prune --dump` binary: good input, corrupt input, stdin, and real zstd(1) output.
final class DumpToolTests: ToolTestCase {
    func writeStream(_ path: String, images: Int, compression: StreamCompression = .none) throws {
        let h = StreamHeader(kind: .images, producer: "test", version: LD.version, seed: 1, classes: 2, shape: [1, 2, 2])
        let w = try StreamWriter(path: path, header: h, compression: compression)
        for i in 0..<images {
            try w.write(ImageRecord(index: UInt64(i), label: UInt32(i % 2), pixels: [1, 2, 3, UInt8(i)]))
        }
        try w.finish()
    }

    func testDumpFile() throws {
        let exe = "ld-prune"
        let f = dir + "/a.ldi"
        try writeStream(f, images: 3)
        let r = try run(exe, ["--dump", f, f])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.err, "")
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 10)
        XCTAssertTrue(lines[0].hasPrefix("{\"header\":{\"classes\":2,"), String(lines[0]))
        XCTAssertTrue(lines[1].contains("\"kind\":\"image\""), String(lines[1]))
        XCTAssertTrue(lines[4].hasPrefix("{\"count\":4,\"hash\":"), String(lines[4]))
    }

    func testDumpCorruptFile() throws {
        let exe = "ld-prune"
        let f = dir + "/bad.ldi"
        try writeStream(f, images: 3)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: f)))
        bytes[bytes.count - 40] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: f))
        let r = try run(exe, ["--dump", f])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.out.isEmpty)
        XCTAssertTrue(r.err.hasPrefix("ld-prune: \(f): stream 0, record "), r.err)
        XCTAssertEqual(r.err.filter { $0 == "\n" }.count, 1, r.err)

        // Cut exactly on a record boundary (the end record dropped).
        try writeStream(f, images: 1)
        let whole = [UInt8](try Data(contentsOf: URL(fileURLWithPath: f)))
        try Data(whole.dropLast(36)).write(to: URL(fileURLWithPath: f))
        let t = try run(exe, ["--dump", f])
        XCTAssertEqual(t.status, 1)
        XCTAssertTrue(t.out.isEmpty)
        XCTAssertEqual(t.err, "ld-prune: \(f): stream 0 ended after 2 records without an end record (truncated)\n")
    }

    func testDumpStdinAndTerminal() throws {
        let exe = "ld-prune"
        let f = dir + "/z.ldi"
        try writeStream(f, images: 2, compression: .zstd())
        let r = try run(exe, ["--dump"], stdinPath: f)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.stdout.contains("\"source\":\"stdin\""))
        XCTAssertEqual(r.stdout.split(separator: "\n").count, 4)
        let t = try run(exe, ["--dump", "-"], stdinPath: f, env: ["LD_FAKE_TTY": "stdin"])
        XCTAssertEqual(t.status, 1)
        XCTAssertEqual(t.err, "ld-prune: refusing to read binary from a terminal; redirect from a file or a pipe\n")
        let n = try run(exe, [])
        XCTAssertEqual(n.status, 64, "no mode chosen is a usage error")
        XCTAssertTrue(n.err.contains("--ratio"), n.err)
    }

    /// `zstd < plain | tool` and `zstd -d < compressed | tool` with the real zstd(1), when installed.
    func testRealZstdTool() throws {
        let exe = "ld-prune"
        guard let zstd = ["/usr/bin/zstd", "/usr/local/bin/zstd"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("zstd(1) not installed")
        }
        let plain = dir + "/p.ldi", z = dir + "/p.ldi.zst", ours = dir + "/o.ldi", d = dir + "/o.ldi.d"
        try writeStream(plain, images: 2)
        try writeStream(ours, images: 3, compression: .zstd())
        XCTAssertEqual(try run(zstd, ["-q", "-f", plain, "-o", z]).status, 0)
        XCTAssertEqual(try run(zstd, ["-q", "-d", "-f", ours, "-o", d]).status, 0)
        let both = dir + "/both"
        let cat = try [z, plain, ours, d].map { try Data(contentsOf: URL(fileURLWithPath: $0)) }.reduce(Data(), +)
        try cat.write(to: URL(fileURLWithPath: both))
        let r = try run(exe, ["--dump", both])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.stdout.split(separator: "\n").filter { $0.contains("\"type\":\"header\"") }.count, 4)
        XCTAssertEqual(r.stdout.split(separator: "\n").filter { $0.contains("\"type\":\"record\"") }.count, 10)
    }
}
