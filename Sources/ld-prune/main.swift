import ArgumentParser
import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import LDCommand

extension LabelPruneRule: ExpressibleByArgument {}
extension PruneKeep: ExpressibleByArgument {}
extension SubsetRule: ExpressibleByArgument {}

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ld-prune",
        abstract: "Filter record streams: prune label batches at a ratio, select image subsets by score, dump any stream as NDJSON.",
        discussion: """
        Label mode (the input is a label stream from ld-relabel) keeps exactly
        round(N/R) of the N label-batch records, rounded half away from zero,
        and writes them in global batch order as a label stream with the same
        header plus meta.pruned (which tells ld-train the records form a pool).
          random      seeded uniform subset (LPLD's pool); one pass, holds
                      about round(N/R) records, writes at the end of input
          prefix      global ids < round(epochs x batches_per_epoch / R)
                      (LPLD's less-label generation); streams through
          confidence  mean largest teacher probability of the batch
          margin      mean gap between the top two teacher probabilities
          cut-ratio   share of the original image: 1 - CutMix box area /
                      image area, Mixup lambda, 1 unmixed
          correct     share of the batch whose teacher argmax is the image's
                      class (needs --images)
        Metric rules keep the --keep easy (high) or hard (low, default) end.

        Image mode (--data DATASET) picks --ipc images per class by --select
        random|el2n|forgetting|aum|ccs using ld-squeeze's scores (--scores),
        and writes an image stream (-o) and/or a PNG folder (--png).
        hard = high EL2N, high forgetting, low AUM. ccs drops each class's
        lowest-AUM fraction --ccs-cutoff, cuts the rest into --ccs-strata
        equal-width strata of --ccs-score and spreads the budget over them by
        water-filling. meta.source_indices (and the folder's manifest.json)
        give each kept image's index in DATASET.

        --combine F (RethinkDC's Prune-Combine): select F^2 x K images per
        class by the same rule, downsample each whole image to one cell of an
        F x F grid (area averaging; an axis of n pixels is cut so the first
        n mod F cells are one pixel longer, as RDED) and tile F x F images of
        a class into one canvas of the original size, so the output holds
        exactly K = --ipc images per class. The n-th image of a class in the
        rule's rank order (for el2n easy: the n-th easiest) goes to canvas
        n mod K, cell n div K, cells row-major: the K best lead the K
        canvases. The output records meta.grid = F and
        meta.cell_source_indices (per canvas, each cell's index in DATASET),
        in the stream header and in manifest.json; ld-train
        --grid-aware-crop reads the grid from there.

        --report prints, as NDJSON on stderr (or --report-file), the bytes in
        and out per component (indices, boxes, flips, mix, logits, fields,
        framing, header), the compression ratio, the peak memory and, with
        --images or in image mode, the images' bytes as PNG and raw.

        Examples:
          ld-relabel ... | ld-prune --ratio 40 | ld-train --images syn/ ...
          cat shard-*.ldl | ld-prune --ratio 33.3 --rule prefix -o pool.ldl
          ld-prune --ratio 40 --report --images syn/ < labels.ldl > pruned.ldl
          ld-prune --data fmnist:train --select random --ipc 10 -o subset.ldi
          ld-prune --data fmnist:train --scores s.lds --select ccs --ipc 50 \\
            --png subset/
          ld-prune --data fmnist:train --scores s.lds --select el2n \\
            --keep easy --ipc 10 --combine 2 -o pca.ldi
          ld-prune --dump pruned.ldl | jq -c 'select(.type == "header")'
        """,
        version: LD.version
    )

    @Flag(name: .long, help: "Print the input streams as NDJSON on stdout (one line per header, record and end).")
    var dump = false

    @Argument(help: "Input streams (`-` is stdin, the default); concatenated streams are read back to back.")
    var inputs: [String] = []

    @Option(name: [.short, .long], help: "Output stream (`-` is stdout, the default for label mode and for image mode without --png).")
    var output: String?

    @Option(help: "Label mode: the compression ratio R >= 1 (non-integer allowed, e.g. 33.3); keeps round(N/R) records.")
    var ratio: Double?

    @Option(help: "Label mode: random, prefix, confidence, margin, cut-ratio or correct (default: random).")
    var rule: LabelPruneRule?

    @Option(help: "Which end of a ranking to keep: easy or hard (default: hard). Only for metric label rules and el2n, forgetting, aum.")
    var keep: PruneKeep?

    @Option(help: "Seed of the random rule, random subsets and CCS sampling.")
    var seed: UInt64 = 0

    @Option(help: "Label mode: the image set the labels refer to (for rule correct, cut-ratio's image size, the identity check and the PNG bytes in --report).")
    var images: String?

    @Flag(help: "Write the output stream zstd-compressed.")
    var compress = false

    @Flag(help: "Print the storage report (NDJSON) on stderr.")
    var report = false

    @Option(help: "Write the storage report (NDJSON) to this file instead of stderr (implies --report).")
    var reportFile: String?

    @Option(help: "Image mode: the data set to select from (fmnist:train, cifar10:DIR, folder:DIR, DIR, FILE).")
    var data: String?

    @Option(help: "Image mode: images per class to keep.")
    var ipc: Int?

    @Option(help: "Image mode: random, el2n, forgetting, aum or ccs (default: random).")
    var select: SubsetRule?

    @Option(help: "Image mode: ld-squeeze's score stream for --data (columns el2n, forgetting, aum, ...).")
    var scores: String?

    @Option(help: "Image mode, ccs: fraction beta of each class with the lowest AUM dropped before stratifying.")
    var ccsCutoff: Double = 0.3

    @Option(help: "Image mode, ccs: number of equal-width score strata.")
    var ccsStrata: Int = 50

    @Option(help: "Image mode, ccs: the score column the strata are cut on.")
    var ccsScore: String = "aum"

    @Option(help: "Image mode: also write the subset as a PNG ImageFolder here (000/, 001/, ..., manifest.json).")
    var png: String?

    @Option(help: "Image mode: combine F x F downsampled images of a class per canvas (selects F^2 x --ipc per class; RethinkDC's PCA).")
    var combine: Int?

    @OptionGroup var common: CommonOptions

    func validate() throws {
        if dump { return }
        if let r = ratio, !(r >= 1 && r.isFinite) {
            throw ValidationError("--ratio must be a number >= 1, got \(r)")
        }
        if data != nil {
            for (given, name) in [(ratio != nil, "--ratio"), (rule != nil, "--rule"), (images != nil, "--images")] where given {
                throw ValidationError("\(name) is for label streams; image mode (--data) takes --ipc and --select")
            }
            if !inputs.isEmpty { throw ValidationError("image mode reads --data, not input streams (\(inputs.joined(separator: " ")))") }
            guard let k = ipc else { throw ValidationError("image mode (--data) needs --ipc K") }
            guard k >= 1 else { throw ValidationError("--ipc must be >= 1, got \(k)") }
            let s = select ?? .random
            if s != .random && scores == nil {
                throw ValidationError("--select \(s.rawValue) needs ld-squeeze's score stream (--scores FILE)")
            }
            if keep != nil && s.column == nil {
                throw ValidationError("--keep applies to --select el2n, forgetting and aum, not \(s.rawValue)")
            }
            guard ccsCutoff >= 0 && ccsCutoff < 1 else { throw ValidationError("--ccs-cutoff must be in [0, 1), got \(ccsCutoff)") }
            guard ccsStrata >= 1 else { throw ValidationError("--ccs-strata must be >= 1, got \(ccsStrata)") }
            if let f = combine, f < 1 { throw ValidationError("--combine must be a grid factor >= 1, got \(f)") }
        } else {
            for (given, name) in [(ipc != nil, "--ipc"), (select != nil, "--select"), (scores != nil, "--scores"), (png != nil, "--png"),
                                  (combine != nil, "--combine")] where given {
                throw ValidationError("\(name) needs image mode (--data DATASET)")
            }
            guard ratio != nil else { throw ValidationError("label mode needs --ratio R (or --data DATASET for image mode, --dump to print)") }
            let r = rule ?? .random
            if keep != nil && !r.isMetric {
                throw ValidationError("--keep applies to the metric rules (confidence, margin, cut-ratio, correct), not \(r.rawValue)")
            }
            if r == .correct && images == nil {
                throw ValidationError("--rule correct needs the image set (--images) to look up each image's class")
            }
        }
    }

    func run() throws {
        if dump {
            try StreamDump.run(paths: inputs.isEmpty ? ["-"] : inputs)
            return
        }
        common.apply()
        if let d = data { try selectImages(d) } else { try pruneLabels() }
    }

    /// NDJSON report lines, to stderr or --report-file.
    func writeReport(_ lines: [JSONValue]) throws {
        guard report || reportFile != nil else { return }
        let text = lines.map { $0.serialized + "\n" }.joined()
        if let f = reportFile {
            let out = try OutputFile(path: f, binary: false)
            try out.write(text)
            try out.commit()
        } else {
            FileHandle.standardError.write(Data(text.utf8))
        }
    }

    func pruneLabels() throws {
        let r = rule ?? .random
        var options = LabelPruneOptions(rule: r, ratio: ratio!, seed: seed, keep: r.isMetric ? (keep ?? .hard) : nil)
        var imageSet: Dataset?
        if let spec = images {
            let set = try Dataset.load(spec)
            imageSet = set
            options.imageLabels = set.labels
            options.imageSize = (set.height, set.width)
            options.imageSetHash = set.contentHash
        }
        let paths = inputs.isEmpty ? ["-"] : inputs
        let progress = Progress("ld-prune \(r.rawValue) \(ratio!)x", total: 0, unit: "rec", quiet: common.quiet)
        let out = output ?? "-"
        let compression: StreamCompression = compress ? .zstd() : .none
        let summary = try LabelPruneJob.run(
            inputs: paths.map { p in { try StreamReader(path: p) } }, options: options,
            open: { try StreamWriter(path: out, header: $0, compression: compression) },
            progress: { progress.update($0) })
        progress.finish(summary.total, "kept \(summary.kept)")

        let bytesIn = summary.input.total, bytesOut = summary.output.total
        var lines: [JSONValue] = []
        var input = summary.input.json, output = summary.output.json
        if case .object(var o) = input {
            o["type"] = .string("labels_in")
            let onDisk = paths.filter { $0 != "-" }.compactMap { try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int }
            if onDisk.count == paths.count { o["file_bytes"] = .int(Int64(onDisk.reduce(0, +))) }
            input = .object(o)
        }
        if case .object(var o) = output { o["type"] = .string("labels_out"); output = .object(o) }
        lines += [input, output]
        var s: [String: JSONValue] = [
            "type": .string("summary"), "mode": .string("labels"), "rule": .string(r.rawValue),
            "ratio": .double(ratio!), "seed": .int(Int64(bitPattern: seed)),
            "records_in": .int(Int64(summary.total)), "records_out": .int(Int64(summary.kept)),
            "bytes_in": .int(Int64(bytesIn)), "bytes_out": .int(Int64(bytesOut)),
            "compression": bytesOut > 0 ? .double(Double(bytesIn) / Double(bytesOut)) : .null,
            "peak_rss_bytes": .int(Int64(LabelStorage.peakResidentBytes())),
        ]
        if let k = options.keep { s["keep"] = .string(k.rawValue) }
        if report || reportFile != nil, let set = imageSet {
            let st = try ImageStorage.measure(set)
            var o: [String: JSONValue] = ["type": .string("images"), "source": .string(set.source),
                                          "images": .int(Int64(st.images)), "raw_bytes": .int(Int64(st.rawBytes)),
                                          "png_bytes": .int(Int64(st.pngBytes))]
            if st.pngBytes > 0 {
                o["labels_in_per_png"] = .double(Double(bytesIn) / Double(st.pngBytes))
                o["labels_out_per_png"] = .double(Double(bytesOut) / Double(st.pngBytes))
            }
            lines.append(.object(o))
        }
        lines.append(.object(s))
        try writeReport(lines)
    }

    func selectImages(_ spec: String) throws {
        let set = try Dataset.load(spec)
        let rule = select ?? .random
        let table = try scores.map { try ScoreTable(path: $0, for: set) }
        let factor = combine ?? 0
        let perClass = factor > 0 ? factor * factor * ipc! : ipc!
        if factor > 0 {
            _ = try ImageGrid(height: set.height, width: set.width, factor: factor)
            for (c, n) in set.classCounts().enumerated() where n < perClass {
                throw LDError("\(spec): class \(c) has \(n) images, fewer than the \(perClass) that --combine \(factor) --ipc \(ipc!) needs (F^2 x K)")
            }
        }
        let options = SubsetSelectionOptions(rule: rule, ipc: perClass, seed: seed, keep: keep ?? .hard,
                                             ccsCutoff: ccsCutoff, ccsStrata: ccsStrata, ccsScore: ccsScore)
        let subset: Dataset
        var meta: [String: JSONValue] = [:]
        if factor > 0 {
            let groups = try SubsetSelection.ranked(set, scores: table, options: options)
            let combined = try Combine.combine(set, groups: groups, ipc: ipc!, factor: factor)
            subset = combined.images
            meta = Combine.meta(combined)
        } else {
            let chosen = try SubsetSelection.select(set, scores: table, options: options)
            subset = try set.subset(chosen)
            meta["source_indices"] = .array(chosen.map { .int(Int64($0)) })
        }
        var selection: [String: JSONValue] = [
            "rule": .string(rule.rawValue), "ipc": .int(Int64(ipc!)), "seed": .int(Int64(bitPattern: seed)),
            "source_image_set": .string(set.contentHash),
        ]
        if rule.column != nil { selection["keep"] = .string((keep ?? .hard).rawValue) }
        if rule == .ccs {
            selection["ccs_cutoff"] = .double(ccsCutoff)
            selection["ccs_strata"] = .int(Int64(ccsStrata))
            selection["ccs_score"] = .string(ccsScore)
        }
        if let t = table { selection["scores_image_set"] = .string(t.imageSetHash) }
        if factor > 0 {
            selection["combine"] = .int(Int64(factor))
            selection["selected_per_class"] = .int(Int64(perClass))
        }
        meta["selection"] = .object(selection)
        if let dir = png { try SubsetOutput.writePNGFolder(subset, to: dir, extra: meta) }
        if output != nil || png == nil {
            try subset.writeStream(path: output ?? "-", producer: "ld-prune", seed: seed,
                                   compression: compress ? .zstd() : .none, meta: meta)
        }
        common.log(factor > 0
            ? "ld-prune: combined \(perClass * set.classes) images (\(perClass) per class, \(rule.rawValue)) from \(set.count) of \(spec) into \(subset.count) \(factor)x\(factor) canvases (\(ipc!) per class)"
            : "ld-prune: selected \(subset.count) images (\(ipc!) per class, \(rule.rawValue)) from \(set.count) of \(spec)")
        if report || reportFile != nil {
            let a = try ImageStorage.measure(set), b = try ImageStorage.measure(subset)
            var i = a.json, o = b.json
            if case .object(var x) = i { x["type"] = .string("images_in"); x["source"] = .string(spec); i = .object(x) }
            if case .object(var x) = o { x["type"] = .string("images_out"); o = .object(x) }
            let s: JSONValue = .object([
                "type": .string("summary"), "mode": .string("images"), "select": .string(rule.rawValue),
                "ipc": .int(Int64(ipc!)), "images_in": .int(Int64(a.images)), "images_out": .int(Int64(b.images)),
                "compression": b.pngBytes > 0 ? .double(Double(a.pngBytes) / Double(b.pngBytes)) : .null,
                "peak_rss_bytes": .int(Int64(LabelStorage.peakResidentBytes())),
            ])
            try writeReport([i, o, s])
        }
    }
}

ToolMain.run(Prune.self, name: "ld-prune")
