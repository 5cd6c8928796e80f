import LDKernels
import LDRecords
import LDData
import LDNetworks
import Foundation

/// ld-prune's label mode: keep round(N/R) of the label records of `inputs` (concatenated streams) by a rule
/// and write them as one label stream; returns the storage report's NDJSON lines.
public struct LabelPruneRun {
    public var inputs: [String]
    public var options: LabelPruneOptions
    /// The image set the labels refer to (rule correct, cut-ratio's image size, the identity check and the
    /// PNG bytes in the report).
    public var data: String?
    public var output = "-"
    /// The report's file (written by the caller; checked here with the other outputs before the work).
    public var reportFile: String?
    public var compression: StreamCompression = .none
    /// Measure the images' PNG bytes for the report.
    public var measureImages = false
    public var console = Console()

    public init(inputs: [String], options: LabelPruneOptions) {
        self.inputs = inputs
        self.options = options
    }

    public func run() throws -> [JSONValue] {
        var files = RunFiles()
        for p in inputs { files.input("stream", p) }
        files.data("--data", data)
        files.output("-o", output)
        files.output("--report-file", reportFile)
        try files.check()
        var options = self.options
        var imageSet: Dataset?
        if let spec = data {
            let set = try Dataset.load(spec)
            imageSet = set
            options.imageLabels = set.labels
            options.imageSize = (set.height, set.width)
            options.imageSetHash = set.contentHash
        }
        let progress = console.progress("ld-prune \(options.rule.rawValue) \(options.ratio)x", total: 0, unit: "rec")
        let out = output, compression = self.compression
        let summary = try LabelPruneJob.run(
            inputs: inputs.map { p in { try StreamReader(path: p) } }, options: options,
            open: { try StreamWriter(path: out, header: $0, compression: compression) },
            progress: { progress.update($0) })
        progress.finish(summary.total, "kept \(summary.kept)")
        var lines = [storageLine(summary.input.json, type: "labels_in", files: inputs),
                     storageLine(summary.output.json, type: "labels_out", files: [])]
        if measureImages, let set = imageSet {
            lines.append(try imagesLine(set, bytesIn: summary.input.total, bytesOut: summary.output.total))
        }
        lines.append(summaryLine(summary, options))
        return lines
    }

    /// A storage line with its type, and the input files' size on disk when every input is a file.
    func storageLine(_ json: JSONValue, type: String, files: [String]) -> JSONValue {
        guard case .object(var o) = json else { return json }
        o["type"] = .string(type)
        if !files.isEmpty {
            let onDisk = files.filter { $0 != "-" }.compactMap { try? Files.fileSize($0) }
            if onDisk.count == files.count { o["file_bytes"] = .int(Int64(onDisk.reduce(0, +))) }
        }
        return .object(o)
    }

    func imagesLine(_ set: Dataset, bytesIn: Int, bytesOut: Int) throws -> JSONValue {
        let st = try ImageStorage.measure(set)
        var o: [String: JSONValue] = ["type": .string("images"), "source": .string(set.source),
                                      "images": .int(Int64(st.images)), "raw_bytes": .int(Int64(st.rawBytes)),
                                      "png_bytes": .int(Int64(st.pngBytes))]
        if st.pngBytes > 0 {
            o["labels_in_per_png"] = .double(Double(bytesIn) / Double(st.pngBytes))
            o["labels_out_per_png"] = .double(Double(bytesOut) / Double(st.pngBytes))
        }
        return .object(o)
    }

    func summaryLine(_ summary: LabelPruneSummary, _ options: LabelPruneOptions) -> JSONValue {
        let bytesIn = summary.input.total, bytesOut = summary.output.total
        var s: [String: JSONValue] = [
            "type": .string("summary"), "mode": .string("labels"), "rule": .string(options.rule.rawValue),
            "ratio": .double(options.ratio), "seed": .int(Int64(bitPattern: options.seed)),
            "records_in": .int(Int64(summary.total)), "records_out": .int(Int64(summary.kept)),
            "bytes_in": .int(Int64(bytesIn)), "bytes_out": .int(Int64(bytesOut)),
            "compression": bytesOut > 0 ? .double(Double(bytesIn) / Double(bytesOut)) : .null,
            "peak_rss_bytes": .int(Int64(LabelStorage.peakResidentBytes())),
        ]
        if let k = options.keep { s["keep"] = .string(k.rawValue) }
        return .object(s)
    }
}

/// ld-prune's image mode: a class-balanced subset of a data set chosen by a rule on ld-squeeze's scores,
/// optionally combined F x F per canvas (RethinkDC's Prune-Combine), written as an image stream and/or a
/// PNG folder; returns the storage report's NDJSON lines.
public struct SubsetRun {
    public var data: String
    public var options: SubsetSelectionOptions
    /// K: images per class in the output.
    public var ipc: Int
    public var scores: String?
    /// The grid factor F of --combine (nil: no combining).
    public var combine: Int?
    public var output: String?
    public var png: String?
    /// The report's file (written by the caller; checked here with the other outputs before the work).
    public var reportFile: String?
    public var compression: StreamCompression = .none
    public var seed: UInt64 = 0
    public var console = Console()

    public init(data: String, options: SubsetSelectionOptions, ipc: Int) {
        self.data = data
        self.options = options
        self.ipc = ipc
    }

    public func run(report: Bool) throws -> [JSONValue] {
        var files = RunFiles()
        files.data("--data", data)
        files.input("--scores", scores)
        files.output("-o", output)
        files.outputFolder("--png", png)
        files.output("--report-file", reportFile)
        try files.check()
        let set = try Dataset.load(data)
        let table = try scores.map { try ScoreTable(path: $0, for: set) }
        let (subset, meta) = try select(set, table)
        if let dir = png { try SubsetOutput.writePNGFolder(subset, to: dir, extra: meta) }
        if output != nil || png == nil {
            try subset.writeStream(path: output ?? "-", producer: "ld-prune", seed: seed, compression: compression, meta: meta)
        }
        let rule = options.rule.rawValue
        console.say(combine.map { f in
            "ld-prune: combined \(options.ipc * set.classes) images (\(options.ipc) per class, \(rule)) from \(set.count) of \(data) into \(subset.count) \(f)x\(f) canvases (\(ipc) per class)"
        } ?? "ld-prune: selected \(subset.count) images (\(ipc) per class, \(rule)) from \(set.count) of \(data)")
        return report ? try reportLines(set, subset) : []
    }

    /// The subset and its meta (source indices or the combined grid, and the selection's settings).
    func select(_ set: Dataset, _ table: ScoreTable?) throws -> (Dataset, [String: JSONValue]) {
        var meta: [String: JSONValue] = [:]
        let subset: Dataset
        if let f = combine {
            _ = try ImageGrid(height: set.height, width: set.width, factor: f)
            for (c, n) in set.classCounts().enumerated() where n < options.ipc {
                throw LDError("\(data): class \(c) has \(n) images, fewer than the \(options.ipc) that --combine \(f) --ipc \(ipc) needs (F^2 x K)")
            }
            let groups = try SubsetSelection.ranked(set, scores: table, options: options)
            // Only the images the canvases use are decoded (a set on disk is not held whole).
            let flat = groups.flatMap { $0 }
            var position = 0
            let local = groups.map { g in g.map { _ in defer { position += 1 }; return position } }
            var combined = try Combine.combine(try set.subset(flat).resident(), groups: local, ipc: ipc, factor: f)
            combined.cellSources = combined.cellSources.map { $0.map { $0 >= 0 ? flat[$0] : $0 } }
            subset = combined.images
            meta = Combine.meta(combined)
        } else {
            let chosen = try SubsetSelection.select(set, scores: table, options: options)
            subset = try set.subset(chosen).resident()
            meta["source_indices"] = .array(chosen.map { .int(Int64($0)) })
        }
        var selection: [String: JSONValue] = [
            "rule": .string(options.rule.rawValue), "ipc": .int(Int64(ipc)), "seed": .int(Int64(bitPattern: options.seed)),
            "source_image_set": .string(set.contentHash),
        ]
        if options.rule.column != nil { selection["keep"] = .string(options.keep.rawValue) }
        if options.rule == .ccs {
            selection["ccs_cutoff"] = .double(options.ccsCutoff)
            selection["ccs_strata"] = .int(Int64(options.ccsStrata))
            selection["ccs_score"] = .string(options.ccsScore)
        }
        if let t = table { selection["scores_image_set"] = .string(t.imageSetHash) }
        if let f = combine {
            selection["combine"] = .int(Int64(f))
            selection["selected_per_class"] = .int(Int64(options.ipc))
        }
        meta["selection"] = .object(selection)
        return (subset, meta)
    }

    func reportLines(_ set: Dataset, _ subset: Dataset) throws -> [JSONValue] {
        let a = try ImageStorage.measure(set), b = try ImageStorage.measure(subset)
        var i = a.json, o = b.json
        if case .object(var x) = i { x["type"] = .string("images_in"); x["source"] = .string(data); i = .object(x) }
        if case .object(var x) = o { x["type"] = .string("images_out"); o = .object(x) }
        let s: JSONValue = .object([
            "type": .string("summary"), "mode": .string("images"), "select": .string(options.rule.rawValue),
            "ipc": .int(Int64(ipc)), "images_in": .int(Int64(a.images)), "images_out": .int(Int64(b.images)),
            "compression": b.pngBytes > 0 ? .double(Double(a.pngBytes) / Double(b.pngBytes)) : .null,
            "peak_rss_bytes": .int(Int64(LabelStorage.peakResidentBytes())),
        ])
        return [i, o, s]
    }
}
