import LDKernels
import LDRecords

/// The F x F cells of an H x W image: rows and columns cut by RDED's rule (the first size mod F cells of an
/// axis are one pixel longer). Cell k is row k / F, column k % F (row-major).
public struct ImageGrid: Equatable, Sendable {
    public let height: Int
    public let width: Int
    /// Cells per axis (F).
    public let factor: Int

    /// Throws unless 1 <= factor <= min(height, width) (every cell at least one pixel).
    public init(height: Int, width: Int, factor: Int) throws {
        guard factor >= 1 else { throw LDError("grid factor must be >= 1, got \(factor)") }
        guard height >= factor && width >= factor else {
            throw LDError("grid factor \(factor) is too large for \(height)x\(width) images (a cell needs a pixel)")
        }
        self.height = height
        self.width = width
        self.factor = factor
    }

    /// Number of cells (F^2).
    public var cellCount: Int { factor * factor }

    /// Start and length of cell `i` along an axis of `size` pixels cut into `factor` cells.
    @inline(__always)
    public static func span(_ i: Int, size: Int, factor: Int) -> (start: Int, length: Int) {
        let base = size / factor, extra = size % factor
        return (i * base + min(i, extra), base + (i < extra ? 1 : 0))
    }

    /// The pixel box of cell `k` (row-major).
    public func cell(_ k: Int) -> CropBox {
        precondition(k >= 0 && k < cellCount, "ImageGrid.cell: cell \(k) of \(cellCount)")
        let r = ImageGrid.span(k / factor, size: height, factor: factor)
        let c = ImageGrid.span(k % factor, size: width, factor: factor)
        return CropBox(top: r.start, left: c.start, height: r.length, width: c.length)
    }

    /// The index of the cell that holds pixel (y, x).
    public func cellIndex(y: Int, x: Int) -> Int {
        func axis(_ p: Int, _ size: Int) -> Int {
            let base = size / factor, extra = size % factor
            let long = extra * (base + 1)   // pixels in the longer cells
            return p < long ? p / (base + 1) : extra + (p - long) / base
        }
        return axis(y, height) * factor + axis(x, width)
    }
}

/// The grid factor an image set records (`ld-prune --combine`); the loaders put it in `Dataset.grid`.
public enum ImageGridMeta {
    /// The meta key: `grid` in an image stream's header meta and in a PNG folder's manifest.json.
    public static let key = "grid"

    /// The recorded value as a grid factor: a positive integer (NaN stands for a value that is not a number).
    public static func factor(_ value: Double, source: String) throws -> Int {
        guard value >= 1, value == value.rounded(), value < 1e6 else {
            throw LDError("\(source): meta \(key) must be a positive integer, got \(value.isNaN ? "a non-number" : String(value))")
        }
        return Int(value)
    }
}
