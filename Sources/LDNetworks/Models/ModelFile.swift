import LDKernels
import LDRecords
import LDData
import Foundation

/// A model file (`.ldm`): a record stream of kind `model`.
///
/// Header: `classes`, `shape` [C, H, W] and in `meta`: `config` (the `ModelConfig`), `mean`, `std`,
/// `class_names` (the data normalisation the model was trained with), `class_stats` (whether per-class BN
/// statistics are present) and free-form training facts (`info`: data set, epochs, accuracy).
/// Records: one `TensorRecord` per parameter (by `Parameter.name`), per BN running statistic
/// (`<bn>.running_mean`, `<bn>.running_var`), and, with class statistics, per BN layer
/// `<bn>.class_count` (K), `<bn>.class_mean` (K, C) and `<bn>.class_var` (K, C, biased).
///
/// The model's identity (`hash`, what other streams record as `teacher_hash`) is the end record's chained hash:
/// it covers every tensor and the header, and is the same whether the file is compressed or not.
public struct ModelFile {
    public var model: Model
    /// Per-channel normalisation of the model's input: x = (pixel/255 - mean) / std.
    public var mean: [Float]
    public var std: [Float]
    public var classNames: [String]
    /// The ratio of the evaluation transform the model's images of other sizes go through (resize to
    /// size / ratio, centre crop): `eval_ratio` in the header, written only when not the default 0.875.
    public var evalRatio: Double = EvalTransform.defaultRatio
    /// Training facts written by the producer (data set, epochs, accuracy); shown by `--dump`.
    public var info: [String: JSONValue]
    /// 16 hex digits identifying this file's content (set by `load` and `save`).
    public private(set) var hash: String = ""

    public init(model: Model, mean: [Float], std: [Float], classNames: [String], info: [String: JSONValue] = [:]) {
        self.model = model
        self.mean = mean
        self.std = std
        self.classNames = classNames
        self.info = info
    }

    /// Whether every BatchNorm layer carries per-class statistics (LPLD's "model with class BN").
    public var hasClassStatistics: Bool {
        !model.batchNorms.isEmpty && model.batchNorms.allSatisfy { $0.classStatistics != nil }
    }

    // MARK: - Save

    /// Writes the model atomically to `path` (`-` for stdout) and records its identity in `hash`.
    public mutating func save(path: String, producer: String, seed: UInt64 = 0) throws {
        try write(path: path, producer: producer, seed: seed).commit()
    }

    /// Writes the model to its temporary file and returns the output, prepared but not committed: the caller
    /// commits it together with the run's other outputs (or drops it, `abort()`, on a later failure).
    public mutating func write(path: String, producer: String, seed: UInt64 = 0) throws -> ByteSink {
        let config = model.config
        try Normalization.check(mean: mean, std: std, source: "model \(path)")
        guard classNames.isEmpty || classNames.count == config.classes else {
            throw LDError("model \(path): \(classNames.count) class names for \(config.classes) classes")
        }
        let configJSON = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(config))
        var meta: [String: JSONValue] = [
            "config": configJSON,
            "mean": .array(mean.map { JSONValue.number($0) }),
            "std": .array(std.map { JSONValue.number($0) }),
            "class_names": .array((classNames.isEmpty ? (0..<config.classes).map(String.init) : classNames).map { .string($0) }),
            "class_stats": .bool(hasClassStatistics),
        ]
        if !info.isEmpty { meta["info"] = .object(info) }
        if evalRatio != EvalTransform.defaultRatio { meta["eval_ratio"] = .double(evalRatio) }
        let header = StreamHeader(kind: .model, producer: producer, version: LD.version, seed: seed,
                                  classes: config.classes,
                                  shape: [config.channels, config.imageSize, config.imageSize], meta: meta)
        let writer = try StreamWriter(path: path, header: header)
        do {
            for (name, tensor) in ModelFile.tensors(of: model) {
                try writer.write(TensorRecord(name: name, shape: tensor.shape, data: tensor.array))
            }
            if hasClassStatistics {
                for bn in model.batchNorms {
                    let cs = bn.classStatistics!
                    let k = cs.classes, c = cs.channels
                    var means = [Float](), vars = [Float]()
                    means.reserveCapacity(k * c); vars.reserveCapacity(k * c)
                    for j in 0..<k { means += cs.mean(j); vars += cs.variance(j) }
                    try writer.write(TensorRecord(name: bn.name + ".class_count", shape: [k], data: cs.count.map(Float.init)))
                    try writer.write(TensorRecord(name: bn.name + ".class_mean", shape: [k, c], data: means))
                    try writer.write(TensorRecord(name: bn.name + ".class_var", shape: [k, c], data: vars))
                }
            }
            try writer.finish(commit: false)
        } catch {
            writer.abort()
            throw error
        }
        hash = ContentHash.hex(writer.chain)
        return writer.sink
    }

    /// Parameters then BN running statistics, in registration order, by name.
    static func tensors(of model: Model) -> [(String, Tensor)] {
        model.parameters.map { ($0.name, $0.value) } + model.buffers.map { ($0.name, $0.tensor) }
    }

    // MARK: - Load

    /// Reads a model file, rebuilding the model from its stored configuration. Refuses a file whose tensors
    /// do not match the architecture, naming what differs.
    public static func load(path: String) throws -> ModelFile {
        let reader = try StreamReader(path: path)
        try reader.expect(kind: .model)
        let header = reader.header
        guard let configValue = header.meta["config"] else {
            throw LDError("\(reader.name): model header has no 'config'")
        }
        let config: ModelConfig
        do {
            config = try JSONDecoder().decode(ModelConfig.self, from: JSONEncoder().encode(configValue))
        } catch {
            throw LDError("\(reader.name): model header 'config' is not a model configuration")
        }
        var zero = ZeroGenerator()
        let model = try Model(config, rng: &zero)
        var expected: [String: Tensor] = [:]
        for (name, t) in tensors(of: model) { expected[name] = t }
        var seen = Set<String>()
        var classTensors: [String: TensorRecord] = [:]
        var streams = 0
        while let event = try reader.nextEvent() {
            switch event {
            case .header:
                streams += 1
                if streams > 1 { throw LDError("\(reader.name): a model file holds one stream, found a second") }
                continue
            case .end:
                continue
            case .record(let r):
                guard r.kind == .tensor else { continue }
                let t = try TensorRecord(r, header: reader.header)
                if t.name.hasSuffix(".class_count") || t.name.hasSuffix(".class_mean") || t.name.hasSuffix(".class_var") {
                    classTensors[t.name] = t
                    continue
                }
                guard let target = expected[t.name] else {
                    throw LDError("\(reader.name): tensor '\(t.name)' is not part of a \(config.arch) model (\(describe(config)))")
                }
                guard !seen.contains(t.name) else { throw LDError("\(reader.name): tensor '\(t.name)' appears twice") }
                guard target.shape == t.shape else {
                    throw LDError("\(reader.name): tensor '\(t.name)' has shape \(t.shape), the \(config.arch) model expects \(target.shape)")
                }
                t.data.withUnsafeBufferPointer { target.data.update(from: $0.baseAddress!, count: target.count) }
                seen.insert(t.name)
            }
        }
        let missing = expected.keys.filter { !seen.contains($0) }.sorted()
        if !missing.isEmpty {
            throw LDError("\(reader.name): model file lacks \(missing.count) tensor(s) of the \(config.arch) model, first '\(missing[0])'")
        }
        if case .bool(true) = header.meta["class_stats"] ?? .null {
            for bn in model.batchNorms {
                guard let count = classTensors[bn.name + ".class_count"], let mean = classTensors[bn.name + ".class_mean"],
                      let variance = classTensors[bn.name + ".class_var"] else {
                    throw LDError("\(reader.name): class statistics of layer '\(bn.name)' are missing")
                }
                let k = config.classes, c = bn.channels
                guard count.shape == [k], mean.shape == [k, c], variance.shape == [k, c] else {
                    throw LDError("\(reader.name): class statistics of layer '\(bn.name)' have shapes \(count.shape), \(mean.shape), \(variance.shape); expected [\(k)], [\(k), \(c)], [\(k), \(c)]")
                }
                let cs = ClassStatistics(classes: k, channels: c)
                if let bad = count.data.first(where: { $0 < 0 }) ?? variance.data.first(where: { $0 < 0 }) {
                    throw LDError("\(reader.name): class statistics of layer '\(bn.name)' hold the negative count or variance \(bad)")
                }
                for j in 0..<k {
                    let n = Double(count.data[j])
                    cs.count[j] = n
                    for ch in 0..<c {
                        let m = Double(mean.data[j * c + ch]), v = Double(variance.data[j * c + ch])
                        cs.sum[j * c + ch] = m * n
                        cs.sumSquares[j * c + ch] = (v + m * m) * n
                    }
                }
                bn.classStatistics = cs
            }
        }
        func floats(_ key: String) throws -> [Float] {
            guard let v = try header.metaNumbers(key, count: config.channels, source: reader.name) else {
                throw LDError("\(reader.name): model header has no '\(key)'")
            }
            return v
        }
        let mean = try floats("mean"), std = try floats("std")
        try Normalization.check(mean: mean, std: std, source: "\(reader.name): model header")
        let names = try header.metaStrings("class_names", count: config.classes, source: reader.name)
            ?? (0..<config.classes).map(String.init)
        var info: [String: JSONValue] = [:]
        if case .object(let o) = header.meta["info"] ?? .null { info = o }
        var file = ModelFile(model: model, mean: mean, std: std, classNames: names, info: info)
        if let r = header.meta["eval_ratio"], r != .null {
            guard let v = r.doubleValue, v > 0, v <= 1 else { throw LDError("\(reader.name): model header 'eval_ratio' must be a number in (0, 1]") }
            file.evalRatio = v
        }
        file.hash = ContentHash.hex(reader.lastEndHash ?? 0)
        model.training = false
        return file
    }

    /// `data` in this model's class order (`Dataset.aligned`): same names, a reordering or a subset remapped by
    /// name (with a note for stderr), different names an error, `map` an explicit pairing; after checking
    /// that its images fit (channels, size). `role` names the flag (`--data`).
    public func pair(_ data: Dataset, role: String, map: ClassMap? = nil) throws -> (data: Dataset, note: String?) {
        try checkImages(data, role: role)
        let aligned = try data.aligned(to: classNames, referenceName: "the model", role: "\(role) \(data.source)", map: map)
        try check(aligned.data, role: role)
        return aligned
    }

    /// Checks that a data set's images fit this model (channels, size).
    public func checkImages(_ data: Dataset, role: String) throws {
        let c = model.config
        if let r = data.evalRatio, abs(r - evalRatio) > 1e-9 {
            throw LDError("\(role) \(data.source) was brought to \(data.height) px by the evaluation transform with ratio \(r) (resize to \(Int(Double(data.height) / r)), centre crop), the model's is \(evalRatio) (resize to \(Int(Double(c.imageSize) / evalRatio))): load or pack the images with --eval-ratio \(evalRatio)")
        }
        if data.channels != c.channels || data.height != c.imageSize || data.width != c.imageSize {
            throw LDError("\(role) \(data.source) has \(data.channels)x\(data.height)x\(data.width) images, the model takes \(c.channels)x\(c.imageSize)x\(c.imageSize)")
        }
    }

    /// Checks that a data set fits this model (channels, size, classes), naming what differs.
    public func check(_ data: Dataset, role: String) throws {
        let c = model.config
        if data.channels != c.channels || data.height != c.imageSize || data.width != c.imageSize {
            throw LDError("\(role) \(data.source) has \(data.channels)x\(data.height)x\(data.width) images, the model takes \(c.channels)x\(c.imageSize)x\(c.imageSize)")
        }
        if data.classes != c.classes {
            throw LDError("\(role) \(data.source) has \(data.classes) classes, the model has \(c.classes)")
        }
    }

    static func describe(_ c: ModelConfig) -> String { c.summary }
}

/// A generator that returns zeros: builds a model whose weights are about to be overwritten from a file.
struct ZeroGenerator: RandomNumberGenerator {
    mutating func next() -> UInt64 { 0 }
}

extension Normalization {
    /// The model file's normalisation (the one its teacher or student was trained with).
    public init(of file: ModelFile) { self.init(mean: file.mean, std: file.std) }
}
