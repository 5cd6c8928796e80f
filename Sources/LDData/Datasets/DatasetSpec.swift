import LDKernels
import LDRecords
/// Which half of a data set with a fixed train/test split.
public enum DatasetSplit: String, Equatable {
    case train, test
}

/// A parsed data set name (DESIGN.md section 2):
///
/// - `fmnist:train`, `fmnist:test`: Fashion-MNIST IDX files (gzipped or not) in
///   `/usr/share/datasets/fashion-mnist`, or in the folder after a second colon (`fmnist:train:/some/dir`);
/// - `cifar10:DIR`, `cifar10:train:DIR`, `cifar10:test:DIR`: the CIFAR-10 binary batches (bare means train);
/// - `cifar100:DIR`, `cifar100:train:DIR`, `cifar100:test:DIR`: the CIFAR-100 binary files (fine labels);
/// - `folder:DIR`: an ImageFolder of PNG and JPEG files, one sub-folder per class;
/// - `list:FILE`, `list:FILE:DIR`: the images a labels file names with their classes (`NAME CLASS` lines;
///   ImageNet's `LOC_val_solution.csv`; Tiny-ImageNet's `val_annotations.txt`), under DIR (default: the
///   file's folder); the layout of a flat validation folder;
/// - anything else: the path of an image record-stream file (`-` is standard input).
///
/// A name that looks like `word:...` with an unknown word is refused rather than taken as a file name;
/// write `./word:...` for a file whose name really has that shape (likewise a bare `fmnist`, `cifar10`,
/// `cifar100` or `folder`).
public enum DatasetSpec: Equatable, CustomStringConvertible {
    case fashionMNIST(split: DatasetSplit, directory: String)
    case cifar10(split: DatasetSplit, directory: String)
    case cifar100(split: DatasetSplit, directory: String)
    case folder(directory: String)
    case list(file: String, directory: String?)
    case recordStream(path: String)

    /// Where Debian's dataset-fashion-mnist package installs the IDX files.
    public static let fashionMNISTDefaultDirectory = "/usr/share/datasets/fashion-mnist"

    /// Parses a data set name; throws an `LDError` that quotes the name and says what was expected.
    public init(parsing text: String) throws {
        guard !text.isEmpty else { throw LDError("empty data set name") }
        guard let colon = text.firstIndex(of: ":") else {
            switch text {
            case "fmnist": throw LDError("data set 'fmnist': expected fmnist:train or fmnist:test")
            case "cifar10", "cifar100", "folder", "list": throw LDError("data set '\(text)': needs a folder: \(text):DIR")
            default: break
            }
            self = .recordStream(path: text)
            return
        }
        let kind = String(text[..<colon])
        let rest = String(text[text.index(after: colon)...])
        switch kind {
        case "fmnist":
            let parts = rest.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard let split = DatasetSplit(rawValue: parts[0]) else {
                throw LDError("data set '\(text)': expected fmnist:train or fmnist:test (optionally :DIR after it)")
            }
            var dir = DatasetSpec.fashionMNISTDefaultDirectory
            if parts.count == 2 {
                guard !parts[1].isEmpty else { throw LDError("data set '\(text)': empty folder after the split") }
                dir = parts[1]
            }
            self = .fashionMNIST(split: split, directory: dir)
        case "cifar10", "cifar100":
            var split = DatasetSplit.train
            var dir = rest
            let parts = rest.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            if let s = DatasetSplit(rawValue: parts[0]) {
                guard parts.count == 2, !parts[1].isEmpty else {
                    throw LDError("data set '\(text)': needs a folder: \(kind):\(s.rawValue):DIR")
                }
                split = s
                dir = parts[1]
            }
            guard !dir.isEmpty else { throw LDError("data set '\(text)': needs a folder: \(kind):DIR") }
            self = kind == "cifar10" ? .cifar10(split: split, directory: dir) : .cifar100(split: split, directory: dir)
        case "folder":
            guard !rest.isEmpty else { throw LDError("data set '\(text)': needs a folder: folder:DIR") }
            self = .folder(directory: rest)
        case "list":
            let parts = rest.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard !parts[0].isEmpty else { throw LDError("data set '\(text)': needs a labels file: list:FILE or list:FILE:DIR") }
            if parts.count == 2 && parts[1].isEmpty { throw LDError("data set '\(text)': empty folder after the labels file") }
            self = .list(file: parts[0], directory: parts.count == 2 ? parts[1] : nil)
        default:
            // `name:...` with a plain lowercase word before the colon reads as a data set kind, not a file.
            if !kind.isEmpty, kind.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) }) {
                throw LDError("data set '\(text)': unknown kind '\(kind)' (expected fmnist:, cifar10:, cifar100:, "
                    + "folder:, list: or a record-stream file; write ./\(text) for a file of that name)")
            }
            self = .recordStream(path: text)
        }
    }

    /// The canonical name (the default Fashion-MNIST folder is left out): what `Dataset.source` holds.
    public var description: String {
        switch self {
        case let .fashionMNIST(split, dir):
            return dir == DatasetSpec.fashionMNISTDefaultDirectory ? "fmnist:\(split.rawValue)"
                : "fmnist:\(split.rawValue):\(dir)"
        case let .cifar10(split, dir): return "cifar10:\(split.rawValue):\(dir)"
        case let .cifar100(split, dir): return "cifar100:\(split.rawValue):\(dir)"
        case let .folder(dir): return "folder:\(dir)"
        case let .list(file, dir): return "list:\(file)" + (dir.map { ":\($0)" } ?? "")
        case let .recordStream(path): return path
        }
    }
}

extension DatasetSpec {
    /// The file or folder the data set is read from (nil for stdin).
    public var path: String? {
        switch self {
        case let .fashionMNIST(_, dir), let .cifar10(_, dir), let .cifar100(_, dir): return dir
        case let .folder(dir): return dir
        case let .list(file, _): return file
        case let .recordStream(path): return path == "-" ? nil : path
        }
    }
}

extension RunFiles {
    /// Adds the file or folder a data set name reads (nothing for a name that does not parse: loading it
    /// reports that).
    public mutating func data(_ flag: String, _ name: String?) {
        guard let name, let spec = try? DatasetSpec(parsing: name) else { return }
        input(flag, spec.path)
    }
}
