import Foundation
import Shared
import XCTest

/// Runs the built `ld-prune --dump` binary: good input, corrupt input, stdin, and real zstd(1) output.
final class DumpToolTests: XCTestCase {
    var dir = ""

    override func setUp() {
        dir = NSTemporaryDirectory() + "ld-dumptool-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// The products folder: the .xctest sits next to the executables (Linux: it is an executable there;
    /// macOS: a bundle there).
    func binary(_ name: String) throws -> String {
        var candidates = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
                          Bundle(for: DumpToolTests.self).bundleURL.deletingLastPathComponent(),
                          Bundle.main.bundleURL]
        if let p = Bundle.main.executableURL { candidates.append(p.deletingLastPathComponent()) }
        for c in candidates {
            let p = c.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        throw XCTSkip("\(name) not built next to the test bundle")
    }

    struct Result { var status: Int32; var out: String; var err: String }

    func run(_ exe: String, _ args: [String], stdin: String? = nil, env: [String: String] = [:]) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        var e = ProcessInfo.processInfo.environment
        e.removeValue(forKey: "LD_FAKE_TTY")
        for (k, v) in env { e[k] = v }
        p.environment = e
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        if let s = stdin { p.standardInput = FileHandle(forReadingAtPath: s) } else { p.standardInput = Pipe() }
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let r = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: r, as: UTF8.self))
    }

    func writeStream(_ path: String, images: Int, compression: StreamCompression = .none) throws {
        let h = StreamHeader(kind: .images, producer: "test", version: LD.version, seed: 1, classes: 2, shape: [1, 2, 2])
        let w = try StreamWriter(path: path, header: h, compression: compression)
        for i in 0..<images {
            try w.write(ImageRecord(index: UInt64(i), label: UInt32(i % 2), pixels: [1, 2, 3, UInt8(i)]))
        }
        try w.finish()
    }

    func testDumpFile() throws {
        let exe = try binary("ld-prune")
        let f = dir + "/a.ldi"
        try writeStream(f, images: 3)
        let r = try run(exe, ["--dump", f, f])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.err, "")
        let lines = r.out.split(separator: "\n")
        XCTAssertEqual(lines.count, 10)
        XCTAssertTrue(lines[0].hasPrefix("{\"header\":{\"classes\":2,"), String(lines[0]))
        XCTAssertTrue(lines[1].contains("\"kind\":\"image\""), String(lines[1]))
        XCTAssertTrue(lines[4].hasPrefix("{\"count\":4,\"hash\":"), String(lines[4]))
    }

    func testDumpCorruptFile() throws {
        let exe = try binary("ld-prune")
        let f = dir + "/bad.ldi"
        try writeStream(f, images: 3)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: f)))
        bytes[bytes.count - 40] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: f))
        let r = try run(exe, ["--dump", f])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.out, "")
        XCTAssertTrue(r.err.hasPrefix("ld-prune: \(f): stream 0, record "), r.err)
        XCTAssertEqual(r.err.filter { $0 == "\n" }.count, 1, r.err)

        // Cut exactly on a record boundary (the end record dropped).
        try writeStream(f, images: 1)
        let whole = [UInt8](try Data(contentsOf: URL(fileURLWithPath: f)))
        try Data(whole.dropLast(36)).write(to: URL(fileURLWithPath: f))
        let t = try run(exe, ["--dump", f])
        XCTAssertEqual(t.status, 1)
        XCTAssertEqual(t.out, "")
        XCTAssertEqual(t.err, "ld-prune: \(f): stream 0 ended after 2 records without an end record (truncated)\n")
    }

    func testDumpStdinAndTerminal() throws {
        let exe = try binary("ld-prune")
        let f = dir + "/z.ldi"
        try writeStream(f, images: 2, compression: .zstd())
        let r = try run(exe, ["--dump"], stdin: f)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("\"source\":\"stdin\""))
        XCTAssertEqual(r.out.split(separator: "\n").count, 4)
        let t = try run(exe, ["--dump", "-"], stdin: f, env: ["LD_FAKE_TTY": "stdin"])
        XCTAssertEqual(t.status, 1)
        XCTAssertEqual(t.err, "ld-prune: refusing to read binary from a terminal; redirect from a file or a pipe\n")
        let n = try run(exe, [])
        XCTAssertEqual(n.status, 64, "no mode chosen is a usage error")
        XCTAssertTrue(n.err.contains("--ratio"), n.err)
    }

    /// `zstd < plain | tool` and `zstd -d < compressed | tool` with the real zstd(1), when installed.
    func testRealZstdTool() throws {
        let exe = try binary("ld-prune")
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
        XCTAssertEqual(r.out.split(separator: "\n").filter { $0.contains("\"type\":\"header\"") }.count, 4)
        XCTAssertEqual(r.out.split(separator: "\n").filter { $0.contains("\"type\":\"record\"") }.count, 10)
    }
}
