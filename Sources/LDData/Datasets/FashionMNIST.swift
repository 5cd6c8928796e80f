import LDKernels
import LDRecords
import CZlib

extension Dataset {
    /// The published Fashion-MNIST class names, by label.
    public static let fashionMNISTClassNames = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]

    /// Loads Fashion-MNIST's IDX files (`train-*` or `t10k-*`, `.gz` or plain) from `directory`.
    static func loadFashionMNIST(split: DatasetSplit, directory: String, source: String) throws -> Dataset {
        try Files.requireDirectory(directory, what: "Fashion-MNIST")
        let prefix = split == .train ? "train" : "t10k"
        let imagesPath = try IDXFile.locate(directory, "\(prefix)-images-idx3-ubyte")
        let labelsPath = try IDXFile.locate(directory, "\(prefix)-labels-idx1-ubyte")

        let images = try IDXFile(path: imagesPath)
        let dims = try images.header(magic: 0x0000_0803, rank: 3, what: "images")
        let (n, rows, cols) = (dims[0], dims[1], dims[2])
        guard n > 0 else { throw LDError("\(imagesPath): IDX header says 0 images") }
        guard rows > 0, cols > 0, rows <= 4096, cols <= 4096 else {
            throw LDError("\(imagesPath): IDX image size \(rows)x\(cols) out of range (1...4096)")
        }
        guard n <= (1 << 34) / (rows * cols) else {
            throw LDError("\(imagesPath): IDX header says \(n) images of \(rows)x\(cols): too large")
        }

        let labels = try IDXFile(path: labelsPath)
        let ldims = try labels.header(magic: 0x0000_0801, rank: 1, what: "labels")
        guard ldims[0] == n else {
            throw LDError("\(labelsPath): \(ldims[0]) labels for \(n) images in \(imagesPath)")
        }

        let size = n * rows * cols
        let pixels = try [UInt8](unsafeUninitializedCapacity: size) { buf, count in
            try images.readExact(into: UnsafeMutableRawPointer(buf.baseAddress!), count: size, what: "pixels")
            count = size
        }
        try images.expectEnd()

        let classes = fashionMNISTClassNames.count
        var raw = [UInt8](repeating: 0, count: n)
        try raw.withUnsafeMutableBytes { try labels.readExact(into: $0.baseAddress!, count: n, what: "labels") }
        try labels.expectEnd()
        var labelValues = [Int32](repeating: 0, count: n)
        for i in 0..<n {
            let v = raw[i]
            guard Int(v) < classes else {
                throw LDError("\(labelsPath): label \(v) of record \(i) out of range 0..<\(classes)")
            }
            labelValues[i] = Int32(v)
        }
        return Dataset(pixels: pixels, labels: labelValues, classes: classes, channels: 1, height: rows, width: cols,
                       mean: [0.2860], std: [0.3530], classNames: fashionMNISTClassNames, source: source)
    }
}

/// One IDX file read through zlib's gz* functions (which also read an uncompressed file as is).
final class IDXFile {
    let path: String
    let file: gzFile

    /// `DIR/name.gz`, else `DIR/name`, else an error naming both.
    static func locate(_ dir: String, _ name: String) throws -> String {
        let gz = "\(dir)/\(name).gz"
        if Files.isFile(gz) { return gz }
        let plain = "\(dir)/\(name)"
        if Files.isFile(plain) { return plain }
        throw LDError("\(gz): file not found (nor \(name) uncompressed)")
    }

    init(path: String) throws {
        self.path = path
        guard let f = gzopen(path, "rb") else {
            throw LDError("\(path): cannot open")
        }
        file = f
        gzbuffer(file, 1 << 18)
    }

    deinit { gzclose(file) }

    /// Reads and checks the magic number (big-endian) and `rank` dimensions.
    func header(magic: UInt32, rank: Int, what: String) throws -> [Int] {
        var bytes = [UInt8](repeating: 0, count: 4 * (rank + 1))
        try bytes.withUnsafeMutableBytes { try readExact(into: $0.baseAddress!, count: $0.count, what: "IDX header") }
        func word(_ i: Int) -> UInt32 {
            UInt32(bytes[4 * i]) << 24 | UInt32(bytes[4 * i + 1]) << 16 | UInt32(bytes[4 * i + 2]) << 8
                | UInt32(bytes[4 * i + 3])
        }
        let got = word(0)
        guard got == magic else {
            throw LDError("\(path): bad IDX magic 0x\(hex8(got)) (expected 0x\(hex8(magic)) for \(what))")
        }
        return (1...rank).map { Int(word($0)) }
    }

    /// Reads exactly `count` decompressed bytes or throws (truncated file, corrupt gzip data).
    func readExact(into dest: UnsafeMutableRawPointer, count: Int, what: String) throws {
        var done = 0
        while done < count {
            let want = UInt32(min(count - done, 1 << 30))
            let n = gzread(file, dest + done, want)
            if n < 0 { throw LDError("\(path): corrupt gzip data (reading \(what)): \(errorText())") }
            if n == 0 {
                let detail = gzError() == Z_OK ? "" : " (\(errorText()))"
                throw LDError("\(path): truncated: expected \(count) bytes of \(what), got \(done)\(detail)")
            }
            done += Int(n)
        }
    }

    /// Checks that nothing follows the data and that the gzip trailer (CRC, length) is intact.
    func expectEnd() throws {
        var byte: UInt8 = 0
        let n = gzread(file, &byte, 1)
        if n < 0 { throw LDError("\(path): corrupt gzip data (after the last record): \(errorText())") }
        if n > 0 { throw LDError("\(path): unexpected bytes after the last record") }
        if gzError() != Z_OK { throw LDError("\(path): corrupt gzip data (after the last record): \(errorText())") }
    }

    private func gzError() -> Int32 {
        var code: Int32 = 0
        _ = gzerror(file, &code)
        return code
    }

    private func errorText() -> String {
        var code: Int32 = 0
        guard let text = gzerror(file, &code) else { return "zlib error \(code)" }
        var s = String(cString: text)
        if s.hasPrefix(path + ": ") { s.removeFirst(path.count + 2) }  // zlib prefixes the file name
        return s.isEmpty ? "zlib error \(code)" : s
    }

    private func hex8(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 8 - s.count) + s
    }
}
