import LDKernels
import LDRecords
import LDData
import LDNetworks
import Foundation

/// ld-recover's job: the synthetic images of one shard (classes x IPC range) of a recovery run, written as a
/// PNG folder (resumable per batch) and/or an image stream, with a summary line.
public struct RecoverJob {
    /// The teacher model file.
    public var teacher: String
    /// Further teachers of an ensemble (matched with `teacher`, each weighted 1/K; `RecoverSynthesizer`).
    public var moreTeachers: [String] = []
    /// Real-image initialisation (nil: the seeds' noise).
    public var realInit: RealInitSettings?
    /// `--method rded`: the real images to crop (a data set spec).
    public var rdedData: String?
    /// The method's settings; a batch size of 0 means the method's default (sre2l/cda: all classes; lpld:
    /// the IPC).
    public var settings: RecoverSettings
    /// Images per class of the whole run.
    public var ipc: Int
    /// The shard: classes and IPC indices this run makes (nil: all).
    public var classRange: Range<Int>?
    public var ipcRange: Range<Int>?
    /// The PNG folder to write (resumable) and the image stream to write (`-` is stdout).
    public var folder: String?
    public var stream: String?
    public var console = Console()

    public init(teacher: String, settings: RecoverSettings, ipc: Int) {
        self.teacher = teacher
        self.settings = settings
        self.ipc = ipc
    }

    /// Synthesises (or reads back) the shard's images and writes the outputs; returns the summary line.
    @discardableResult
    public func run() throws -> [String: JSONValue] {
        let start = Progress.now()
        var files = RunFiles()
        for t in [teacher] + moreTeachers { files.input("--teacher", t) }
        if let r = realInit {
            files.data("--data", r.data)
            if let s = r.scores { files.input("--scores", s) }
        }
        files.data("--data", rdedData)
        files.output("-o", stream)
        files.outputFolder("--png", folder)
        try files.check()
        let file = try ModelFile.load(path: teacher)
        let others = try moreTeachers.map { try ModelFile.load(path: $0) }
        let config = file.model.config
        var settings = self.settings
        if settings.batchSize == 0 { settings.batchSize = settings.method.withinClass ? ipc : config.classes }
        try settings.validate()
        let plan = try RecoverPlan(method: settings.method, classes: config.classes, ipc: ipc, classRange: classRange,
                                   ipcRange: ipcRange ?? 0..<ipc, batchSize: settings.batchSize)
        if settings.method == .rded {
            guard rdedData != nil else { throw LDError("--method rded crops real images: give them with --data DATASET") }
            guard realInit == nil && others.isEmpty else { throw LDError("--method rded takes one teacher and no --init") }
        } else if rdedData != nil {
            throw LDError("--data without --init real is for --method rded")
        }
        let synth = settings.method.optimises ? try RecoverSynthesizer(teachers: [file] + others, settings: settings) : nil
        for c in plan.classRange { try synth?.checkTarget(classIndex: c) }
        let rded = try rdedData.map { try RDED(data: $0, teacher: file, settings: settings) }
        if let rded {
            let members = rded.data.classIndices()
            for c in plan.classRange { try rded.check(class: c, members: members[c].count, ipc: ipc) }
        }
        if console.verbose { for line in file.model.summary { console.detail(line) } }
        let realStart = try realInit.map { r -> RealInit in
            let picked = try RealInit(r, teacher: file, ipc: ipc)
            console.detail("--init real: \(picked.data.source), --select \(r.rule.rawValue)")
            return picked
        }

        var identity = settings.json
        identity["teacher_hash"] = .string(file.hash)
        if !others.isEmpty { identity["teacher_hashes"] = .array(([file] + others).map { .string($0.hash) }) }
        identity["ipc"] = .int(Int64(ipc))
        if let realStart { identity.merge(realStart.json) { $1 } }
        if let rded {
            identity["data"] = .string(rded.data.source)
            identity["data_hash"] = .string(rded.data.contentHash)
        }
        let out = RecoverOutputs(file: file, plan: plan, identity: identity,
                                 folder: folder.map { RecoverFolder(root: $0, classes: config.classes, ipc: ipc,
                                                                    channels: config.channels, size: config.imageSize) })
        try out.folder?.prepare(identity: identity, classRange: plan.classRange)
        // The stream is opened now (a bad path fails before the work) and written at the end (atomically).
        let writer = try stream.map { try StreamWriter(path: $0, header: out.streamHeader(seed: settings.seed)) }
        defer { writer?.abort() }

        // The shard's images are held in memory and written once: both must fit (PNG: at least half the raw
        // size for synthetic images, which compress little).
        let bytes = Double(plan.images.count) * Double(out.imageSize)
        try Memory.require(bytes, for: "\(plan.images.count) images of \(out.imageSize) bytes")
        if let s = stream { try Disk.require(bytes, at: s, flag: "-o") }
        if let f = folder { try Disk.require(bytes / 2, at: f + "/manifest.json", flag: "--png") }
        var pixels = [UInt8](repeating: 0, count: plan.images.count * out.imageSize)
        let (todo, skipped) = out.split(plan.batches)
        if !skipped.isEmpty {
            console.say("ld-recover: \(skipped.count) of \(plan.batches.count) batches already complete in \(folder!), skipped")
        }
        var losses = RecoverLosses()
        var crops: [String: JSONValue] = [:]
        if let synth {
            losses = try synthesise(todo, synth, out, start: realStart, iterations: settings.iterations, into: &pixels)
        } else if let rded {
            crops = try stitch(todo, rded, out, into: &pixels)
        }
        try out.readBack(skipped, into: &pixels)

        let top1 = try teacherTop1(file, pixels: pixels, labels: plan.images.map { Int32($0.classIndex) })
        let seconds = Progress.now() - start
        let work = todo.reduce(0) { $0 + $1.images.count }
        var summary: [String: JSONValue] = [
            "event": .string("recover"), "method": .string(settings.method.rawValue),
            "images": .int(Int64(plan.images.count)), "synthesised": .int(Int64(work)),
            "teacher_top1": .rounded(top1, places: 2), "seconds": .rounded(seconds, places: 2),
        ]
        if synth != nil {
            summary["image_iterations_per_second"] = .rounded(Double(work * settings.iterations) / max(seconds, 1e-9), places: 1)
        } else {
            summary["images_per_second"] = .rounded(Double(work) / max(seconds, 1e-9), places: 1)
        }
        if !todo.isEmpty && synth != nil { summary.merge(losses.json(batches: todo.count)) { $1 } }
        if !crops.isEmpty { summary["rded_sources"] = .object(crops) }

        if let writer { try out.writeStream(writer, pixels: pixels) }
        try out.writeManifest(teacherPaths: [teacher] + moreTeachers, summary: summary)
        console.say(report(plan, top1: top1, losses: todo.isEmpty || synth == nil ? nil : losses.means(batches: todo.count),
                           seconds: seconds, rate: Double(work * settings.iterations) / max(seconds, 1e-9)))
        return summary
    }

    /// Runs the batches still to do, copying each one's pixels into the shard's buffer and the folder.
    func synthesise(_ todo: [RecoverBatch], _ synth: RecoverSynthesizer, _ out: RecoverOutputs, start: RealInit?,
                    iterations: Int, into pixels: inout [UInt8]) throws -> RecoverLosses {
        let progress = console.progress("recover \(settings.method.rawValue)",
                                        total: todo.reduce(0) { $0 + $1.images.count } * iterations, unit: "img-it")
        var done = 0
        var losses = RecoverLosses()
        for (j, batch) in todo.enumerated() {
            let label = "batch \(j + 1)/\(todo.count) (\(batch.description))"
            let n = batch.images.count
            let result = try synth.run(batch, start: try start?.pixels(for: batch)) { t, ce, bn in
                // The detail string is built every 10 steps only (no allocation in the other steps).
                guard (t + 1) % 10 == 0 else { return }
                progress.update(done + (t + 1) * n, "\(label) it \(t + 1)/\(iterations) ce \(lossText(ce)) bn \(lossText(bn))")
            }
            done += n * iterations
            losses.add(result)
            try out.store(batch, result.pixels, into: &pixels)
            console.detail("\(label): ce \(lossText(result.ceFirst)) -> \(lossText(result.ceLast)), bn \(lossText(result.bnFirst)) -> \(lossText(result.bnLast)) (saved images, no augmentation: \(lossText(result.bnSaved)))")
        }
        progress.finish(done, todo.isEmpty ? "nothing to do" : "")
        return losses
    }

    /// RDED: each batch's images from its class's stitched crops (a class is built once, whatever its
    /// batches). Returns, per class made, each image's cells as [image index, top, left, height, width].
    func stitch(_ todo: [RecoverBatch], _ rded: RDED, _ out: RecoverOutputs,
                into pixels: inout [UInt8]) throws -> [String: JSONValue] {
        let progress = console.progress("rded", total: todo.reduce(0) { $0 + $1.images.count }, unit: "img")
        let members = rded.data.classIndices()
        var built: [Int: RDEDClass] = [:]
        var sources: [String: JSONValue] = [:]
        var done = 0
        let size = out.imageSize
        for batch in todo {
            let c = batch.images[0].classIndex
            if built[c] == nil {
                let made = try rded.build(class: c, members: members[c], ipc: ipc)
                built = [c: made]   // batches of a class are consecutive: keep one class
                sources[String(c)] = .array(made.sources.map { cells in
                    .array(cells.map { .array([.int(Int64($0.index)), .int(Int64($0.box.top)), .int(Int64($0.box.left)),
                                               .int(Int64($0.box.height)), .int(Int64($0.box.width))]) })
                })
                console.detail("class \(c): crop cross-entropy \(lossText(made.scores.first ?? 0)) to \(lossText(made.scores.last ?? 0)) over the \(made.scores.count) kept")
            }
            let made = built[c]!
            var result: [UInt8] = []
            result.reserveCapacity(batch.images.count * size)
            for im in batch.images { result += made.pixels[(im.ipcIndex * size)..<((im.ipcIndex + 1) * size)] }
            try out.store(batch, result, into: &pixels)
            done += batch.images.count
            progress.update(done, batch.description)
        }
        progress.finish(done, todo.isEmpty ? "nothing to do" : "")
        return sources
    }

    /// The teacher's top-1 (percent) on the saved images, eval mode, no augmentation.
    func teacherTop1(_ file: ModelFile, pixels: [UInt8], labels: [Int32]) throws -> Double {
        let c = file.model.config
        let set = Dataset(pixels: pixels, labels: labels, classes: c.classes, channels: c.channels, height: c.imageSize,
                          width: c.imageSize, mean: file.mean, std: file.std, classNames: file.classNames, source: "the recovered images")
        return try file.model.evaluate(set, normalization: Normalization(of: file)).top1
    }

    func report(_ plan: RecoverPlan, top1: Double, losses: (bnFirst: Double, bnLast: Double, bnSaved: Double)?,
                seconds: Double, rate: Double) -> String {
        var line = "ld-recover: \(plan.images.count) images (\(settings.method.rawValue), classes \(plan.classRange.lowerBound):\(plan.classRange.upperBound), ipc \(plan.ipcRange.lowerBound):\(plan.ipcRange.upperBound)), teacher top-1 \(String(format: "%.2f", top1))%"
        if let l = losses {
            line += ", BN loss \(lossText(Float(l.bnFirst))) -> \(lossText(Float(l.bnLast))) (\(String(format: "%.1f", l.bnFirst / max(l.bnLast, 1e-30)))x;"
            line += " saved images without augmentation \(lossText(Float(l.bnSaved))))"
            line += ", \(String(format: "%.1f", seconds)) s, \(Progress.formatRate(rate)) img-it/s"
        }
        return line
    }
}

/// The losses of a run's batches, summed for their means.
struct RecoverLosses {
    var bnFirst = 0.0, bnLast = 0.0, bnSaved = 0.0, ceFirst = 0.0, ceLast = 0.0

    mutating func add(_ r: RecoverBatchResult) {
        bnFirst += Double(r.bnFirst); bnLast += Double(r.bnLast); bnSaved += Double(r.bnSaved)
        ceFirst += Double(r.ceFirst); ceLast += Double(r.ceLast)
    }

    func means(batches: Int) -> (bnFirst: Double, bnLast: Double, bnSaved: Double) {
        let n = Double(max(batches, 1))
        return (bnFirst / n, bnLast / n, bnSaved / n)
    }

    func json(batches: Int) -> [String: JSONValue] {
        let n = Double(max(batches, 1))
        return ["bn_first": .rounded(bnFirst / n, places: 5), "bn_last": .rounded(bnLast / n, places: 5),
                "bn_saved": .rounded(bnSaved / n, places: 5), "ce_first": .rounded(ceFirst / n, places: 5),
                "ce_last": .rounded(ceLast / n, places: 5)]
    }
}

/// Where a recovery shard's images go: the pixel buffer of the shard (class-major), the PNG folder, the
/// image stream and the folder's manifest.
struct RecoverOutputs {
    let file: ModelFile
    let plan: RecoverPlan
    let identity: [String: JSONValue]
    let folder: RecoverFolder?

    var config: ModelConfig { file.model.config }
    var imageSize: Int { config.channels * config.imageSize * config.imageSize }

    /// The image's position in the shard's buffer.
    func position(_ im: RecoverImage) -> Int {
        (im.classIndex - plan.classRange.lowerBound) * plan.ipcRange.count + (im.ipcIndex - plan.ipcRange.lowerBound)
    }

    /// The batches to synthesise, and those whose images are all in the folder already (resume).
    func split(_ batches: [RecoverBatch]) -> (todo: [RecoverBatch], skipped: [RecoverBatch]) {
        var todo: [RecoverBatch] = [], skipped: [RecoverBatch] = []
        for b in batches {
            if let folder, b.images.allSatisfy({ folder.exists($0) }) { skipped.append(b) } else { todo.append(b) }
        }
        return (todo, skipped)
    }

    /// Copies a synthesised batch into the buffer and writes its images that the folder lacks.
    func store(_ batch: RecoverBatch, _ result: [UInt8], into pixels: inout [UInt8]) throws {
        let size = imageSize
        try result.withUnsafeBufferPointer { src in
            for (k, im) in batch.images.enumerated() {
                let slice = UnsafeBufferPointer(rebasing: src[(k * size)..<((k + 1) * size)])
                let p = position(im) * size
                pixels.withUnsafeMutableBufferPointer { dst in
                    (dst.baseAddress! + p).update(from: slice.baseAddress!, count: size)
                }
                // An image already there stays: a re-run with another thread count may differ in the last bits.
                if let folder, !folder.exists(im) { try folder.write(im, pixels: slice) }
            }
        }
    }

    /// Reads the images of skipped batches back from the folder.
    func readBack(_ batches: [RecoverBatch], into pixels: inout [UInt8]) throws {
        guard let folder else { return }
        let size = imageSize
        for batch in batches {
            for im in batch.images {
                let p = position(im) * size
                pixels.replaceSubrange(p..<(p + size), with: try folder.read(im))
            }
        }
    }

    var ranges: [String: JSONValue] {
        ["class_range": .array([.int(Int64(plan.classRange.lowerBound)), .int(Int64(plan.classRange.upperBound))]),
         "ipc_range": .array([.int(Int64(plan.ipcRange.lowerBound)), .int(Int64(plan.ipcRange.upperBound))])]
    }

    func streamHeader(seed: UInt64) -> StreamHeader {
        var meta = identity.merging(ranges) { $1 }
        meta["mean"] = .array(file.mean.map { JSONValue.number($0) })
        meta["std"] = .array(file.std.map { JSONValue.number($0) })
        meta["class_names"] = .array(file.classNames.map { .string($0) })
        meta["source"] = .string("ld-recover \(plan.method.rawValue)")
        return StreamHeader(kind: .images, producer: "ld-recover", version: LD.version, seed: seed, classes: config.classes,
                            shape: [config.channels, config.imageSize, config.imageSize], teacherHash: file.hash, meta: meta)
    }

    func writeStream(_ writer: StreamWriter, pixels: [UInt8]) throws {
        let size = imageSize
        let records = plan.images.enumerated().map { (k, im) in
            (index: plan.globalIndex(im), label: im.classIndex, pixels: pixels[(k * size)..<((k + 1) * size)])
        }
        try RecoverStream.write(writer, images: records)
    }

    /// The manifest describes the folder: the class names of the class folders it holds (shards may share it).
    func writeManifest(teacherPaths: [String], summary: [String: JSONValue]) throws {
        guard let folder else { return }
        let present = (0..<config.classes).filter { FileManager.default.fileExists(atPath: folder.classFolder($0)) }
        var manifest = identity.merging(ranges) { $1 }
        manifest["producer"] = .string("ld-recover")
        manifest["version"] = .string(LD.version)
        manifest["teacher"] = .string(teacherPaths[0])
        if teacherPaths.count > 1 { manifest["teachers"] = .array(teacherPaths.map { .string($0) }) }
        manifest["mean"] = .array(file.mean.map { JSONValue.number($0) })
        manifest["std"] = .array(file.std.map { JSONValue.number($0) })
        manifest["class_names"] = .array(present.map { .string(file.classNames[$0]) })
        manifest["class_ids"] = .array(present.map { .int(Int64($0)) })
        manifest["classes"] = .int(Int64(config.classes))
        manifest["shape"] = .array([.int(Int64(config.channels)), .int(Int64(config.imageSize)), .int(Int64(config.imageSize))])
        manifest["last_run"] = .object(summary)
        try folder.writeManifest(manifest)
    }
}

/// A loss for a progress line: 4 significant-ish digits.
func lossText(_ v: Float) -> String { String(format: v >= 100 ? "%.1f" : v >= 1 ? "%.3f" : "%.4f", v) }
