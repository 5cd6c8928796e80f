import LDKernels
import LDRecords
import Dispatch
import Foundation

extension Dataset {
    /// Loads an ImageFolder: one sub-folder per class (class ids follow the folder names sorted by their
    /// UTF-8 bytes, so name them with zero padding: `000`, `001`, ...), PNG and JPEG files in each sorted by
    /// name.
    ///
    /// - Hidden entries (`.name`) and files not ending in `.png`, `.jpg` or `.jpeg` (any case) are ignored; a
    ///   class folder may be empty, but the whole set may not. A file is decoded by its content, not its
    ///   extension (a `.jpg` that is a PNG is read as the PNG it is).
    /// - Class folders are searched to any depth (Tiny-ImageNet's `train/CLASS/images/*.JPEG`), as
    ///   torchvision's ImageFolder does. Tiny-ImageNet's validation layout (`images/` and
    ///   `val_annotations.txt`, which names each file's class) is read as such.
    /// - Without `transform`, every image must have the size of the first one. With it (the model's input
    ///   size), images of size x size are taken as they are and any other is brought to it by torchvision's
    ///   evaluation transform (`EvalTransform`: resize the shorter side to size / ratio, center-crop size;
    ///   a JPEG much larger than that is decoded at a reduced scale first, as PIL's draft mode).
    /// - The set is RGB if any image is (gray images are then replicated into the three channels, as PIL's
    ///   `convert("RGB")`), else gray. Palette PNGs are expanded and opaque alpha dropped, see `PNG`; JPEG,
    ///   see `JPEG`.
    /// - `DIR/manifest.json`, if present, may give `"mean"` and `"std"` (one per channel, together) and
    ///   `"class_names"` (one per class folder). Without mean and std they are computed from the images
    ///   (population statistics of pixel/255 per channel).
    static func loadImageFolder(directory: String, source: String, transform: EvalTransform? = nil, wholeImages: Bool = false) throws -> Dataset {
        try Files.requireDirectory(directory, what: "image")
        // ld-recover records its run in `.ld-recover.json` first and writes `manifest.json` last: a folder
        // with the one and not the other is a run that stopped (or a shard), not a complete set.
        if Files.isFile("\(directory)/.ld-recover.json") && !Files.isFile("\(directory)/manifest.json") {
            throw LDError("\(directory): an unfinished ld-recover run (no manifest.json yet): run the same ld-recover command again, over all classes, to finish it")
        }
        var paths: [String] = []
        var labels: [Int32] = []
        let folders: [String]
        if Files.isFile("\(directory)/val_annotations.txt") && Files.isDirectory("\(directory)/images") {
            (folders, paths, labels) = try tinyImageNetValidation(directory)
        } else {
            folders = try Files.list(directory).filter { !$0.hasPrefix(".") && Files.isDirectory("\(directory)/\($0)") }
            guard !folders.isEmpty else { throw LDError("\(directory): no class sub-folders in the image folder") }
            for (c, folder) in folders.enumerated() {
                for path in try imageFiles(under: "\(directory)/\(folder)", depth: 0) {
                    paths.append(path)
                    labels.append(Int32(c))
                }
            }
        }
        guard !paths.isEmpty else { throw LDError("\(directory): no PNG or JPEG files in the class sub-folders") }
        return try loadImages(paths: paths, labels: labels, folders: folders, directory: directory, source: source, transform: transform, wholeImages: wholeImages)
    }

    /// Loads the images of a labels file (`list:FILE[:DIR]`, see `DatasetSpec`): one line per image, its name
    /// (relative to DIR, by default the file's folder; the extension may be left out) and its class name,
    /// separated by white space or a comma, further fields ignored; `#` comment lines and a CSV header line
    /// (`ImageId,...`) skipped. That reads ImageNet's `LOC_val_solution.csv`, Tiny-ImageNet's
    /// `val_annotations.txt` and any `NAME CLASS` list. Classes are the distinct names sorted as ImageFolder
    /// sorts its folders; images keep the file's order.
    static func loadImageList(file: String, directory: String?, source: String, transform: EvalTransform? = nil, wholeImages: Bool = false) throws -> Dataset {
        let dir = directory ?? {
            guard let slash = file.lastIndex(of: "/") else { return "." }
            return String(file[..<slash])
        }()
        try Files.requireDirectory(dir, what: "image")
        let (classes, paths, labels) = try labelledImages(file, directory: dir)
        return try loadImages(paths: paths, labels: labels, folders: classes, directory: dir, source: source, transform: transform, wholeImages: wholeImages)
    }

    /// The images named by a labels file, their labels and the sorted class names (see `loadImageList`).
    static func labelledImages(_ file: String, directory dir: String) throws -> (classes: [String], paths: [String], labels: [Int32]) {
        guard Files.isFile(file) else { throw LDError("\(file): labels file not found") }
        guard let lines = try Files.lines(file) else { throw LDError("\(file): labels file not found") }
        var pairs: [(String, String)] = []
        for (n, line) in lines.enumerated() {
            if line.hasPrefix("#") || (n == 0 && line.hasPrefix("ImageId,")) { continue }
            let f = line.split(whereSeparator: { $0 == "\t" || $0 == " " || $0 == "," }).map(String.init)
            guard f.count >= 2 else { throw LDError("\(file): line \(n + 1) names no class (expected 'NAME CLASS')") }
            var path = "\(dir)/\(f[0])"
            if !Files.isFile(path), !ImageFile.isImageName(f[0]),
               let found = [".JPEG", ".jpg", ".jpeg", ".png", ".JPG", ".PNG"].lazy.map({ path + $0 }).first(where: Files.isFile) {
                path = found
            }
            guard Files.isFile(path) else { throw LDError("\(file): line \(n + 1) names \(f[0]), which is not in \(dir)") }
            pairs.append((path, f[1]))
        }
        guard !pairs.isEmpty else { throw LDError("\(file): names no images") }
        let classes = Set(pairs.map(\.1)).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($0.element, Int32($0.offset)) })
        return (classes, pairs.map(\.0), pairs.map { index[$0.1]! })
    }

    /// The common part of folders and labels files: headers, the set's shape, in memory or on disk
    /// (`Memory.dataBudget`), the optional manifest, the normalisation.
    static func loadImages(paths: [String], labels: [Int32], folders: [String], directory: String, source: String,
                           transform: EvalTransform?, wholeImages: Bool = false) throws -> Dataset {
        let n = paths.count, size = transform?.size

        // Headers first, on all cores: the set's shape (the first image's size; RGB if any image is) and the
        // memory it needs are known before any pixel is decoded.
        let headers = try imageHeaders(paths)
        let (height, width) = size.map { ($0, $0) } ?? (headers[0].height, headers[0].width)
        let channels = headers.contains { $0.channels == 3 } ? 3 : 1
        if size == nil, let i = headers.firstIndex(where: { $0.height != height || $0.width != width }) {
            throw LDError("\(paths[i]): image is \(headers[i].height)x\(headers[i].width) (height x width) but \(paths[0]) is \(height)x\(width); images of several sizes are brought to one by the evaluation transform when the model's input size is known (ld-squeeze --image-size S)")
        }
        let imageSize = channels * height * width
        let files = ImageFiles(root: directory, paths: paths, headers: headers, channels: channels, height: height, width: width, transform: transform)
        // A set whose decoded pixels pass the budget stays on disk, decoded batch by batch.
        let resized = transform.map { t in headers.contains { $0.height != t.size || $0.width != t.size } } ?? false
        let onDisk = Double(n) * Double(imageSize) > Memory.dataBudget || (wholeImages && resized)
        var pixels: [UInt8] = []
        if !onDisk {
            try Memory.require(Double(n) * Double(imageSize), for: "\(directory): \(n) images of \(channels)x\(height)x\(width)")
            pixels = [UInt8](repeating: 0, count: n * imageSize)
            // Decode on all cores, each image straight into its slot; report the first failure by index.
            try pixels.withUnsafeMutableBufferPointer { try files.decode(Array(0..<n), into: $0.baseAddress!, workers: Engine.threads) }
        }

        var classNames = folders
        var mean: [Float]? = nil
        var std: [Float]? = nil
        var grid: Int? = nil
        let manifestPath = "\(directory)/manifest.json"
        if Files.isFile(manifestPath) {
            let m = try FolderManifest(path: manifestPath, channels: channels, classes: folders.count)
            // An ld-recover folder states its run's classes and IPC: a shard's folder holds part of them.
            if let k = m.recoverClasses, k != folders.count {
                throw LDError("\(directory): holds \(folders.count) of the \(k) classes of its ld-recover run (a class shard): run ld-recover over all classes into it to finish the set")
            }
            if let ipc = m.recoverIPC {
                var counts = [Int](repeating: 0, count: folders.count)
                for l in labels { counts[Int(l)] += 1 }
                if let c = counts.firstIndex(where: { $0 != ipc }) {
                    throw LDError("\(directory): class folder \(folders[c]) holds \(counts[c]) images, its ld-recover run makes \(ipc) per class (an IPC shard or an unfinished run): run ld-recover over the whole --ipc into it to finish the set")
                }
            }
            if let names = m.classNames { classNames = names }
            mean = m.mean
            std = m.std
            grid = m.grid
        }
        if mean == nil {
            // A set on disk: estimated from up to `statisticsSample` images spread evenly over it.
            var sample = pixels
            var k = n
            if onDisk {
                k = min(n, statisticsSample)
                sample = [UInt8](repeating: 0, count: k * imageSize)
                try sample.withUnsafeMutableBufferPointer {
                    try files.decode((0..<k).map { $0 * n / k }, into: $0.baseAddress!, workers: Engine.threads)
                }
            }
            let stats = sample.withUnsafeBufferPointer {
                channelStatistics($0.baseAddress!, count: k, channels: channels, plane: height * width)
            }
            mean = stats.mean
            std = stats.std
        }
        var set = Dataset(pixels: pixels, labels: labels, classes: folders.count, channels: channels, height: height,
                          width: width, mean: mean!, std: std!, classNames: classNames, source: source)
        set.grid = grid
        if onDisk { set.files = files }
        if resized, let t = transform { set.evalRatio = t.ratio }
        return set
    }

    /// Images a set kept on disk estimates its normalisation from when its folder's manifest gives none.
    static let statisticsSample = 1000

    /// The headers of the files at `paths`, read on all cores; the first failure (by index) is thrown.
    /// The image files under `dir` (PNG and JPEG by name, hidden entries skipped): a folder's files sorted by
    /// name, then its sub-folders' in name order (to a depth of 8), as torchvision's ImageFolder walks a class.
    static func imageFiles(under dir: String, depth: Int) throws -> [String] {
        var files: [String] = [], subfolders: [String] = []
        for name in try Files.list(dir) where !name.hasPrefix(".") {
            let path = "\(dir)/\(name)"
            if Files.isDirectory(path) { subfolders.append(path) } else if ImageFile.isImageName(name) && Files.isFile(path) { files.append(path) }
        }
        if depth < 8 { for sub in subfolders { files += try imageFiles(under: sub, depth: depth + 1) } }
        return files
    }

    /// Tiny-ImageNet's validation folder: `images/NAME.JPEG` and `val_annotations.txt`, whose lines are
    /// `NAME<TAB>WNID<TAB>box...`; classes are the wnids, sorted as the training folders are.
    static func tinyImageNetValidation(_ dir: String) throws -> (classes: [String], paths: [String], labels: [Int32]) {
        let (classes, paths, labels) = try labelledImages("\(dir)/val_annotations.txt", directory: "\(dir)/images")
        let order = paths.indices.sorted { Array(paths[$0].utf8).lexicographicallyPrecedes(Array(paths[$1].utf8)) }
        return (classes, order.map { paths[$0] }, order.map { labels[$0] })
    }

    static func imageHeaders(_ paths: [String]) throws -> [ImageFile.Header] {
        var out = [ImageFile.Header](repeating: ImageFile.Header(channels: 0, height: 0, width: 0), count: paths.count)
        try out.withUnsafeMutableBufferPointer { hs in
            let h = hs.baseAddress!
            try ImageFiles.inParallel(paths.count, workers: Engine.threads) { i in
                // The first 64 KB hold the header of nearly every file; the whole file when not.
                let head = try Files.readPrefix(paths[i], count: 1 << 16)
                if let hd = try? head.withUnsafeBytes({ try ImageFile.header($0, name: paths[i]) }) { h[i] = hd } else {
                    h[i] = try Files.readFile(paths[i]).withUnsafeBytes { try ImageFile.header($0, name: paths[i]) }
                }
            }
        }
        return out
    }


    /// Per-channel mean and population standard deviation of pixel/255 over `count` planar images, exact
    /// (from a 256-bin histogram per channel). A constant channel gets std 1 so normalising stays finite.
    static func channelStatistics(_ pixels: UnsafePointer<UInt8>, count: Int, channels: Int, plane: Int)
        -> (mean: [Float], std: [Float])
    {
        var mean: [Float] = []
        var std: [Float] = []
        let histogram = UnsafeMutablePointer<Int>.allocate(capacity: 256)
        defer { histogram.deallocate() }
        for c in 0..<channels {
            histogram.initialize(repeating: 0, count: 256)
            for i in 0..<count {
                let p = pixels + (i * channels + c) * plane
                for j in 0..<plane { histogram[Int(p[j])] += 1 }
            }
            var s = 0.0, s2 = 0.0
            for v in 0..<256 {
                let x = Double(v) / 255
                s += Double(histogram[v]) * x
                s2 += Double(histogram[v]) * x * x
            }
            let n = Double(count * plane)
            let m = s / n
            let variance = max(s2 / n - m * m, 0)
            mean.append(Float(m))
            std.append(variance > 1e-12 ? Float(variance.squareRoot()) : 1)
        }
        return (mean, std)
    }
}

/// The optional `manifest.json` of an ImageFolder.
private struct FolderManifest {
    var mean: [Float]?
    var std: [Float]?
    var classNames: [String]?
    var grid: Int?
    /// `classes` and `ipc` of an ld-recover run (`producer` is ld-recover): what the whole set holds.
    var recoverClasses: Int?
    var recoverIPC: Int?

    init(path: String, channels: Int, classes: Int) throws {
        let bytes = try Files.readFile(path)
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(bytes))
        } catch {
            throw LDError("\(path): not valid JSON")
        }
        guard let dict = object as? [String: Any] else { throw LDError("\(path): expected a JSON object") }
        func floats(_ key: String) throws -> [Float]? {
            guard let value = dict[key] else { return nil }
            guard let array = value as? [Any] else { throw LDError("\(path): \"\(key)\" must be an array of numbers") }
            var out: [Float] = []
            for v in array {
                guard let num = v as? NSNumber, num.doubleValue.isFinite else {
                    throw LDError("\(path): \"\(key)\" must be an array of numbers")
                }
                out.append(num.floatValue)
            }
            guard out.count == channels else {
                throw LDError("\(path): \"\(key)\" has \(out.count) values for \(channels)-channel images")
            }
            return out
        }
        mean = try floats("mean")
        std = try floats("std")
        if dict["producer"] as? String == "ld-recover" {
            recoverClasses = (dict["classes"] as? NSNumber)?.intValue
            recoverIPC = (dict["ipc"] as? NSNumber)?.intValue
        }
        if let g = dict[ImageGridMeta.key], !(g is NSNull) {
            grid = try ImageGridMeta.factor((g as? NSNumber)?.doubleValue ?? .nan, source: path)
        }
        guard (mean == nil) == (std == nil) else { throw LDError("\(path): \"mean\" and \"std\" go together") }
        if let std, std.contains(where: { !($0 > 0) }) { throw LDError("\(path): \"std\" values must be positive") }
        if let value = dict["class_names"] {
            guard let names = value as? [String] else { throw LDError("\(path): \"class_names\" must be an array of strings") }
            guard names.count == classes else {
                throw LDError("\(path): \(names.count) class names for \(classes) class folders")
            }
            classNames = names
        }
    }
}
