import LDKernels
import LDRecords
import LDData
import LDNetworks

/// The dense logit formats of `--logits` (top-k is `--top-k`).
public enum LogitFormat: String, CaseIterable, Sendable {
    case fp16, fp32

    /// The storage, or top-k (fp16 values) when `topK` is given.
    public func storage(topK: Int?) -> LogitStorage {
        if let k = topK { return .topK(k) }
        return self == .fp16 ? .fp16 : .fp32
    }
}

/// ld-relabel's job: the label stream of `settings` for the images of `data`, labelled by `teacher`.
public struct RelabelJob {
    public var teacher: String
    public var data: String
    /// `--class-map FILE`: pairs the images' class names with the teacher's (see `ClassMap`).
    public var classMap: String?
    public var settings: RelabelSettings
    /// The stream to write (`-` is stdout).
    public var output = "-"
    public var compression: StreamCompression = .none
    public var console = Console()

    public init(teacher: String, data: String, settings: RelabelSettings) {
        self.teacher = teacher
        self.data = data
        self.settings = settings
    }

    public func run() throws {
        var files = RunFiles()
        files.input("--teacher", teacher)
        files.data("--data", data)
        files.output("-o", output)
        try files.check()
        let teacherFile = try ModelFile.load(path: teacher)
        let images = try Dataset.load(data, imageSize: teacherFile.model.config.imageSize, evalRatio: teacherFile.evalRatio)
        // The stored labels are the teacher's, in its class order (the stream's header names it, and
        // ld-train aligns its sets to it); the images' own classes must be the teacher's or pair with them.
        let map = try classMap.map { try ClassMap(path: $0) }
        if let note = try teacherFile.pair(images, role: "--data", map: map).note { console.say("ld-relabel: " + note) }
        let relabeler = try Relabeler(teacher: teacherFile, images: images, settings: settings)
        // A stream that cannot fit on the disk fails now, not when the disk is full (zstd: a quarter, less
        // than logits ever compress to, so only a run that cannot fit is refused).
        let bytes = Double(relabeler.recordCount) * settings.recordBytes(classes: teacherFile.model.config.classes)
        try Disk.require(compression == .none ? bytes : bytes / 4, at: output, flag: "-o")
        let writer = try StreamWriter(path: output, header: relabeler.header, compression: compression)
        let range = settings.epochRange
        if console.verbose { for line in teacherFile.model.summary { console.detail(line) } }
        console.detail("images \(images.source): \(images.count) of \(images.channels)x\(images.height)x\(images.width), \(images.classes) classes")
        console.detail("epochs \(range.lowerBound):\(range.upperBound) of \(settings.epochs), \(relabeler.batchesPerEpoch) batches of \(settings.batchSize) per epoch, mix \(settings.mix.name), logits \(settings.logits)")
        let records = relabeler.recordCount
        let progress = console.progress("relabel epochs \(range.lowerBound):\(range.upperBound)", total: records, unit: "batch")
        try relabeler.run(into: writer) { progress.update($0) }
        try writer.finish()
        let perEpoch = settings.dropLast ? relabeler.batchesPerEpoch * settings.batchSize : images.count
        progress.finish(records, "\(range.count * perEpoch) images labelled")
    }
}
