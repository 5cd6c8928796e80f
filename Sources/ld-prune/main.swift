import ArgumentParser
import Foundation
import LDKernels
import LDRecords
import LDData
import LDJobs
import LDCommand

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ld-prune",
        abstract: "Filter record streams: prune label batches at a ratio, select image subsets by score, dump any stream as NDJSON.",
        discussion: Manual.prune,
        version: LD.versionLine
    )

    @Flag(help: "Print the input streams as NDJSON on stdout (one line per header, record and end).")
    var dump = false

    @Flag(help: "Write --data as an image stream, decoded once (with --image-size, a folder of any size brought to S x S by the evaluation transform): the fast input for repeated epochs.")
    var pack = false

    @Option(help: "With --pack: the size S images are brought to (shorter side to S/ratio, center crop S).")
    var imageSize: Int?

    @Option(help: ArgumentHelp("With --pack --image-size: the evaluation transform's ratio (default 0.875: 224 from 256), recorded in the stream; use the model's.", valueName: "ratio"))
    var evalRatio: Double?

    @Option(help: ArgumentHelp("With --pack: write only the K-th of N contiguous parts (0-based); `cat` of all N loads as the whole set.", valueName: "K/N"))
    var shard: String?

    @Argument(help: "Input streams (`-` is stdin, the default); concatenated streams are read back to back.")
    var inputs: [String] = []

    @Option(name: .shortAndLong, help: "Output stream (`-` is stdout, the default for label mode and for image mode without --png).")
    var output: String?

    @Option(help: "The image set: image mode selects from it; label mode checks the labels against it (rule correct, --report).")
    var data: String?

    @Flag(help: "Write the output stream zstd-compressed.")
    var zstd = false

    @Flag(help: "Print the storage report (NDJSON) on stderr.")
    var report = false

    @Option(help: "Write the storage report (NDJSON) to this file instead of stderr (implies --report).")
    var reportFile: String?

    @Option(help: "Which end of a ranking to keep (default hard). Only for metric label rules and el2n, forgetting, aum.")
    var keep: PruneKeep?

    @OptionGroup(title: "Label mode")
    var labels: LabelModeOptions

    @OptionGroup(title: "Image mode")
    var images: ImageModeOptions

    @OptionGroup var common: CommonOptions

    func validate() throws {
        let modes = [dump, pack, labels.ratio != nil, images.ipc != nil].filter { $0 }.count
        guard modes == 1 else {
            throw ValidationError(modes == 0 ? "give a mode: --ratio R (label streams), --ipc K (image subsets), --pack or --dump"
                                             : "give one mode of --ratio, --ipc, --pack and --dump")
        }
        if !pack, imageSize != nil || shard != nil || evalRatio != nil { throw ValidationError("--image-size, --eval-ratio and --shard go with --pack") }
        if let r = evalRatio {
            do { try EvalTransform.check(ratio: r) } catch { throw ValidationError("\(error)") }
        }
        if pack {
            guard data != nil else { throw ValidationError("--pack needs the data set to write (--data DATASET)") }
            if !inputs.isEmpty { throw ValidationError("--pack reads --data, not input streams (\(inputs.joined(separator: " ")))") }
            for (given, name) in [(report || reportFile != nil, "--report"), (keep != nil, "--keep")] + labels.given + images.given where given {
                throw ValidationError("\(name) does not apply to --pack")
            }
            if let n = imageSize, n < 1 || n > 2048 { throw ValidationError("--image-size must be 1...2048, got \(n)") }
            _ = try shardParts()
        } else if dump {
            for (given, name) in [(output != nil, "-o"), (data != nil, "--data"), (zstd, "--zstd"), (report || reportFile != nil, "--report"),
                                  (keep != nil, "--keep")] + labels.given + images.given where given {
                throw ValidationError("\(name) does not apply to --dump (it prints the input streams as NDJSON)")
            }
        } else if labels.ratio != nil {
            for (given, name) in images.given where given { throw ValidationError("\(name) is for image mode (--ipc); label mode takes --ratio and --rule") }
            try labels.check(keep: keep, data: data)
        } else {
            for (given, name) in labels.given where given { throw ValidationError("\(name) is for label mode (--ratio); image mode takes --ipc and --select") }
            guard data != nil else { throw ValidationError("image mode (--ipc) needs the data set to select from (--data DATASET)") }
            if !inputs.isEmpty { throw ValidationError("image mode reads --data, not input streams (\(inputs.joined(separator: " ")))") }
            try images.check(keep: keep)
        }
    }

    /// `--shard K/N` as (K, N), 0 <= K < N.
    func shardParts() throws -> (index: Int, count: Int)? {
        guard let s = shard else { return nil }
        let p = s.split(separator: "/", omittingEmptySubsequences: false)
        guard p.count == 2, let k = Int(p[0]), let n = Int(p[1]), n >= 1, n <= 1 << 20, k >= 0, k < n else {
            throw ValidationError("--shard takes K/N with 0 <= K < N, got '\(s)'")
        }
        return (k, n)
    }

    func run() throws {
        if dump { return try StreamDump.run(paths: inputs.isEmpty ? ["-"] : inputs) }
        common.apply()
        let compression: StreamCompression = zstd ? .zstd() : .none
        if pack {
            var job = PackJob(data: data!)
            job.output = output ?? "-"
            job.imageSize = imageSize
            if let r = evalRatio { job.evalRatio = r }
            job.shard = try shardParts()
            job.compression = compression
            job.console = common.console
            return try job.run()
        }
        let wantReport = report || reportFile != nil
        if let ratio = labels.ratio {
            let rule = labels.rule
            var job = LabelPruneRun(inputs: inputs.isEmpty ? ["-"] : inputs,
                                    options: LabelPruneOptions(rule: rule, ratio: ratio, seed: common.seed,
                                                               keep: rule.isMetric ? (keep ?? .hard) : nil))
            job.data = data
            job.output = output ?? "-"
            job.reportFile = reportFile
            job.compression = compression
            job.measureImages = wantReport
            job.console = common.console
            let lines = try job.run()
            if wantReport { try writeReport(lines) }
        } else {
            let k = images.ipc!, f = images.combine
            var job = SubsetRun(data: data!, options: SubsetSelectionOptions(
                rule: images.select, ipc: f.map { $0 * $0 * k } ?? k, seed: common.seed, keep: keep ?? .hard,
                ccsCutoff: images.ccsCutoff, ccsStrata: images.ccsStrata, ccsScore: images.ccsScore), ipc: k)
            job.scores = images.scores
            job.combine = f
            job.output = output
            job.png = images.png
            job.reportFile = reportFile
            job.compression = compression
            job.seed = common.seed
            job.console = common.console
            let lines = try job.run(report: wantReport)
            if wantReport { try writeReport(lines) }
        }
    }

    /// NDJSON report lines, to stderr or --report-file.
    func writeReport(_ lines: [JSONValue]) throws {
        let text = lines.map { $0.serialized + "\n" }.joined()
        if let f = reportFile {
            let out = try OutputFile(path: f, binary: false)
            try out.write(text)
            try out.commit()
        } else {
            FileHandle.standardError.write(Data(text.utf8))
        }
    }
}

ToolMain.run(Prune.self, name: "ld-prune")
