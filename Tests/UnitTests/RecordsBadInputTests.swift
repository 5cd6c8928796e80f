import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import XCTest

final class RecordsBadInputTests: XCTestCase {
    func read(_ bytes: [UInt8], name: String = "f.ldi") -> String? {
        RS.message {
            let r = try StreamReader(source: MemorySource(bytes, name: name))
            while try r.nextEvent() != nil {}
        }
    }

    /// Offsets where records start, from the dump of a valid stream.
    func boundaries(_ bytes: [UInt8]) -> [Int] {
        var cuts: [Int] = []
        var o = 12
        while o < bytes.count {
            cuts.append(o)
            let len = bytes.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: o + 4, as: UInt64.self))) }
            o += 16 + len + 4
        }
        return cuts
    }

    func testTruncatedOnRecordBoundary() throws {
        let s = try RS.imageStream(3)
        let b = boundaries(s)
        XCTAssertEqual(b.count, 5) // header, 3 images, end
        XCTAssertEqual(read(Array(s[0..<b[4]])), "f.ldi: stream 0 ended after 4 records without an end record (truncated)")
        XCTAssertEqual(read(Array(s[0..<b[1]])), "f.ldi: stream 0 ended after 1 records without an end record (truncated)")
        // Two streams, the second cut on a boundary.
        let two = s + Array(s[0..<b[2]])
        XCTAssertEqual(read(two), "f.ldi: stream 1 ended after 2 records without an end record (truncated)")
    }

    func testTruncatedMidRecordAndEveryCut() throws {
        let s = try RS.imageStream(3)
        let b = boundaries(s)
        XCTAssertEqual(read(Array(s[0..<(b[2] + 20)])), "f.ldi: stream 0: truncated inside record 2 (image): 4 of 18 payload bytes")
        XCTAssertEqual(read(Array(s[0..<(b[2] + 5)])), "f.ldi: stream 0: truncated inside the frame of record 2 (5 of 16 bytes)")
        XCTAssertEqual(read(Array(s[0..<(b[2] - 2)])), "f.ldi: stream 0: truncated inside record 1 (image): checksum missing")
        XCTAssertEqual(read(Array(s[0..<3])), "f.ldi: not an ld record stream (starts with 89 4c 44, expected 89 4c 44 53 0d 0a 1a 0a)")
        for cut in 0..<s.count {
            let m = read(Array(s[0..<cut]))
            XCTAssertNotNil(m, "cut at \(cut) accepted")
            XCTAssertFalse(m!.contains("\n"))
        }
        XCTAssertNil(read(s))
    }

    func testTruncatedZstd() throws {
        let z = try RS.imageStream(50, compression: .zstd())
        for cut in stride(from: 1, to: z.count, by: 7) {
            XCTAssertNotNil(read(Array(z[0..<cut])), "cut at \(cut) accepted")
        }
        XCTAssertEqual(read(Array(z[0..<(z.count - 2)])), "f.ldi: truncated zstd data (the input ended inside a compressed frame)")
    }

    func testEveryFlippedByteIsCaught() throws {
        let s = try RS.imageStream(2)
        for i in 0..<s.count {
            var c = s
            c[i] ^= 0x10
            let m = read(c)
            XCTAssertNotNil(m, "flip at \(i) accepted")
        }
        let b = boundaries(s)
        var c = s
        c[b[1] + 16 + 3] ^= 1
        XCTAssertTrue(read(c)!.hasPrefix("f.ldi: stream 0, record 1 (image): payload checksum mismatch (stored 0x"), read(c)!)
        c = s
        c[b[1] + 5] ^= 1
        XCTAssertEqual(read(c), "f.ldi: stream 0, record 1: frame checksum mismatch (corrupt data)")
    }

    func testFlippedZstdByteIsCaught() throws {
        // zstd's checksum and our CRCs catch a damaged frame; a flip that zstd decodes to the very same bytes
        // (a few bits of entropy-coded tables can be equivalent) must leave the records intact.
        let z = try RS.imageStream(50, compression: .zstd())
        let good = try RS.readAll(z).records.map { $0.payload }
        var caught = 0
        for i in stride(from: 4, to: z.count, by: 3) {
            var c = z
            c[i] ^= 0x04
            if read(c) != nil { caught += 1 } else { XCTAssertEqual(try RS.readAll(c).records.map { $0.payload }, good) }
        }
        XCTAssertGreaterThan(caught, (z.count - 4) / 3 * 9 / 10)
    }

    func testWrongMagicVersionAndEmpty() throws {
        let s = try RS.imageStream(1)
        var m = s
        m[1] = UInt8(ascii: "X")
        XCTAssertEqual(read(m), "f.ldi: not an ld record stream (starts with 89 58 44 53 0d 0a 1a 0a, expected 89 4c 44 53 0d 0a 1a 0a)")
        XCTAssertEqual(read(Array("hello, world\n".utf8)), "f.ldi: not an ld record stream (starts with 68 65 6c 6c 6f 2c 20 77, expected 89 4c 44 53 0d 0a 1a 0a)")
        var v = s
        v[8] = 2
        XCTAssertEqual(read(v), "f.ldi: stream 0: format version 2 is newer than this build reads (1); upgrade ld")
        XCTAssertEqual(read([]), "f.ldi: empty input, expected an ld record stream")
        XCTAssertEqual(read(s + Array("junk-junk".utf8)), "f.ldi: unexpected bytes after stream 0 (6a 75 6e 6b 2d 6a 75 6e): expected another stream or the end of input")
    }

    func testAbsurdLengthIsRejectedBeforeAllocating() throws {
        let header = try RS.header().encoded()
        let forged = RS.preamble + RS.frame(1, header) + RS.frame(16, [], length: 1 << 40)
        XCTAssertEqual(read(Array(forged.dropLast(4))),
                       "f.ldi: stream 0, record 1 (image): length 1099511627776 exceeds the limit of 1073741824 bytes")
        // A header claiming more than the header limit.
        XCTAssertEqual(read(RS.preamble + RS.frame(1, [], length: 1 << 25)),
                       "f.ldi: stream 0, record 0 (header): length 33554432 exceeds the limit of 16777216 bytes")
        // Under the limit but absent: a truncation error, with memory bounded by what arrived.
        let big = RS.preamble + RS.frame(1, header) + Array(RS.frame(16, [], length: (1 << 30) - 1).prefix(16)) + [UInt8](repeating: 0, count: 1000)
        XCTAssertEqual(read(big), "f.ldi: stream 0: truncated inside record 1 (image): 1000 of 1073741823 payload bytes")
    }

    func testForgedStructure() throws {
        let header = try RS.header().encoded()
        // The first record is not a header.
        XCTAssertEqual(read(RS.preamble + RS.frame(16, [1])), "f.ldi: stream 0: first record is 'image', expected the header")
        // A header that is not JSON, or lacks fields.
        XCTAssertEqual(read(RS.preamble + RS.frame(1, Array("{".utf8))), "f.ldi: stream 0: bad header: not valid JSON")
        XCTAssertEqual(read(RS.preamble + RS.frame(1, Array("{\"kind\":\"images\"}".utf8))), "f.ldi: stream 0: bad header: missing field 'producer'")
        XCTAssertEqual(read(RS.preamble + RS.frame(1, Array("{\"kind\":\"images\",\"producer\":\"p\",\"version\":\"1\",\"classes\":-1}".utf8))),
                       "f.ldi: stream 0: bad header: classes -1 out of range 0...16777216")
        // An end record with the wrong count or hash.
        var end: [UInt8] = []
        withUnsafeBytes(of: UInt64(5).littleEndian) { end += $0 }
        withUnsafeBytes(of: UInt64(0).littleEndian) { end += $0 }
        XCTAssertEqual(read(RS.preamble + RS.frame(1, header) + RS.frame(2, end)), "f.ldi: stream 0: end record counts 5 records, the stream has 1")
        end[0] = 1
        XCTAssertEqual(read(RS.preamble + RS.frame(1, header) + RS.frame(2, end)),
                       "f.ldi: stream 0: end record hash mismatch (records reordered, dropped or altered)")
        // Records swapped: CRCs fine, chain hash catches it.
        let s = try RS.imageStream(2)
        let b = boundaries(s)
        let swapped = Array(s[0..<b[1]]) + Array(s[b[2]..<b[3]]) + Array(s[b[1]..<b[2]]) + Array(s[b[3]...])
        XCTAssertEqual(read(swapped), "f.ldi: stream 0: end record hash mismatch (records reordered, dropped or altered)")
        // A second header inside a stream.
        XCTAssertEqual(read(RS.preamble + RS.frame(1, header) + RS.frame(1, header)),
                       "f.ldi: stream 0, record 1: a second header inside one stream")
    }

    func testWrongKindForTool() throws {
        let r = try StreamReader(source: MemorySource(try RS.imageStream(1), name: "labels.ldl"))
        XCTAssertEqual(RS.message { try r.expect(kind: .labels) }, "labels.ldl: stream 0 is a 'images' stream, expected 'labels'")
        XCTAssertNoThrow(try r.expect(kind: .images))
    }
}

final class RecordsFileTests: XCTestCase {
    var dir = ""

    override func setUp() {
        dir = NSTemporaryDirectory() + "ld-records-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
        unsetenv("LD_FAKE_TTY")
    }

    func files() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() }

    func testAtomicWriteCommit() throws {
        let path = dir + "/out.ldi"
        let w = try StreamWriter(path: path, header: RS.header(), compression: .zstd())
        try w.write(RS.images(1)[0])
        XCTAssertEqual(files(), [".out.ldi.tmp-\(StaleTemps.owner)"])
        try w.finish()
        XCTAssertEqual(files(), ["out.ldi"])
        let r = try StreamReader(path: path)
        XCTAssertEqual(try ImageRecord(try r.next()!, header: r.header), RS.images(1)[0])
        XCTAssertNil(try r.next())
        XCTAssertEqual(TempFiles.count, 0)
    }

    func testFailedWriteLeavesNothing() throws {
        let path = dir + "/out.ldi"
        // An error in the middle of producing: the writer is dropped without finish().
        func produce() throws {
            let w = try StreamWriter(path: path, header: RS.header())
            try w.write(RS.images(1)[0])
            throw LDError("boom")
        }
        XCTAssertEqual(RS.message(produce), "boom")
        XCTAssertEqual(files(), [])
        // An existing file is kept intact when the replacement fails.
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(RS.message(produce), "boom")
        XCTAssertEqual(files(), ["out.ldi"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Data([1, 2, 3]))
        // Explicit abort.
        let w = try StreamWriter(path: dir + "/b.ldi", header: RS.header())
        w.abort()
        XCTAssertEqual(files(), ["out.ldi"])
        XCTAssertEqual(TempFiles.count, 0)
    }

    func testBadInputToFileLeavesNoOutput() throws {
        // A filter (read an images stream, write it to a file) on each kind of bad input: the error names the
        // input and leaves no output file, temporary or final.
        let good = try RS.imageStream(3)
        let model = MemorySink()
        try StreamWriter(sink: model, header: RS.header(.model, classes: 0, shape: [])).finish()
        let header = try RS.header().encoded()
        var flipped = good
        flipped[good.count - 30] ^= 0xFF
        var magic = good
        magic[0] = 0
        var version = good
        version[8] = 9
        let cases: [(String, [UInt8], String)] = [
            ("mid-record", Array(good.dropLast(45)), "truncated inside record 3 (image): 13 of 18 payload bytes"),
            ("boundary", Array(good.dropLast(36)), "without an end record"),
            ("flipped", flipped, "checksum mismatch"),
            ("magic", magic, "not an ld record stream"),
            ("version", version, "format version 9 is newer"),
            ("length", RS.preamble + RS.frame(1, header) + Array(RS.frame(16, [], length: 1 << 40).prefix(16)), "exceeds the limit"),
            ("kind", model.bytes, "is a 'model' stream, expected 'images'"),
        ]
        for (name, bytes, expected) in cases {
            let input = dir + "/\(name).in"
            try Data(bytes).write(to: URL(fileURLWithPath: input))
            let out = dir + "/out.ldi"
            let msg = RS.message {
                let r = try StreamReader(path: input)
                try r.expect(kind: .images)
                let w = try StreamWriter(path: out, header: r.header, compression: .zstd())
                while let rec = try r.next() { try w.write(kind: rec.kind, payload: rec.payload) }
                try w.finish()
            }
            XCTAssertNotNil(msg, name)
            XCTAssertTrue(msg?.hasPrefix(input + ": ") ?? false, msg ?? "")
            XCTAssertTrue(msg?.contains(expected) ?? false, "\(name): \(msg ?? "")")
            XCTAssertFalse(msg?.contains("\n") ?? true)
            try FileManager.default.removeItem(atPath: input)
            XCTAssertEqual(files(), [], name)
        }
        XCTAssertEqual(TempFiles.count, 0)
    }

    func testOutputErrors() throws {
        XCTAssertEqual(RS.message { _ = try OutputFile(path: dir + "/missing/x.ldi") }, "cannot create \(dir)/missing/x.ldi: No such file or directory")
        XCTAssertEqual(RS.message { _ = try OutputFile(path: dir) }, "\(dir): is a directory, expected a file name")
        XCTAssertEqual(RS.message { _ = try InputFile(path: dir + "/none") }, "cannot open \(dir)/none: No such file or directory")
        XCTAssertEqual(RS.message { _ = try StreamReader(path: dir) }, "\(dir): is a directory, expected a file")
        // /dev/null is written in place.
        let w = try StreamWriter(path: "/dev/null", header: RS.header())
        try w.finish()
    }

    func testTerminalIsRefused() throws {
        setenv("LD_FAKE_TTY", "1", 1)
        XCTAssertEqual(RS.message { _ = try StreamWriter(path: "-", header: RS.header()) },
                       "refusing to write binary to a terminal; redirect to a file or a pipe")
        XCTAssertEqual(RS.message { _ = try StreamReader(path: "-") },
                       "refusing to read binary from a terminal; redirect from a file or a pipe")
        // Text (NDJSON) may go to a terminal.
        XCTAssertNoThrow(try OutputFile(path: "-", binary: false).abort())
        setenv("LD_FAKE_TTY", "stdin", 1)
        XCTAssertNoThrow(try OutputFile(path: "-", binary: true).abort())
        unsetenv("LD_FAKE_TTY")
    }

    func testBrokenPipe() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        close(fds[0])
        signal(SIGPIPE, SIG_IGN)
        let out = OutputFile(fd: fds[1], name: "pipe")
        XCTAssertThrowsError(try out.write([UInt8](repeating: 1, count: 1 << 20))) { XCTAssertTrue($0 is BrokenPipe) }
        out.abort()
    }
}
