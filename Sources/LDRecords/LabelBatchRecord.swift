import LDKernels

/// How a batch's images were mixed.
public enum MixKind: UInt8, Sendable {
    case none = 0
    case cutmix = 1
    case mixup = 2
    /// "none", "cutmix", "mixup".
    public var name: String {
        switch self {
        case .none: return "none"
        case .cutmix: return "cutmix"
        case .mixup: return "mixup"
        }
    }
}

/// Teacher logits of a batch: all classes as fp16 or fp32 (B·K, image-major), or the best k classes
/// per image (class ids and fp16 values, B·k each, best first).
public enum Logits: Equatable {
    case half([Float16])
    case single([Float])
    case topK(k: Int, classes: [UInt16], values: [Float16])

    /// The first value that is NaN or infinite, if any.
    public var firstNonFinite: Float? {
        switch self {
        case .half(let v), .topK(_, _, let v): return v.first(where: { !$0.isFinite }).map(Float.init)
        case .single(let v): return v.first(where: { !$0.isFinite })
        }
    }

    /// Whether the values are stored as fp16.
    public var isHalf: Bool { if case .single = self { return false }; return true }

    /// Format byte of the payload.
    var format: UInt8 {
        switch self {
        case .half: return 0
        case .single: return 1
        case .topK: return 2
        }
    }

    /// "fp16", "fp32", "topk".
    public var formatName: String {
        switch self {
        case .half: return "fp16"
        case .single: return "fp32"
        case .topK: return "topk"
        }
    }

    /// Dense float32 logits, B·K image-major; classes not among a top-k get `fill`.
    public func dense(batch: Int, classes: Int, fill: Float = 0) -> [Float] {
        switch self {
        case .single(let v): return v
        case .half(let v): return v.map { Float($0) }
        case .topK(let k, let ids, let vals):
            var out = [Float](repeating: fill, count: batch * classes)
            out.withUnsafeMutableBufferPointer { o in
                for b in 0..<batch {
                    for j in 0..<k {
                        let c = Int(ids[b * k + j])
                        if c < classes { o[b * classes + c] = Float(vals[b * k + j]) }
                    }
                }
            }
            return out
        }
    }
}

/// One batch of soft labels (FKD style): which images, how each was cropped and flipped, how the batch was
/// mixed, and what the teacher said. Replay uses exactly these values; nothing is re-simulated.
public struct LabelBatchRecord: RecordCodec, Equatable {
    public static let recordKind = RecordKind.labels
    /// Global batch id (unique across epochs and shards).
    public var batch: UInt64
    /// Epoch of the batch.
    public var epoch: UInt32
    /// Number of classes K of the logits.
    public var classes: Int
    /// Image indices, in batch order (B of them).
    public var indices: [UInt32]
    /// Per image crop box (RandomResizedCrop source box).
    public var crops: [CropBox]
    /// Per image horizontal flip.
    public var flips: [Bool]
    /// How the batch was mixed.
    public var mix: MixKind
    /// Mixing partner of each position (B entries, each < B); empty when `mix` is `.none`.
    public var permutation: [UInt32]
    /// Mixing weight of the original image.
    public var lambda: Float
    /// CutMix box (zero for Mixup and none).
    public var box: CropBox
    /// Teacher logits.
    public var logits: Logits

    public init(batch: UInt64, epoch: UInt32, classes: Int, indices: [UInt32], crops: [CropBox], flips: [Bool],
                mix: MixKind = .none, permutation: [UInt32] = [], lambda: Float = 1, box: CropBox = .zero,
                logits: Logits) {
        self.batch = batch
        self.epoch = epoch
        self.classes = classes
        self.indices = indices
        self.crops = crops
        self.flips = flips
        self.mix = mix
        self.permutation = permutation
        self.lambda = lambda
        self.box = box
        self.logits = logits
    }

    /// Batch size B.
    public var count: Int { indices.count }

    /// Encodes; the arrays must agree with `count` and `classes` (checked by `validate`).
    public func encode() -> [UInt8] {
        let b = indices.count
        var logitBytes = 0
        var k = 0
        switch logits {
        case .half(let v): logitBytes = 2 * v.count
        case .single(let v): logitBytes = 4 * v.count
        case .topK(let kk, let ids, let vals): k = kk; logitBytes = 2 * ids.count + 2 * vals.count
        }
        var w = PayloadWriter(capacity: 24 + 13 * b + (mix == .none ? 0 : 12 + 4 * b) + logitBytes)
        w.u64(batch)
        w.u32(epoch)
        w.u32(UInt32(b))
        w.u32(UInt32(classes))
        w.u8(mix.rawValue)
        w.u8(logits.format)
        w.u16(UInt16(truncatingIfNeeded: k))
        w.array(indices)
        var boxes = [UInt16](repeating: 0, count: 4 * b)
        for (i, c) in crops.prefix(b).enumerated() {
            // validate() has checked that every field fits
            (boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3]) = (try? c.encode16()) ?? (0, 0, 0, 0)
        }
        w.array(boxes)
        var flags = [UInt8](repeating: 0, count: b)
        for (i, f) in flips.prefix(b).enumerated() where f { flags[i] = 1 }
        w.bytes(flags)
        if mix != .none {
            w.f32(lambda)
            let (t, l, h, wd) = (try? box.encode16()) ?? (0, 0, 0, 0)
            w.array([t, l, h, wd])
            w.array(permutation)
        }
        switch logits {
        case .half(let v): w.f16Array(v)
        case .single(let v): w.f32Array(v)
        case .topK(_, let ids, let vals): w.array(ids); w.f16Array(vals)
        }
        return w.bytes
    }

    public func checkWritable() throws { try validate() }

    /// Checks that the arrays agree with each other (call before writing; the decoder checks the same).
    public func validate() throws {
        let b = indices.count
        if crops.count != b || flips.count != b {
            throw LDError("label batch \(batch): \(b) indices but \(crops.count) crops and \(flips.count) flips")
        }
        if mix != .none && permutation.count != b {
            throw LDError("label batch \(batch): \(b) images but a permutation of \(permutation.count)")
        }
        if mix == .none && !permutation.isEmpty {
            throw LDError("label batch \(batch): a permutation without a mix")
        }
        for c in crops + [box] where (try? c.encode16()) == nil {
            throw LDError("label batch \(batch): box \(c) does not fit the record's u16 fields")
        }
        if let p = permutation.first(where: { Int($0) >= b }) {
            throw LDError("label batch \(batch): permutation entry \(p) out of range for a batch of \(b)")
        }
        if mix != .none && !(lambda >= 0 && lambda <= 1) {
            throw LDError("label batch \(batch): mix weight lambda \(lambda) is not in 0...1")
        }
        if let bad = logits.firstNonFinite {
            throw LDError("label batch \(batch): a logit is \(bad)\(logits.isHalf ? " (beyond fp16's range of 65504? store --logits fp32)" : ""); a stream holds finite logits only")
        }
        let dense: Int
        switch logits {
        case .half(let v): dense = v.count
        case .single(let v): dense = v.count
        case .topK(let k, let ids, let vals):
            if k < 1 || k > classes || ids.count != b * k || vals.count != b * k {
                throw LDError("label batch \(batch): top-\(k) logits with \(ids.count) classes and \(vals.count) values for \(b) images of \(classes) classes")
            }
            if let c = ids.first(where: { Int($0) >= classes }) {
                throw LDError("label batch \(batch): top-k class \(c) out of range for \(classes) classes")
            }
            return
        }
        if dense != b * classes {
            throw LDError("label batch \(batch): logits have \(dense) values, expected \(b)x\(classes)")
        }
    }

    public init(payload: UnsafeRawBufferPointer, header: StreamHeader, context: RecordContext) throws {
        var r = PayloadReader(payload, context: context)
        batch = try r.u64("batch")
        epoch = try r.u32("epoch")
        let b = Int(try r.u32("batch size"))
        classes = Int(try r.u32("classes"))
        let mixByte = try r.u8("mix")
        let format = try r.u8("logit format")
        let k = Int(try r.u16("k"))
        guard let m = MixKind(rawValue: mixByte) else { throw r.error("unknown mix kind \(mixByte)") }
        mix = m
        if header.classes > 0 && classes != header.classes {
            throw r.error("logits for \(classes) classes, header says \(header.classes)")
        }
        indices = try r.array(b, of: UInt32.self, "indices")
        let boxes = try r.array(4 * b, of: UInt16.self, "crops")
        crops = (0..<b).map { CropBox(u16: boxes[4 * $0], boxes[4 * $0 + 1], boxes[4 * $0 + 2], boxes[4 * $0 + 3]) }
        let flags = try r.bytes(b, "flags")
        flips = flags.map { $0 & 1 != 0 }
        if m != .none {
            lambda = try r.f32("lambda")
            let bx = try r.array(4, of: UInt16.self, "box")
            box = CropBox(u16: bx[0], bx[1], bx[2], bx[3])
            permutation = try r.array(b, of: UInt32.self, "permutation")
            for p in permutation where Int(p) >= b {
                throw r.error("permutation entry \(p) out of range for a batch of \(b)")
            }
        } else {
            lambda = 1
            box = .zero
            permutation = []
        }
        let (bk, o) = b.multipliedReportingOverflow(by: classes)
        if o { throw r.error("batch \(b) x classes \(classes) overflows") }
        switch format {
        case 0: logits = .half(try r.f16Array(bk, "logits"))
        case 1: logits = .single(try r.f32Array(bk, "logits"))
        case 2:
            if k < 1 || k > classes { throw r.error("top-k with k = \(k) for \(classes) classes") }
            let ids = try r.array(b * k, of: UInt16.self, "top-k classes")
            for c in ids where Int(c) >= classes {
                throw r.error("top-k class \(c) out of range for \(classes) classes")
            }
            logits = .topK(k: k, classes: ids, values: try r.f16Array(b * k, "top-k values"))
        default: throw r.error("unknown logit format \(format)")
        }
        if m != .none && !(lambda >= 0 && lambda <= 1) { throw r.error("mix weight lambda \(lambda) is not in 0...1") }
        if let bad = logits.firstNonFinite { throw r.error("a logit is \(bad); a stream holds finite logits only") }
        try r.finish()
    }
}
