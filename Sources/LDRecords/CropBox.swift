import LDKernels

/// An integer box in pixels: rows top..<top+height, columns left..<left+width.
///
/// The one box type of ld: a RandomResizedCrop's source window, a RandomCrop window (which may reach outside
/// the image when padded: negative `top`/`left` read the fill value), a CutMix pasted region (which may be
/// empty) and a cell of an image grid. A label record stores boxes as four u16 (`encode16`/`init(u16:)`).
public struct CropBox: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var top: Int
    public var left: Int
    public var height: Int
    public var width: Int

    public init(top: Int, left: Int, height: Int, width: Int) {
        self.top = top
        self.left = left
        self.height = height
        self.width = width
    }

    /// The empty box at the origin (a label record's "no box").
    public static let zero = CropBox(top: 0, left: 0, height: 0, width: 0)

    /// The whole H x W image.
    public static func full(height: Int, width: Int) -> CropBox {
        CropBox(top: 0, left: 0, height: height, width: width)
    }

    /// The box of rows r0..<r1 and columns c0..<c1 (CutMix's clipped corners).
    public init(rows r0: Int, _ r1: Int, columns c0: Int, _ c1: Int) {
        self.init(top: r0, left: c0, height: r1 - r0, width: c1 - c0)
    }

    /// One past the last row and column.
    public var bottom: Int { top + height }
    public var right: Int { left + width }

    /// Pixels covered (0 for an empty box).
    public var area: Int { max(0, height) * max(0, width) }

    /// Whether the box lies inside an H x W image and is non-empty.
    public func isInside(height h: Int, width w: Int) -> Bool {
        top >= 0 && left >= 0 && height > 0 && width > 0 && top + height <= h && left + width <= w
    }

    public var description: String { "(top \(top), left \(left), height \(height), width \(width))" }

    // MARK: the record codec

    /// The box as a label record stores it: top, left, height, width as u16. Throws when a field does not fit.
    public func encode16() throws -> (UInt16, UInt16, UInt16, UInt16) {
        func field(_ v: Int, _ name: String) throws -> UInt16 {
            guard let u = UInt16(exactly: v) else { throw LDError("crop box \(description): \(name) \(v) does not fit a u16") }
            return u
        }
        return (try field(top, "top"), try field(left, "left"), try field(height, "height"), try field(width, "width"))
    }

    /// A box read from a label record's four u16.
    public init(u16 top: UInt16, _ left: UInt16, _ height: UInt16, _ width: UInt16) {
        self.init(top: Int(top), left: Int(left), height: Int(height), width: Int(width))
    }
}
