import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDInterop

/// `ld-squeeze --import`: a PyTorch state dict (`.safetensors` or a `torch.save` checkpoint with torchvision's
/// names) becomes an ld model file. Nothing is written unless the whole import succeeds.
public struct ImportJob {
    public var input: String
    public var output: String
    public var settings: ImportSettings
    public var producer = "ld-squeeze"
    /// With a data set: LPLD's per-class BatchNorm statistics of the imported teacher on it (`--class-stats`).
    public var classStats: (data: String, mode: ClassStatisticsMode, batchSize: Int)?
    /// `--class-map FILE`: pairs --data's class names with the imported model's (see `ClassMap`).
    public var classMap: String?
    public var console = Console(quiet: true, verbose: false)

    /// `--eval-ratio`: the evaluation transform's ratio the imported model was trained and is evaluated with
    /// (timm's crop_pct; torchvision's ImageNet models: 0.875), stored in the model file.
    public var evalRatio: Double?

    public init(input: String, output: String, settings: ImportSettings) {
        self.input = input
        self.output = output
        self.settings = settings
    }

    /// Imports and saves; returns the lines that say what was imported (architecture, input, classes) and the
    /// model file's hash.
    public func run() throws -> [String] {
        var files = RunFiles()
        files.input("--import", input)
        files.data("--data", classStats?.data)
        files.output("-o", output)
        try files.check()
        try OutputFile.probe(output)
        var (file, notes) = try PyTorchFile.importModel(path: input, settings: settings)
        if let r = evalRatio { file.evalRatio = r }
        if let cs = classStats {
            let (data, note) = try file.pair(try Dataset.load(cs.data, imageSize: file.model.config.imageSize, evalRatio: file.evalRatio), role: "--data", map: try classMap.map { try ClassMap(path: $0) })
            if let n = note { console.say("ld-squeeze: " + n) }
            let progress = console.progress("class statistics (\(cs.mode.rawValue))", total: data.count)
            try ClassStatisticsPass.run(model: file.model, data: data, normalization: Normalization(of: file), mode: cs.mode,
                                        batchSize: cs.batchSize) { progress.update($0) }
            progress.finish(data.count)
            file.model.training = false
            file.info["class_stats_data"] = .string(cs.data)
            file.info["class_stats_mode"] = .string(cs.mode.rawValue)
            notes.append("class statistics of \(data.count) images of \(cs.data) (\(cs.mode.rawValue))")
        }
        try file.save(path: output, producer: producer)
        return notes + ["wrote \(output) (model \(file.hash))"]
    }
}

/// `ld-squeeze --export`: an ld model file as `.safetensors` with torchvision's names and ld's metadata,
/// loadable with `load_state_dict(strict=True)` into the matching PyTorch model.
public struct ExportJob {
    public var model: String
    public var output: String
    public var producer = "ld-squeeze"

    public init(model: String, output: String) {
        self.model = model
        self.output = output
    }

    public func run() throws -> [String] {
        var files = RunFiles()
        files.input("--export", model)
        files.output("-o", output)
        try files.check()
        try OutputFile.probe(output)
        let file = try ModelFile.load(path: model)
        try PyTorchFile.export(file, to: output, producer: "\(producer) \(LD.version)")
        var lines = ["wrote \(output): \(file.model.config.summary), \(TorchvisionNames.stateDict(of: file.model).count) tensors with torchvision's names"]
        if file.hasClassStatistics { lines.append("the per-class BatchNorm statistics of \(model) are not exported (torchvision has no place for them)") }
        return lines
    }
}
