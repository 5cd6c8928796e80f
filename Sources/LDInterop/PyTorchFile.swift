import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks

/// What an imported model's inputs are: normalisation, size and class names of a data set family.
public struct ImportPreset: Sendable {
    public var name: String
    public var channels: Int
    public var mean: [Float]
    public var std: [Float]
    public var imageSize: Int
    /// nil: class names are the class indices unless --class-names gives them.
    public var classNames: [String]?

    public static let all: [ImportPreset] = [
        ImportPreset(name: "imagenet", channels: 3, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], imageSize: 224, classNames: nil),
        ImportPreset(name: "tiny-imagenet", channels: 3, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], imageSize: 64, classNames: nil),
        ImportPreset(name: "cifar10", channels: 3, mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616], imageSize: 32,
                     classNames: Dataset.cifar10ClassNames),
        ImportPreset(name: "cifar100", channels: 3, mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762], imageSize: 32, classNames: nil),
        ImportPreset(name: "fmnist", channels: 1, mean: [0.2860], std: [0.3530], imageSize: 28, classNames: Dataset.fashionMNISTClassNames),
    ]

    public static var names: [String] { all.map(\.name) }

    public static func named(_ name: String) throws -> ImportPreset {
        guard let p = all.first(where: { $0.name == name }) else {
            throw LDError("unknown preset '\(name)' (expected \(names.joined(separator: ", ")))")
        }
        return p
    }
}

/// What the import takes besides the file: a preset and flags (flags win over the preset, the preset over
/// what an ld-exported safetensors file says about itself).
public struct ImportSettings: Sendable {
    public var preset: String?
    public var mean: [Float]?
    public var std: [Float]?
    public var imageSize: Int?
    public var classNames: [String]?

    public init(preset: String? = nil, mean: [Float]? = nil, std: [Float]? = nil, imageSize: Int? = nil, classNames: [String]? = nil) {
        self.preset = preset; self.mean = mean; self.std = std; self.imageSize = imageSize; self.classNames = classNames
    }
}

/// PyTorch files as ld model files, both ways.
public enum PyTorchFile {
    /// The state dict of a `.safetensors` file or a `torch.save` checkpoint (told apart by their first bytes),
    /// the safetensors metadata (empty for a checkpoint) and the format's name.
    public static func read(path: String) throws -> (state: StateDict, metadata: [String: String], format: String) {
        guard !Files.isDirectory(path) else { throw LDError("\(path): is a directory, expected a .safetensors or torch.save file") }
        let bytes = try Files.readFile(path)
        let zip = bytes.count >= 2 && bytes[0] == 0x50 && bytes[1] == 0x4B
        let json = bytes.count >= 9 && bytes[8] == UInt8(ascii: "{")
        if zip || (!json && bytes.first == 0x80) {
            return (try TorchCheckpoint.read(bytes, name: path), [:], "torch.save checkpoint")
        }
        let (state, metadata) = try Safetensors.read(bytes, name: path)
        return (state.strippingModulePrefix(), metadata, "safetensors")
    }

    /// The model file a PyTorch state dict becomes, and lines that say what was found and assumed.
    public static func importModel(path: String, settings: ImportSettings) throws -> (file: ModelFile, notes: [String]) {
        let (state, metadata, format) = try read(path: path)
        guard state.count > 0 else { throw LDError("\(path): holds no tensors") }
        let preset = try settings.preset.map(ImportPreset.named)
        func metaFloats(_ key: String) -> [Float]? {
            metadata[key].flatMap { try? JSONDecoder().decode([Float].self, from: Data($0.utf8)) }
        }
        var metaSize: Int?
        if let s = metadata["input_size"], let v = try? JSONDecoder().decode([Int].self, from: Data(s.utf8)), v.count == 3 { metaSize = v[2] }
        if let p = preset, let first = state["features.0.weight"] ?? state["conv1.weight"], first.shape.count == 4,
           first.shape[1] != p.channels {
            throw LDError("\(path): the model takes \(first.shape[1])-channel images, preset \(p.name) is for \(p.channels)")
        }
        let (config, notes) = try TorchvisionNames.infer(state, name: path, imageSize: settings.imageSize ?? preset?.imageSize ?? metaSize)
        if let p = preset, p.channels != config.channels {
            throw LDError("\(path): the model takes \(config.channels)-channel images, preset \(p.name) is for \(p.channels)")
        }
        let model = try TorchvisionNames.model(config, from: state, name: path)
        guard let mean = settings.mean ?? preset?.mean ?? metaFloats("mean"), let std = settings.std ?? preset?.std ?? metaFloats("std") else {
            throw LDError("\(path): no normalisation given: use --preset (\(ImportPreset.names.joined(separator: ", "))) or --mean and --std")
        }
        guard mean.count == config.channels, std.count == config.channels, std.allSatisfy({ $0 > 0 && $0.isFinite }),
              mean.allSatisfy(\.isFinite) else {
            throw LDError("\(path): the model takes \(config.channels) channel(s); mean \(mean) and std \(std) need \(config.channels) finite value(s) each, std positive")
        }
        var names: [String]
        if let given = settings.classNames ?? preset?.classNames {
            names = given
        } else if let s = metadata["class_names"], let v = try? JSONDecoder().decode([String].self, from: Data(s.utf8)) {
            names = v
        } else {
            names = (0..<config.classes).map(String.init)
        }
        guard names.count == config.classes else {
            throw LDError("\(path): the model has \(config.classes) classes, the class names given are \(names.count)")
        }
        var info: [String: JSONValue] = ["imported_from": .string((path as NSString).lastPathComponent), "imported_format": .string(format)]
        if let s = metadata["ld_info"], let v = try? JSONDecoder().decode([String: JSONValue].self, from: Data(s.utf8)) { info = v }
        let file = ModelFile(model: model, mean: mean, std: std, classNames: names, info: info)
        let size = "\(config.channels)x\(config.imageSize)x\(config.imageSize)"
        return (file, ["\(path): \(format), \(state.count) tensors: \(config.summary), \(size) input, \(config.classes) classes"] + notes)
    }

    /// The safetensors bytes of a model file: torchvision's names, float32 weights, `num_batches_tracked` as
    /// int64, and in `__metadata__` (JSON strings) the architecture, stem, width, depth, input size, mean,
    /// std, class names, ld's configuration and training facts.
    public static func exportBytes(_ file: ModelFile, producer: String) throws -> [UInt8] {
        let c = file.model.config
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        func json<T: Encodable>(_ v: T) throws -> String { String(decoding: try encoder.encode(v), as: UTF8.self) }
        var metadata: [String: String] = [
            "format": "pt",
            "architecture": c.arch,
            "input_size": try json([c.channels, c.imageSize, c.imageSize]),
            "mean": try json(file.mean),
            "std": try json(file.std),
            "class_names": try json(file.classNames),
            "ld_config": try json(c),
            "producer": producer,
        ]
        if c.arch == ResNet18.name { metadata["stem"] = c.stem } else { metadata["width"] = "\(c.width)"; metadata["depth"] = "\(c.depth)" }
        if !file.info.isEmpty { metadata["ld_info"] = try json(file.info) }
        return Safetensors.encode(TorchvisionNames.stateDict(of: file.model), metadata: metadata)
    }

    /// Writes `exportBytes` to `path` atomically (`-` for stdout).
    public static func export(_ file: ModelFile, to path: String, producer: String) throws {
        let bytes = try exportBytes(file, producer: producer)
        let out = try OutputFile(path: path)
        do {
            try out.write(bytes)
            try out.commit()
        } catch {
            out.abort()
            throw error
        }
    }
}
