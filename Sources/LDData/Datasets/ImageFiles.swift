import LDKernels
import LDRecords
import Dispatch
import Foundation

/// The image files of a data set that is not held decoded: an image folder whose decoded pixels would pass
/// `Memory.dataBudget` (`--data-memory`). Each image is read, decoded and brought to the set's size when a
/// batch asks for it (`Dataset.images(_:into:)`), on all cores; nothing of it stays in memory but the paths.
public final class ImageFiles: @unchecked Sendable {
    /// The folder the paths are under (with its trailing slash), and one path per image in the set's order.
    public let root: String
    public let paths: [String]
    /// Each file's size and channels, from its header.
    let headers: [ImageFile.Header]
    public let channels: Int, height: Int, width: Int
    /// How an image of another size than `height` x `width` is brought to it (nil: every file has that size).
    let transform: EvalTransform?

    init(root: String, paths: [String], headers: [ImageFile.Header], channels: Int, height: Int, width: Int, transform: EvalTransform?) {
        precondition(paths.count == headers.count)
        self.root = root.hasSuffix("/") ? root : root + "/"
        self.paths = paths
        self.headers = headers
        self.channels = channels
        self.height = height
        self.width = width
        self.transform = transform
    }

    public var count: Int { paths.count }

    /// Whether images of other sizes are brought to the set's by the evaluation transform (so a training
    /// view can instead be cropped from the whole image, `decodeCrops`).
    public var transforms: Bool { transform != nil }

    /// Height and width of file `i` as stored.
    public func storedSize(_ i: Int) -> (height: Int, width: Int) { (headers[i].height, headers[i].width) }

    /// The files at `indices`, in that order.
    func subset(_ indices: [Int]) -> ImageFiles {
        ImageFiles(root: root, paths: indices.map { paths[$0] }, headers: indices.map { headers[$0] }, channels: channels,
                   height: height, width: width, transform: transform)
    }

    /// Decodes image `i` into `dest` (`channels * height * width` bytes, planar).
    func decode(_ i: Int, into dest: UnsafeMutablePointer<UInt8>) throws {
        let h = headers[i]
        if let t = transform, h.height != height || h.width != width {
            try ImageFile.decode(path: paths[i], channels: channels, transform: t, into: dest)
        } else {
            try ImageFile.decode(path: paths[i], channels: channels, height: height, width: width, into: dest)
        }
    }

    /// Decodes image `i` whole, resamples `box` of it (in its stored pixels) to the set's size, mirrored when
    /// `flip`, into `dest`: torchvision's RandomResizedCrop and flip on the PIL image (`resized_crop`, PIL's
    /// antialiased bilinear with a box).
    func decodeCrop(_ i: Int, box: CropBox, flip: Bool, into dest: UnsafeMutablePointer<UInt8>) throws {
        let image = try ImageFile.decodeStored(path: paths[i], channels: channels)
        let (h, w) = (image.height, image.width)
        guard box.top >= 0, box.left >= 0, box.height > 0, box.width > 0, box.top + box.height <= h, box.left + box.width <= w else {
            throw LDError("\(paths[i]): crop \(box) outside the \(h)x\(w) image")
        }
        image.pixels.withUnsafeBufferPointer {
            Resample.resize($0.baseAddress!, channels: channels, height: h, width: w, layout: image.layout,
                            box: (Double(box.left), Double(box.top), Double(box.left + box.width), Double(box.top + box.height)),
                            outH: height, outW: width, flip: flip, into: dest)
        }
    }

    /// `decodeCrop` of each image at `indices` with its crop, into consecutive slots of `dest`, on up to
    /// `workers` threads; the first failure (by position) is thrown.
    func decodeCrops(_ indices: [Int], crops: [(box: CropBox, flip: Bool)], into dest: UnsafeMutablePointer<UInt8>, workers: Int) throws {
        let size = channels * height * width
        try ImageFiles.inParallel(indices.count, workers: workers) { k in
            try decodeCrop(indices[k], box: crops[k].box, flip: crops[k].flip, into: dest + k * size)
        }
    }

    /// Decodes the images at `indices` into consecutive slots of `dest` on up to `workers` threads; the first
    /// failure (by position) is thrown.
    func decode(_ indices: [Int], into dest: UnsafeMutablePointer<UInt8>, workers: Int) throws {
        let size = channels * height * width
        try ImageFiles.inParallel(indices.count, workers: workers) { k in try decode(indices[k], into: dest + k * size) }
    }

    /// Runs `body(k)` for k in 0..<n on up to `workers` threads (worker w takes every workers-th k); the first
    /// failure by k is thrown after all have run.
    static func inParallel(_ n: Int, workers: Int, _ body: (Int) throws -> Void) throws {
        guard n > 0 else { return }
        let failures = DecodeFailures(count: n)
        let parts = max(1, min(workers, n))
        DispatchQueue.concurrentPerform(iterations: parts) { w in
            var k = w
            while k < n {
                do { try body(k) } catch { failures.set(k, error) }
                k += parts
            }
        }
        if let error = failures.first() { throw error }
    }
}

/// Errors of parallel decoding, one slot per image.
final class DecodeFailures: @unchecked Sendable {
    private var errors: [Error?]
    private let lock = NSLock()
    init(count: Int) { errors = [Error?](repeating: nil, count: count) }
    func set(_ i: Int, _ e: Error) {
        lock.lock()
        errors[i] = e
        lock.unlock()
    }
    func first() -> Error? { errors.lazy.compactMap { $0 }.first }
}

extension Dataset {
    /// Whether the pixels are in memory (`pixels`); if not, `files` decodes them batch by batch.
    public var isResident: Bool { files == nil }

    /// Writes the images at `indices` to `dest` as uint8 planar images (`indices.count * imageSize` bytes):
    /// copied from memory, or read and decoded on all cores for a set that stays on disk.
    public func images(_ indices: [Int], into dest: UnsafeMutablePointer<UInt8>) throws {
        let n = count, size = imageSize
        for i in indices where i < 0 || i >= n { throw LDError("\(source): image index \(i) out of range 0..<\(n)") }
        if let files {
            try files.decode(indices, into: dest, workers: Engine.threads)
            return
        }
        pixels.withUnsafeBufferPointer { pix in
            for (k, i) in indices.enumerated() { (dest + k * size).update(from: pix.baseAddress! + i * size, count: size) }
        }
    }

    /// Writes training views of the images at `indices` to `dest`: each one's `box` (in the image as stored)
    /// resampled to the set's size and mirrored when `flip`. Only for a set on disk whose files have other
    /// sizes (`files.transforms`); boxes come from `RandomResizedCrop` on `files.storedSize`.
    public func crops(_ indices: [Int], _ crops: [(box: CropBox, flip: Bool)], into dest: UnsafeMutablePointer<UInt8>) throws {
        guard let files, files.transforms else { throw LDError("\(source): crops of whole images need a folder kept on disk") }
        for i in indices where i < 0 || i >= count { throw LDError("\(source): image index \(i) out of range 0..<\(count)") }
        try files.decodeCrops(indices, crops: crops, into: dest, workers: Engine.threads)
    }

    /// This set with its pixels in memory (itself if they are): a set kept on disk is decoded whole, if it
    /// fits in the memory this process may use (else an error saying how much it needs).
    public func resident() throws -> Dataset {
        guard let files else { return self }
        try Memory.require(Double(count) * Double(imageSize), for: "\(source): \(count) images of \(channels)x\(height)x\(width)")
        var pixels = [UInt8](repeating: 0, count: count * imageSize)
        try pixels.withUnsafeMutableBufferPointer { try files.decode(Array(0..<count), into: $0.baseAddress!, workers: Engine.threads) }
        var out = self
        out.pixels = pixels
        out.files = nil
        return out
    }
}
