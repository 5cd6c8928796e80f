import LDKernels
import LDRecords
extension Dataset {
    /// The published CIFAR-10 class names, used when `batches.meta.txt` is absent.
    public static let cifar10ClassNames = [
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    ]

    /// Loads the CIFAR-10 or CIFAR-100 binary files of one split from `directory` (or from its
    /// `cifar-10-batches-bin` / `cifar-100-binary` sub-folder, as the archives unpack).
    ///
    /// CIFAR-10 records are 1 label byte + 3072 pixel bytes (`data_batch_1..5.bin`, `test_batch.bin`);
    /// CIFAR-100 records are coarse label + fine label + 3072 bytes (`train.bin`, `test.bin`) and the fine
    /// label is used. The pixels are already planar: 1024 red, 1024 green, 1024 blue bytes, row-major.
    static func loadCIFAR(hundred: Bool, split: DatasetSplit, directory: String, source: String) throws -> Dataset {
        try Files.requireDirectory(directory, what: hundred ? "CIFAR-100" : "CIFAR-10")
        let names: [String]
        if hundred {
            names = [split == .train ? "train.bin" : "test.bin"]
        } else {
            names = split == .train ? (1...5).map { "data_batch_\($0).bin" } : ["test_batch.bin"]
        }
        var dir = directory
        let nested = "\(directory)/\(hundred ? "cifar-100-binary" : "cifar-10-batches-bin")"
        if !Files.isFile("\(dir)/\(names[0])"), Files.isFile("\(nested)/\(names[0])") { dir = nested }

        let labelBytes = hundred ? 2 : 1
        let imageBytes = 3 * 32 * 32
        let record = labelBytes + imageBytes
        let classes = hundred ? 100 : 10
        // Sizes first, so the pixels are allocated once.
        var files: [(path: String, records: Int)] = []
        for name in names {
            let path = "\(dir)/\(name)"
            guard Files.isFile(path) else { throw LDError("\(path): file not found") }
            let size = try Files.fileSize(path)
            guard size > 0, size % record == 0 else {
                throw LDError("\(path): size \(size) is not a positive multiple of the \(record)-byte record")
            }
            files.append((path, size / record))
        }
        let total = files.reduce(0) { $0 + $1.records }
        var pixels = [UInt8](repeating: 0, count: total * imageBytes)
        var labels = [Int32](repeating: 0, count: total)
        let maxRecords = files.map(\.records).max()!
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: maxRecords * record, alignment: 16)
        defer { buffer.deallocate() }
        var at = 0
        try pixels.withUnsafeMutableBufferPointer { pix in
            try labels.withUnsafeMutableBufferPointer { lab in
                for (path, records) in files {
                    try Files.read(path, into: buffer, count: records * record)
                    let src = buffer.assumingMemoryBound(to: UInt8.self)
                    for r in 0..<records {
                        let rec = src + r * record
                        if hundred {
                            guard rec[0] < 20 else {
                                throw LDError("\(path): coarse label \(rec[0]) of record \(r) out of range 0..<20")
                            }
                        }
                        let label = rec[labelBytes - 1]
                        guard Int(label) < classes else {
                            throw LDError("\(path): label \(label) of record \(r) out of range 0..<\(classes)")
                        }
                        lab[at] = Int32(label)
                        (pix.baseAddress! + at * imageBytes).update(from: rec + labelBytes, count: imageBytes)
                        at += 1
                    }
                }
            }
        }

        var classNames: [String]
        let metaName = hundred ? "fine_label_names.txt" : "batches.meta.txt"
        if let lines = try Files.lines("\(dir)/\(metaName)") {
            guard lines.count == classes else {
                throw LDError("\(dir)/\(metaName): \(lines.count) class names (expected \(classes))")
            }
            classNames = lines
        } else {
            classNames = hundred ? (0..<classes).map { String($0) } : cifar10ClassNames
        }
        let mean: [Float] = hundred ? [0.5071, 0.4865, 0.4409] : [0.4914, 0.4822, 0.4465]
        let std: [Float] = hundred ? [0.2673, 0.2564, 0.2762] : [0.2470, 0.2435, 0.2616]
        return Dataset(pixels: pixels, labels: labels, classes: classes, channels: 3, height: 32, width: 32,
                       mean: mean, std: std, classNames: classNames, source: source)
    }
}
