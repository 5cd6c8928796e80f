import ArgumentParser
import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import LDCommand

struct Recover: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ld-recover",
        abstract: "Synthesise distilled images per class by BatchNorm-statistics matching (SRe2L, CDA, LPLD).",
        discussion: """
        Each image starts as Gaussian noise in the teacher's normalised pixel
        space and is optimised with Adam (betas 0.5, 0.9; a fresh optimiser and
        a cosine learning rate per batch) so that the frozen teacher classifies
        it as its class and the per-channel mean and biased variance at every
        BatchNorm input match a target:
          loss = CE + r_bn * (first-bn-multiplier * R_0 + R_1 + ...),
          R_l  = ||var_l - var*_l||_2 + ||mean_l - mean*_l||_2.
        Each step draws ONE crop box (RandomResizedCrop), ONE flip and ONE roll
        (0..jitter pixels per axis) for the whole batch, in that order; after
        the step pixels are clamped to [0, 1]. The last iterate is saved as
        floor(pixel * 255).

          sre2l  cross-class batches: one image of each class of a chunk of
                 --batch-size classes (default all) per IPC index; BN target:
                 the teacher's running statistics.
          cda    sre2l with a crop-scale curriculum: the lower bound falls from
                 1 to the --crop-scale minimum (default 0.5) over the first
                 --milestone of the iterations (--easy2hard-mode).
          lpld   within-class batches (--batch-size images, default --ipc);
                 BN target: that class's statistics (ld-squeeze --class-stats).

        Defaults follow the reference Fashion-MNIST pipeline: 1000 iterations,
        lr 0.25, r-bn 0.01, first BN x10, crop scale 0.5-1, flip, jitter 2;
        cda's curriculum falls from the whole image to the same 0.5. The crop
        keeps the BN loss of a 28-pixel image well above a crop-free run's
        (--crop-scale 1,1, the seeds' CIFAR recipe, matches the statistics
        ~100x better) but trains better students.

        Output: -o DIR, a PNG ImageFolder (DIR/000/ipc0000.png, ...), with
        manifest.json (settings, teacher hash, mean, std, class names) written
        last; and/or --stream FILE, an image record stream.

        Shards: random draws are keyed by class, image and batch, so shards
        (--classes A:B, --ipc-start/--ipc-end) make exactly the images of the
        whole run. Run them into one -o folder (or merge their folders and
        re-run the whole command there, which only writes the manifest), or
        `cat` their streams. Batches are fixed chunks of the whole run: class
        ranges must fall on multiples of --batch-size for sre2l/cda, IPC
        ranges for lpld. Resume: the same command skips every batch whose
        images are all in DIR. Give every shard the same --threads (1 for
        bit-identical results on any machine).

        At the end the teacher's top-1 on the saved images and the BN loss at
        the first and last iteration (mean over batches) go to stderr, and as
        one NDJSON line to stdout.

        Examples:
          ld-recover --teacher teacher.ldm --method lpld --ipc 10 -o syn/
          ld-recover --teacher teacher.ldm --batch-size 5 --classes 0:5 \\
            --stream part0.ldi
        """,
        version: LD.version
    )

    @Option(help: "Teacher model file (.ldm); lpld needs one with class statistics (ld-squeeze --class-stats).")
    var teacher: String

    @Option(help: "sre2l, cda or lpld.")
    var method: String = "sre2l"

    @Option(name: .shortAndLong, help: "PNG ImageFolder to write (created; resumable).")
    var output: String?

    @Option(help: "Image record stream to write (`-` for stdout); a shard writes its images with their indices in the whole set.")
    var stream: String?

    @Option(help: "Images per class of the whole run.")
    var ipc: Int = 10

    @Option(help: "First IPC index this run makes (default 0).")
    var ipcStart: Int?

    @Option(help: "End of the IPC indices this run makes, exclusive (default --ipc).")
    var ipcEnd: Int?

    @Option(help: "Classes this run makes, A:B (half-open; default all).")
    var classes: String?

    @Option(help: "sre2l/cda: classes per batch (default all classes); lpld: images per class batch (default --ipc).")
    var batchSize: Int?

    @Option(help: "Optimisation steps per batch.")
    var iterations: Int = 1000

    @Option(help: "Adam's initial learning rate (cosine decay per batch).")
    var lr: Float = 0.25

    @Option(name: .customLong("r-bn"), help: "Weight of the BatchNorm-statistics loss.")
    var rBN: Float = 0.01

    @Option(name: .customLong("first-bn-multiplier"), help: "Extra weight of the first BatchNorm layer's term.")
    var firstBNMultiplier: Float = 10

    @Option(help: "Largest roll offset in pixels (offsets are drawn from 0...jitter on each axis).")
    var jitter: Int = 2

    @Option(help: "RandomResizedCrop scale range MIN,MAX (default 0.5,1; for cda MIN is the curriculum's floor; 1,1: no crop).")
    var cropScale: String?

    @Flag(help: "No random horizontal flip.")
    var noFlip = false

    @Option(name: .customLong("easy2hard-mode"), help: "cda: shape of the crop-scale curriculum: step, linear or cosine (default cosine).")
    var easy2hardMode: String?

    @Option(help: "cda: fraction of the iterations over which the crop scale's lower bound falls (default 1; 0 disables).")
    var milestone: Double?

    @Option(help: "Seed of every random draw (noise, crops, flips, rolls).")
    var seed: UInt64 = 0

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard RecoverMethod(rawValue: method) != nil else {
            throw ValidationError("--method must be sre2l, cda or lpld, got '\(method)'")
        }
        guard output != nil || stream != nil else { throw ValidationError("nothing to write: give -o DIR and/or --stream FILE") }
        guard ipc > 0 else { throw ValidationError("--ipc must be positive, got \(ipc)") }
        let start = ipcStart ?? 0, end = ipcEnd ?? ipc
        guard start >= 0, start < end, end <= ipc else {
            throw ValidationError("--ipc-start \(start) --ipc-end \(end): expected 0 <= start < end <= --ipc \(ipc)")
        }
        if let classes { _ = try parseRange(classes) }
        if let b = batchSize, b <= 0 { throw ValidationError("--batch-size must be positive, got \(b)") }
        guard iterations > 0 else { throw ValidationError("--iterations must be positive, got \(iterations)") }
        if let cropScale { _ = try parseScale(cropScale) }
        if method != "cda" && (easy2hardMode != nil || milestone != nil) {
            throw ValidationError("--easy2hard-mode and --milestone belong to --method cda")
        }
        if let m = easy2hardMode, CropCurriculum(rawValue: m) == nil {
            throw ValidationError("--easy2hard-mode must be step, linear or cosine, got '\(m)'")
        }
        if let m = milestone, !(m >= 0 && m <= 1) { throw ValidationError("--milestone must be in [0, 1], got \(m)") }
    }

    /// "A:B" -> A..<B.
    func parseRange(_ s: String) throws -> Range<Int> {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]) else {
            throw ValidationError("--classes '\(s)': expected A:B (first class, end class exclusive)")
        }
        guard a >= 0, a < b else { throw ValidationError("--classes \(s): expected 0 <= A < B") }
        return a..<b
    }

    /// "MIN,MAX".
    func parseScale(_ s: String) throws -> (Float, Float) {
        let parts = s.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = Float(parts[0]), let b = Float(parts[1]) else {
            throw ValidationError("--crop-scale '\(s)': expected MIN,MAX")
        }
        guard a > 0, a <= b, b <= 1 else { throw ValidationError("--crop-scale \(s): expected 0 < MIN <= MAX <= 1") }
        return (a, b)
    }

    func run() throws {
        common.apply()
        let start = Progress.now()
        let methodValue = RecoverMethod(rawValue: method)!
        let file = try ModelFile.load(path: teacher)
        let config = file.model.config
        let classCount = config.classes

        var settings = RecoverSettings(method: methodValue,
                                       batchSize: batchSize ?? (methodValue.withinClass ? ipc : classCount))
        settings.iterations = iterations
        settings.learningRate = lr
        settings.bnWeight = rBN
        settings.firstBNMultiplier = firstBNMultiplier
        settings.jitter = jitter
        if let cropScale { (settings.cropScaleMin, settings.cropScaleMax) = try parseScale(cropScale) }
        settings.flip = !noFlip
        if let m = easy2hardMode { settings.curriculum = CropCurriculum(rawValue: m)! }
        if let m = milestone { settings.milestone = m }
        settings.seed = seed
        try settings.validate()

        let plan = try RecoverPlan(method: methodValue, classes: classCount, ipc: ipc,
                                   classRange: try classes.map(parseRange),
                                   ipcRange: (ipcStart ?? 0)..<(ipcEnd ?? ipc), batchSize: settings.batchSize)
        let synth = try RecoverSynthesizer(teacher: file, settings: settings)
        for c in plan.classRange { try synth.checkTarget(classIndex: c) }
        if common.verbose { for line in file.model.summary { common.log(line) } }

        let (channels, size) = (config.channels, config.imageSize)
        let imageSize = channels * size * size
        var identity = settings.json
        identity["teacher_hash"] = .string(file.hash)
        identity["ipc"] = .int(Int64(ipc))
        let folder = output.map { RecoverFolder(root: $0, classes: classCount, ipc: ipc, channels: channels, size: size) }
        try folder?.prepare(identity: identity, classRange: plan.classRange)
        // The stream is opened now (a bad path fails before the work) and written at the end (atomically).
        var writer: StreamWriter? = nil
        if let streamPath = stream {
            var meta = identity
            meta["mean"] = .array(file.mean.map { JSONValue.number($0) })
            meta["std"] = .array(file.std.map { JSONValue.number($0) })
            meta["class_names"] = .array(file.classNames.map { .string($0) })
            meta["source"] = .string("ld-recover \(method)")
            meta["class_range"] = .array([.int(Int64(plan.classRange.lowerBound)), .int(Int64(plan.classRange.upperBound))])
            meta["ipc_range"] = .array([.int(Int64(plan.ipcRange.lowerBound)), .int(Int64(plan.ipcRange.upperBound))])
            let header = StreamHeader(kind: .images, producer: "ld-recover", version: LD.version, seed: seed,
                                      classes: classCount, shape: [channels, size, size], teacherHash: file.hash, meta: meta)
            writer = try StreamWriter(path: streamPath, header: header)
        }
        defer { writer?.abort() }

        // The shard's images, class-major; filled by synthesis or, for skipped batches, read back.
        let images = plan.images
        let ipcCount = plan.ipcRange.count
        func position(_ im: RecoverImage) -> Int {
            (im.classIndex - plan.classRange.lowerBound) * ipcCount + (im.ipcIndex - plan.ipcRange.lowerBound)
        }
        var pixels = [UInt8](repeating: 0, count: images.count * imageSize)

        var todo: [RecoverBatch] = []
        var skipped: [RecoverBatch] = []
        for b in plan.batches {
            if let folder, b.images.allSatisfy({ folder.exists($0) }) { skipped.append(b) } else { todo.append(b) }
        }
        if !skipped.isEmpty {
            common.log("ld-recover: \(skipped.count) of \(plan.batches.count) batches already complete in \(folder!.root), skipped")
        }

        let totalWork = todo.reduce(0) { $0 + $1.images.count } * iterations
        let progress = Progress("recover \(method)", total: totalWork, unit: "img-it", quiet: common.quiet)
        var done = 0
        var bnFirst = 0.0, bnLast = 0.0, bnSaved = 0.0, ceFirst = 0.0, ceLast = 0.0
        for (j, batch) in todo.enumerated() {
            let label = "batch \(j + 1)/\(todo.count) (\(batch.description))"
            let n = batch.images.count
            let result = try synth.run(batch) { t, ce, bn in
                // The detail string is built every 10 steps only (no allocation in the other steps).
                guard (t + 1) % 10 == 0 else { return }
                progress.update(done + (t + 1) * n, "\(label) it \(t + 1)/\(iterations) ce \(fmt(ce)) bn \(fmt(bn))")
            }
            done += n * iterations
            bnFirst += Double(result.bnFirst); bnLast += Double(result.bnLast); bnSaved += Double(result.bnSaved)
            ceFirst += Double(result.ceFirst); ceLast += Double(result.ceLast)
            try result.pixels.withUnsafeBufferPointer { src in
                for (k, im) in batch.images.enumerated() {
                    let slice = UnsafeBufferPointer(rebasing: src[(k * imageSize)..<((k + 1) * imageSize)])
                    let p = position(im) * imageSize
                    pixels.withUnsafeMutableBufferPointer { dst in
                        (dst.baseAddress! + p).update(from: slice.baseAddress!, count: imageSize)
                    }
                    // An image already there stays: a re-run with another thread count may differ in the last bits.
                    if let folder, !folder.exists(im) { try folder.write(im, pixels: slice) }
                }
            }
            if common.verbose {
                common.log("\(label): ce \(fmt(result.ceFirst)) -> \(fmt(result.ceLast)), bn \(fmt(result.bnFirst)) -> \(fmt(result.bnLast)) (saved images, no augmentation: \(fmt(result.bnSaved)))")
            }
        }
        progress.finish(done, todo.isEmpty ? "nothing to do" : "")
        for batch in skipped {
            for im in batch.images {
                let read = try folder!.read(im)
                let p = position(im) * imageSize
                pixels.replaceSubrange(p..<(p + imageSize), with: read)
            }
        }

        let labels = images.map { Int32($0.classIndex) }
        let hits = synth.correct(pixels: pixels, labels: labels)
        let top1 = 100 * Double(hits) / Double(images.count)
        let ran = Double(max(todo.count, 1))
        let seconds = Progress.now() - start
        let rate = Double(done) / max(seconds, 1e-9)

        var summary: [String: JSONValue] = [
            "event": .string("recover"),
            "method": .string(method),
            "images": .int(Int64(images.count)),
            "synthesised": .int(Int64(todo.reduce(0) { $0 + $1.images.count })),
            "teacher_top1": .double(rounded(top1, 2)),
            "seconds": .double(rounded(seconds, 2)),
            "image_iterations_per_second": .double(rounded(rate, 1)),
        ]
        if !todo.isEmpty {
            summary["bn_first"] = .double(rounded(bnFirst / ran, 5))
            summary["bn_last"] = .double(rounded(bnLast / ran, 5))
            summary["bn_saved"] = .double(rounded(bnSaved / ran, 5))
            summary["ce_first"] = .double(rounded(ceFirst / ran, 5))
            summary["ce_last"] = .double(rounded(ceLast / ran, 5))
        }

        if let writer {
            let records = images.enumerated().map { (k, im) in
                (index: plan.globalIndex(im), label: im.classIndex, pixels: pixels[(k * imageSize)..<((k + 1) * imageSize)])
            }
            try RecoverStream.write(writer, images: records)
        }

        if let folder {
            // The manifest describes the folder: class names of the class folders it holds (shards may share it).
            let present = (0..<classCount).filter { FileManager.default.fileExists(atPath: folder.classFolder($0)) }
            var manifest = identity
            manifest["producer"] = .string("ld-recover")
            manifest["version"] = .string(LD.version)
            manifest["teacher"] = .string(teacher)
            manifest["mean"] = .array(file.mean.map { JSONValue.number($0) })
            manifest["std"] = .array(file.std.map { JSONValue.number($0) })
            manifest["classNames"] = .array(present.map { .string(file.classNames[$0]) })
            manifest["class_ids"] = .array(present.map { .int(Int64($0)) })
            manifest["classes"] = .int(Int64(classCount))
            manifest["shape"] = .array([.int(Int64(channels)), .int(Int64(size)), .int(Int64(size))])
            manifest["class_range"] = .array([.int(Int64(plan.classRange.lowerBound)), .int(Int64(plan.classRange.upperBound))])
            manifest["ipc_range"] = .array([.int(Int64(plan.ipcRange.lowerBound)), .int(Int64(plan.ipcRange.upperBound))])
            manifest["last_run"] = .object(summary)
            try folder.writeManifest(manifest)
        }

        var line = "ld-recover: \(images.count) images (\(method), classes \(plan.classRange.lowerBound):\(plan.classRange.upperBound), ipc \(plan.ipcRange.lowerBound):\(plan.ipcRange.upperBound)), teacher top-1 \(String(format: "%.2f", top1))%"
        if !todo.isEmpty {
            line += ", BN loss \(fmt(Float(bnFirst / ran))) -> \(fmt(Float(bnLast / ran))) (\(String(format: "%.1f", bnFirst / max(bnLast, 1e-30)))x;"
            line += " saved images without augmentation \(fmt(Float(bnSaved / ran))))"
            line += ", \(String(format: "%.1f", seconds)) s, \(Progress.formatRate(rate)) img-it/s"
        }
        common.log(line)
        if stream != "-" {
            print(JSONValue.object(summary).serialized)
        }
    }
}

private func fmt(_ v: Float) -> String { String(format: v >= 100 ? "%.1f" : v >= 1 ? "%.3f" : "%.4f", v) }

private func rounded(_ v: Double, _ digits: Int) -> Double {
    guard v.isFinite else { return 0 }
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    return (v * p).rounded() / p
}

ToolMain.run(Recover.self, name: "ld-recover")
