import LDKernels
import LDRecords
import LDData
import LDNetworks
// RethinkDC's Combine step (rethinkdc.md 7.2, a reconstruction: the paper's code is unreleased): the F^2 K
// selected images of a class are each downsampled whole (no crop) to one cell of an F x F grid and tiled
// into K canvases of the original size, so the set still holds K images per class.
//
// Choices, recorded in the output's meta:
// - cells: an axis of `size` pixels is cut into F cells; the first (size mod F) cells get one extra pixel
//   (RDED's rule), so 28 with F = 2 gives 14 + 14, 27 gives 14 + 13, 28 with F = 3 gives 10 + 9 + 9;
// - downsampling: exact area averaging (each output pixel is the overlap-weighted mean of the source pixels
//   its footprint covers, as PIL's BOX filter / OpenCV's INTER_AREA), rounded half up to uint8, in integer
//   arithmetic so it is bit-exact everywhere (RDED uses nearest neighbour; the reviewers' wording favours an
//   antialiased downsample);
// - ordering: the n-th image of a class (n = 0 the first by the selection rule, e.g. the easiest) goes to
//   canvas n mod K, cell floor(n / K), cells numbered row-major; so the K best images lead the K canvases
//   (RDED's spread).

import Foundation

/// Exact area (box-filter) resampling of uint8 planes from one size to a smaller or equal one.
///
/// Along an axis of input length L and output length S, output pixel o covers the input interval
/// [o L / S, (o + 1) L / S); input pixel i contributes its overlap with that interval. In units of 1/S the
/// overlaps are integers summing to L, so a 2-D output is sum(wy wx p) / (Ly Lx), computed in integers and
/// rounded half up. With L = F S this is the plain mean of F x F blocks.
public struct AreaResampler {
    public let inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int
    /// Per axis: for each output index, the first input index and the integer weights of the inputs from there.
    private let rows: [(first: Int, weights: [Int])]
    private let cols: [(first: Int, weights: [Int])]

    public init(from input: (height: Int, width: Int), to output: (height: Int, width: Int)) {
        precondition(output.height >= 1 && output.width >= 1 && output.height <= input.height && output.width <= input.width,
                     "AreaResampler: \(input) to \(output) is not a downsample")
        (inHeight, inWidth) = input
        (outHeight, outWidth) = output
        rows = AreaResampler.axis(input.height, output.height)
        cols = AreaResampler.axis(input.width, output.width)
    }

    private static func axis(_ l: Int, _ s: Int) -> [(first: Int, weights: [Int])] {
        (0..<s).map { o in
            let lo = o * l, hi = (o + 1) * l              // the footprint, in units of 1/s
            let first = lo / s, last = (hi - 1) / s        // input pixels [first, last]
            let w = (first...last).map { i in min(hi, (i + 1) * s) - max(lo, i * s) }
            return (first, w)
        }
    }

    /// Resamples `channels` planes of `src` (each inHeight x inWidth, contiguous) into `dst`, whose rows are
    /// `rowStride` apart and planes `planeStride` apart (so a cell of a larger canvas can be written in place).
    public func resize(_ src: UnsafePointer<UInt8>, channels: Int, into dst: UnsafeMutablePointer<UInt8>,
                       rowStride: Int, planeStride: Int) {
        // The weights of an axis sum to its input length (in units of 1/output length).
        let den = inHeight * inWidth
        for ch in 0..<channels {
            let s = src + ch * inHeight * inWidth
            let d = dst + ch * planeStride
            for oy in 0..<outHeight {
                let (fy, wy) = rows[oy]
                for ox in 0..<outWidth {
                    let (fx, wx) = cols[ox]
                    var acc = 0
                    for (a, wr) in wy.enumerated() {
                        let line = s + (fy + a) * inWidth + fx
                        var racc = 0
                        for (b, wc) in wx.enumerated() { racc += wc * Int(line[b]) }
                        acc += wr * racc
                    }
                    d[oy * rowStride + ox] = UInt8((2 * acc + den) / (2 * den))
                }
            }
        }
    }

    /// The resampled planes of `pixels` (channels x inHeight x inWidth), channels x outHeight x outWidth.
    public func resize(_ pixels: [UInt8], channels: Int) -> [UInt8] {
        precondition(pixels.count == channels * inHeight * inWidth, "AreaResampler: \(pixels.count) bytes for \(channels)x\(inHeight)x\(inWidth)")
        var out = [UInt8](repeating: 0, count: channels * outHeight * outWidth)
        pixels.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { d in
                resize(s.baseAddress!, channels: channels, into: d.baseAddress!, rowStride: outWidth,
                       planeStride: outHeight * outWidth)
            }
        }
        return out
    }
}

/// Canvases built by `Combine.combine`.
public struct CombinedImages {
    /// K canvases per class, class-major (class c's canvases are c K ..< (c + 1) K), labelled with the class.
    public var images: Dataset
    /// For each canvas, the source image index of each cell (row-major, F^2 entries).
    public var cellSources: [[Int]]
    public var grid: ImageGrid
}

/// RethinkDC's Combine: downsample whole images into the cells of same-class canvases, and take them apart
/// again (see the file's comment for the choices).
public enum Combine {
    /// Where the n-th image of a class goes: canvas n mod K, cell floor(n / K).
    @inline(__always)
    public static func placement(rank n: Int, ipc k: Int) -> (canvas: Int, cell: Int) { (n % k, n / k) }

    /// Builds K canvases per class from `groups[c]`, class c's F^2 K source images of `data` in rank order
    /// (first = the best by the selection rule). Every group must hold exactly F^2 K images of its class.
    public static func combine(_ data: Dataset, groups: [[Int]], ipc k: Int, factor: Int) throws -> CombinedImages {
        guard k >= 1 else { throw LDError("combine: images per class must be >= 1, got \(k)") }
        let grid = try ImageGrid(height: data.height, width: data.width, factor: factor)
        guard groups.count == data.classes else {
            throw LDError("combine: \(groups.count) class groups for \(data.classes) classes")
        }
        let per = grid.cellCount * k
        let c = data.channels, h = data.height, w = data.width, size = data.imageSize
        let tiler = Tiler(grid: grid, channels: c)
        var pixels = [UInt8](repeating: 0, count: data.classes * k * size)
        var labels = [Int32](repeating: 0, count: data.classes * k)
        var sources = [[Int]](repeating: [Int](repeating: -1, count: grid.cellCount), count: data.classes * k)
        try data.pixels.withUnsafeBufferPointer { pix in
            try pixels.withUnsafeMutableBufferPointer { out in
                for (cls, group) in groups.enumerated() {
                    guard group.count == per else {
                        throw LDError("\(data.source): class \(cls) gives \(group.count) images to combine, expected \(per) (F^2 x K = \(grid.cellCount) x \(k))")
                    }
                    for (n, i) in group.enumerated() {
                        guard i >= 0 && i < data.count else {
                            throw LDError("\(data.source): image index \(i) out of range 0..<\(data.count)")
                        }
                        guard Int(data.labels[i]) == cls else {
                            throw LDError("\(data.source): image \(i) is of class \(data.labels[i]), not \(cls)")
                        }
                        let (canvas, cell) = placement(rank: n, ipc: k)
                        let slot = cls * k + canvas
                        labels[slot] = Int32(cls)
                        sources[slot][cell] = i
                        tiler.place(pix.baseAddress! + i * size, cell: cell, into: out.baseAddress! + slot * size)
                    }
                }
            }
        }
        let set = Dataset(pixels: pixels, labels: labels, classes: data.classes, channels: c, height: h, width: w,
                          mean: data.mean, std: data.std, classNames: data.classNames, source: data.source)
        return CombinedImages(images: set, cellSources: sources, grid: grid)
    }

    /// Downsamples whole images into the cells of a canvas of the same size (one `AreaResampler` per
    /// distinct cell size, at most 2 x 2 of them).
    public struct Tiler {
        public let grid: ImageGrid
        public let channels: Int
        private let resamplers: [[Int]: AreaResampler]

        public init(grid: ImageGrid, channels: Int) {
            self.grid = grid
            self.channels = channels
            var r: [[Int]: AreaResampler] = [:]
            for cell in 0..<grid.cellCount {
                let b = grid.cell(cell)
                if r[[b.height, b.width]] == nil {
                    r[[b.height, b.width]] = AreaResampler(from: (grid.height, grid.width), to: (b.height, b.width))
                }
            }
            resamplers = r
        }

        /// Writes the whole image `src` (channels x H x W), area-downsampled, into cell `cell` of `canvas`.
        public func place(_ src: UnsafePointer<UInt8>, cell: Int, into canvas: UnsafeMutablePointer<UInt8>) {
            let b = grid.cell(cell), h = grid.height, w = grid.width
            resamplers[[b.height, b.width]]!.resize(src, channels: channels, into: canvas + b.top * w + b.left,
                                                    rowStride: w, planeStride: h * w)
        }
    }

    /// Un-combine: the cells of image `i` of `data` (row-major), each channels x cell height x cell width.
    public static func cells(of data: Dataset, image i: Int, grid: ImageGrid) -> [[UInt8]] {
        precondition(grid.height == data.height && grid.width == data.width, "Combine.cells: grid \(grid.height)x\(grid.width) for \(data.height)x\(data.width) images")
        let c = data.channels, h = data.height, w = data.width, base = i * data.imageSize
        return (0..<grid.cellCount).map { k in
            let b = grid.cell(k)
            var out: [UInt8] = []
            out.reserveCapacity(c * b.height * b.width)
            for ch in 0..<c {
                for y in b.top..<b.top + b.height {
                    let row = base + ch * h * w + y * w
                    out += data.pixels[row + b.left..<row + b.left + b.width]
                }
            }
            return out
        }
    }

    /// The meta an image set of canvases records (stream header meta and manifest.json): `grid` (F),
    /// `grid_order` (the placement rule, in words), `grid_interpolation`, and `cell_source_indices` (per
    /// canvas, the source index of each cell, row-major).
    public static func meta(_ combined: CombinedImages) -> [String: JSONValue] {
        [
            ImageGridMeta.key: .int(Int64(combined.grid.factor)),
            "grid_order": .string("rank n of a class -> canvas n mod K, cell n div K; cells row-major"),
            "grid_interpolation": .string("area"),
            "cell_source_indices": .array(combined.cellSources.map { .array($0.map { .int(Int64($0)) }) }),
        ]
    }
}
