import LDKernels
import LDRecords
import LDData
import LDNetworks
// Which images a run (or a shard of it) makes, in which optimisation batches, and the random keys of each.
//
// The batch composition is fixed by the whole run, never by the shard, so the union of shards is the whole
// run byte for byte:
//
// - SRe2L / CDA: the classes 0..<K are cut into fixed chunks of `batchSize` ([0, B), [B, 2B), ..., the last
//   one shorter). One batch = one IPC index x one chunk: one image per class (sre2l_cda.md 4.1). A shard
//   `--classes A:E` must start and end on chunk boundaries (A a multiple of B; E a multiple of B or K).
// - LPLD: the IPC indices 0..<IPC are cut into fixed chunks of `batchSize` (default IPC: one batch per class,
//   lpld.md 3.1). One batch = one class x one chunk. A shard `--ipc-start S --ipc-end E` must start and end on
//   chunk boundaries (S a multiple of B; E a multiple of B or IPC).
//
// Every IPC range works for SRe2L / CDA (IPC indices are separate batches) and every class range for LPLD.
//
// Random keys (`LDRandom`, stage `recover`), independent of which shard or in what order a batch runs:
// - image (class c, IPC index i), initial noise N(0, 1) in normalised space: (major c, minor i, item 0);
// - batch step t, crop box then flip then roll: SRe2L/CDA (major i, minor first class of the chunk,
//   item t + 1); LPLD (major c, minor first IPC index of the chunk, item t + 1).

/// One image of the set: its class and its index within the class.
public struct RecoverImage: Equatable, Hashable, Sendable {
    public var classIndex: Int
    public var ipcIndex: Int

    public init(classIndex: Int, ipcIndex: Int) {
        self.classIndex = classIndex
        self.ipcIndex = ipcIndex
    }
}

/// One optimisation batch: its images in batch order and the key of its per-step draws.
public struct RecoverBatch: Equatable, Sendable {
    public var images: [RecoverImage]
    /// `major`, `minor` of the per-step random stream (see the file comment).
    public var keyMajor: Int
    public var keyMinor: Int

    public init(images: [RecoverImage], keyMajor: Int, keyMinor: Int) {
        self.images = images
        self.keyMajor = keyMajor
        self.keyMinor = keyMinor
    }

    /// "classes 0:10, ipc 3" or "class 4, ipc 0:10", for progress lines.
    public var description: String {
        guard let first = images.first, let last = images.last else { return "empty" }
        if first.classIndex == last.classIndex {
            return "class \(first.classIndex), ipc \(first.ipcIndex):\(last.ipcIndex + 1)"
        }
        return "classes \(first.classIndex):\(last.classIndex + 1), ipc \(first.ipcIndex)"
    }
}

/// The batches of one run or shard.
public struct RecoverPlan: Equatable, Sendable {
    public let method: RecoverMethod
    /// Classes of the teacher (K) and images per class of the whole run (IPC).
    public let classes: Int
    public let ipc: Int
    /// This run's share: classes and IPC indices (half-open).
    public let classRange: Range<Int>
    public let ipcRange: Range<Int>
    public let batchSize: Int
    public let batches: [RecoverBatch]

    /// Builds the plan, or throws a one-line reason when a range is impossible or cuts a batch.
    public init(method: RecoverMethod, classes: Int, ipc: Int, classRange: Range<Int>? = nil,
                ipcRange: Range<Int>? = nil, batchSize: Int) throws {
        guard classes > 0 else { throw LDError("the teacher has no classes") }
        try Limits.check(ipc, "--ipc", limit: Limits.ipc)
        guard batchSize > 0 else { throw LDError("--batch-size must be positive, got \(batchSize)") }
        let cr = classRange ?? 0..<classes
        let ir = ipcRange ?? 0..<ipc
        guard !cr.isEmpty, cr.lowerBound >= 0, cr.upperBound <= classes else {
            throw LDError("--classes \(cr.lowerBound):\(cr.upperBound): expected A:B with 0 <= A < B <= \(classes) (the teacher's classes)")
        }
        guard !ir.isEmpty, ir.lowerBound >= 0, ir.upperBound <= ipc else {
            throw LDError("--ipc-start \(ir.lowerBound) --ipc-end \(ir.upperBound): expected 0 <= start < end <= \(ipc) (--ipc)")
        }
        self.method = method
        self.classes = classes
        self.ipc = ipc
        self.classRange = cr
        self.ipcRange = ir
        self.batchSize = batchSize

        var batches: [RecoverBatch] = []
        if method.withinClass {
            try RecoverPlan.requireChunkBoundaries(ir, chunk: batchSize, total: ipc,
                what: "--ipc-start \(ir.lowerBound) --ipc-end \(ir.upperBound)",
                unit: "IPC indices", fix: "use a --batch-size that divides the range ends")
            for c in cr {
                var start = ir.lowerBound
                while start < ir.upperBound {
                    let end = min(start + batchSize, ir.upperBound)
                    batches.append(RecoverBatch(images: (start..<end).map { RecoverImage(classIndex: c, ipcIndex: $0) },
                                                keyMajor: c, keyMinor: start))
                    start = end
                }
            }
        } else {
            try RecoverPlan.requireChunkBoundaries(cr, chunk: batchSize, total: classes,
                what: "--classes \(cr.lowerBound):\(cr.upperBound)",
                unit: "classes", fix: "shard on multiples of --batch-size, or lower it")
            for i in ir {
                var start = cr.lowerBound
                while start < cr.upperBound {
                    let end = min(start + batchSize, cr.upperBound)
                    batches.append(RecoverBatch(images: (start..<end).map { RecoverImage(classIndex: $0, ipcIndex: i) },
                                                keyMajor: i, keyMinor: start))
                    start = end
                }
            }
        }
        self.batches = batches
    }

    /// A range must not cut one of the fixed chunks [kB, (k+1)B) of 0..<total.
    private static func requireChunkBoundaries(_ r: Range<Int>, chunk: Int, total: Int, what: String,
                                               unit: String, fix: String) throws {
        let okStart = r.lowerBound % chunk == 0
        let okEnd = r.upperBound % chunk == 0 || r.upperBound == total
        guard okStart && okEnd else {
            throw LDError("\(what) cuts a batch: batches are fixed chunks of \(chunk) \(unit) (--batch-size) so that shards add up to the whole run; \(fix)")
        }
    }

    /// All images of this run, class-major (the order of the folder and of the stream).
    public var images: [RecoverImage] {
        var out: [RecoverImage] = []
        out.reserveCapacity(classRange.count * ipcRange.count)
        for c in classRange { for i in ipcRange { out.append(RecoverImage(classIndex: c, ipcIndex: i)) } }
        return out
    }

    /// The image's index in the whole set (class-major: class * IPC + ipc index), as the folder loader and a
    /// concatenation of shard streams number it.
    public func globalIndex(_ image: RecoverImage) -> Int { image.classIndex * ipc + image.ipcIndex }

    /// The initial-noise stream of an image.
    public static func noiseRandom(seed: UInt64, _ image: RecoverImage) -> LDRandom {
        LDRandom(seed: seed, stage: .recover, major: image.classIndex, minor: image.ipcIndex, item: 0)
    }

    /// The draw stream of step t of a batch.
    public static func stepRandom(seed: UInt64, _ batch: RecoverBatch, iteration t: Int) -> LDRandom {
        LDRandom(seed: seed, stage: .recover, major: batch.keyMajor, minor: batch.keyMinor, item: t + 1)
    }
}
