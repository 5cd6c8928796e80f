import LDKernels
import LDRecords
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Dataset {
    /// Loads a data set from its name (see `DatasetSpec`). `imageSize`: the model's input size, to which an
    /// image folder of other sizes is brought by the evaluation transform (see `loadImageFolder`).
    /// `evalRatio`: that transform's ratio (resize to size / ratio, centre crop size).
    /// `wholeImages`: a folder whose images are not all of that size stays on disk whatever its size, so
    /// that training views can be cropped from the whole images (`Dataset.crops`).
    public static func load(_ name: String, imageSize: Int? = nil, evalRatio: Double = EvalTransform.defaultRatio,
                            wholeImages: Bool = false) throws -> Dataset {
        try load(DatasetSpec(parsing: name), imageSize: imageSize, evalRatio: evalRatio, wholeImages: wholeImages)
    }

    /// Loads a data set. Every failure is an `LDError` naming the file and the problem.
    public static func load(_ spec: DatasetSpec, imageSize: Int? = nil, evalRatio: Double = EvalTransform.defaultRatio,
                            wholeImages: Bool = false) throws -> Dataset {
        let transform = imageSize.map { EvalTransform(size: $0, ratio: evalRatio) }
        switch spec {
        case let .fashionMNIST(split, dir):
            return try loadFashionMNIST(split: split, directory: dir, source: spec.description)
        case let .cifar10(split, dir):
            return try loadCIFAR(hundred: false, split: split, directory: dir, source: spec.description)
        case let .cifar100(split, dir):
            return try loadCIFAR(hundred: true, split: split, directory: dir, source: spec.description)
        case let .folder(dir):
            return try loadImageFolder(directory: dir, source: spec.description, transform: transform, wholeImages: wholeImages)
        case let .list(file, dir):
            return try loadImageList(file: file, directory: dir, source: spec.description, transform: transform, wholeImages: wholeImages)
        case let .recordStream(path):
            // A plain path naming a folder (`--data syn/`, what ld-recover --png writes) is an ImageFolder.
            if path != "-", Files.isDirectory(path) {
                return try loadImageFolder(directory: path, source: "folder:\(path)", transform: transform, wholeImages: wholeImages)
            }
            return try loadRecordStream(path: path)
        }
    }

}

