import LDKernels
import LDRecords
/// Image sets as record streams (kind `images`): the header carries the shape [C, H, W], the class count and,
/// in `meta`, the normalisation (`mean`, `std`), `class_names` and the `source`; one `ImageRecord` per image.
///
/// The image-set identity (`Dataset.contentHash`) depends only on shape, classes, labels and pixels, so the
/// same images have the same identity as a PNG folder and as a stream.
extension Dataset {
    /// A 64-bit identity of the images and labels (XXH64 over C, H, W, classes, the labels and the pixels),
    /// as 16 hex digits. Label streams record it so consumers can refuse a different image set.
    public var contentHash: String {
        var h = ContentHash()
        for v in [channels, height, width, classes] { h.update(integer: UInt32(v)) }
        labels.withUnsafeBytes { h.update($0) }
        if let files {
            // A set kept on disk is not decoded to be named: its identity is that of its files (paths below
            // the folder, each file's size and channels), a different value from the same images in memory.
            h.update(integer: 0xF11E5)
            for (path, hd) in zip(files.paths, files.headers) {
                let name = Array(path.utf8.dropFirst(files.root.utf8.count))
                h.update(integer: UInt32(name.count))
                name.withUnsafeBytes { h.update($0) }
                for v in [hd.channels, hd.height, hd.width] { h.update(integer: UInt32(v)) }
            }
            return ContentHash.hex(h.finalize())
        }
        pixels.withUnsafeBytes { h.update($0) }
        return ContentHash.hex(h.finalize())
    }

    /// The header of this set's image stream. It carries no image-set hash: shards of one set (ld-recover
    /// `--classes`) must concatenate, and the identity is computed from the content on loading.
    public func streamHeader(producer: String, seed: UInt64 = 0, teacherHash: String? = nil,
                             meta extra: [String: JSONValue] = [:]) -> StreamHeader {
        var meta = extra
        meta["mean"] = .array(mean.map { JSONValue.number($0) })
        meta["std"] = .array(std.map { JSONValue.number($0) })
        meta["class_names"] = .array(classNames.map { .string($0) })
        meta["source"] = .string(source)
        if let r = evalRatio { meta["eval_ratio"] = .double(r) }
        return StreamHeader(kind: .images, producer: producer, version: LD.version, seed: seed, classes: classes,
                            shape: [channels, height, width], teacherHash: teacherHash, meta: meta)
    }

    /// Writes the images in `range` as records with their indices in this set; a set on disk is decoded
    /// `chunk` images at a time (on all cores).
    public func writeRecords(_ writer: StreamWriter, range: Range<Int>, chunk: Int = 256) throws {
        let size = imageSize
        var buffer = [UInt8](repeating: 0, count: isResident ? 0 : min(chunk, range.count) * size)
        for start in Swift.stride(from: range.lowerBound, to: range.upperBound, by: chunk) {
            let end = min(start + chunk, range.upperBound)
            if isResident {
                for i in start..<end {
                    try writer.write(ImageRecord(index: UInt64(i), label: UInt32(labels[i]), pixels: Array(pixels[i * size..<(i + 1) * size])))
                }
                continue
            }
            try buffer.withUnsafeMutableBufferPointer { try images(Array(start..<end), into: $0.baseAddress!) }
            for i in start..<end {
                let k = i - start
                try writer.write(ImageRecord(index: UInt64(i), label: UInt32(labels[i]), pixels: Array(buffer[k * size..<(k + 1) * size])))
            }
        }
    }

    /// Writes the set as an image stream to `path` (`-` for stdout), atomically.
    public func writeStream(path: String, producer: String, seed: UInt64 = 0, teacherHash: String? = nil,
                            compression: StreamCompression = .none, meta: [String: JSONValue] = [:]) throws {
        let writer = try StreamWriter(path: path, header: streamHeader(producer: producer, seed: seed,
                                                                       teacherHash: teacherHash, meta: meta),
                                      compression: compression)
        do {
            try writeRecords(writer, range: 0..<count)
            try writer.finish()
        } catch {
            writer.abort()
            throw error
        }
    }

    /// Loads an image stream (`-` for stdin). Concatenated streams must agree on shape and classes; the image
    /// indices, over all of them, must be exactly 0..<n in any order (shards by class concatenate).
    static func loadRecordStream(path: String) throws -> Dataset {
        let reader = try StreamReader(path: path)
        try reader.expect(kind: .images)
        reader.requireMatchingHeaders()
        let header = reader.header
        guard header.shape.count == 3, header.shape.allSatisfy({ $0 > 0 }), header.classes > 0 else {
            throw LDError("\(reader.name): image stream header needs shape [C, H, W] and classes, got shape \(header.shape), classes \(header.classes)")
        }
        guard header.classes <= Limits.classes else {
            throw LDError("\(reader.name): image stream header says \(header.classes) classes, more than \(Limits.classes)")
        }
        let (c, h, w) = (header.shape[0], header.shape[1], header.shape[2])
        var records: [ImageRecord] = []
        var held = 0.0
        while let r = try reader.next() {
            guard r.kind == .image else { continue }
            records.append(try ImageRecord(r, header: reader.header))
            // the records and the set built from them: a compressed stream can expand without bound
            held += 2 * Double(c * h * w + 64)
            if held > Memory.available { try Memory.require(held, for: "\(reader.name): \(records.count) images of \(c)x\(h)x\(w)") }
        }
        guard !records.isEmpty else { throw LDError("\(reader.name): image stream holds no images") }
        let n = records.count
        // An ld-recover set states its IPC: class-major, image c * IPC + i is slot i of class c, and the
        // whole set has classes x IPC images. A merge (`cat` of shards) must be exactly that.
        var ipc: Int? = nil
        if header.producer == "ld-recover", let v = header.meta["ipc"]?.doubleValue, v >= 1, v <= Double(Limits.ipc), v == v.rounded() {
            ipc = Int(v)
        }
        func slotName(_ index: Int) -> String {
            guard let k = ipc else { return "image \(index)" }
            return "image \(index) (class \(index / k), IPC slot \(index % k))"
        }
        let whole = ipc.map { $0 * header.classes } ?? n
        var seen = [Bool](repeating: false, count: max(whole, n))
        for r in records {
            guard r.index < UInt64(seen.count) else {
                throw LDError("\(reader.name): image index \(r.index) out of range for a set of \(whole) images")
            }
            let i = Int(r.index)
            guard !seen[i] else {
                throw LDError("\(reader.name): \(slotName(i)) appears twice (a shard merged twice?)")
            }
            if let k = ipc, Int(r.label) != i / k {
                throw LDError("\(reader.name): \(slotName(i)) is labelled class \(r.label)")
            }
            seen[i] = true
        }
        if let missing = seen.firstIndex(of: false) {
            let count = seen.filter { !$0 }.count
            throw LDError("\(reader.name): \(slotName(missing)) is missing\(count > 1 ? " (and \(count - 1) more)" : "") of \(whole) images\(ipc != nil ? ": a shard left out of the merge, or a partial run" : "")")
        }
        var slot = [Int](repeating: -1, count: n)
        for (i, r) in records.enumerated() { slot[Int(r.index)] = i }
        let size = c * h * w
        var pixels = [UInt8](repeating: 0, count: n * size)
        var labels = [Int32](repeating: 0, count: n)
        pixels.withUnsafeMutableBufferPointer { dst in
            for (position, i) in slot.enumerated() {
                records[i].pixels.withUnsafeBufferPointer { src in
                    (dst.baseAddress! + position * size).update(from: src.baseAddress!, count: size)
                }
                labels[position] = Int32(records[i].label)
            }
        }
        // Absent fields take defaults; present ones must be right (a wrong count is refused, not replaced).
        let mean = try header.metaNumbers("mean", count: c, source: reader.name) ?? [Float](repeating: 0.5, count: c)
        let std = try header.metaNumbers("std", count: c, source: reader.name) ?? [Float](repeating: 0.5, count: c)
        try Normalization.check(mean: mean, std: std, source: "\(reader.name): header")
        let names = try header.metaStrings("class_names", count: header.classes, source: reader.name)
            ?? (0..<header.classes).map(String.init)
        var set = Dataset(pixels: pixels, labels: labels, classes: header.classes, channels: c, height: h, width: w,
                          mean: mean, std: std, classNames: names, source: path)
        if let g = header.meta[ImageGridMeta.key], g != .null {
            set.grid = try ImageGridMeta.factor(g.doubleValue ?? .nan, source: path)
        }
        if let r = header.meta["eval_ratio"], r != .null {
            guard let v = r.doubleValue, v > 0, v <= 1 else { throw LDError("\(reader.name): header meta 'eval_ratio' must be a number in (0, 1]") }
            set.evalRatio = v
        }
        return set
    }
}
