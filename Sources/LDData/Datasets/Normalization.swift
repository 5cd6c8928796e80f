import LDKernels
/// Per-channel input normalisation `x = (pixel/255 - mean) / std`, fixed by the model (its file carries it),
/// not by whichever image set is being read: a student trained on a PNG folder of distilled images sees the
/// same input scale as the teacher and as the real validation set.
public struct Normalization: Equatable {
    public var mean: [Float]
    public var std: [Float]

    public init(mean: [Float], std: [Float]) {
        precondition(mean.count == std.count, "Normalization: \(mean.count) means, \(std.count) stds")
        self.mean = mean
        self.std = std
    }

    /// The data set's own published (or computed) normalisation.
    public init(of data: Dataset) { self.init(mean: data.mean, std: data.std) }

    /// Throws unless every mean is finite and every std finite and positive (a std of 0 divides by zero);
    /// `source` starts the message.
    public static func check(mean: [Float], std: [Float], source: String) throws {
        guard mean.count == std.count, !mean.isEmpty else {
            throw LDError("\(source): \(mean.count) means and \(std.count) stds")
        }
        if let m = mean.first(where: { !$0.isFinite }) { throw LDError("\(source): normalisation mean \(m) is not finite") }
        if let s = std.first(where: { !($0.isFinite && $0 > 0) }) {
            throw LDError("\(source): normalisation std \(s) must be finite and positive")
        }
    }

    /// Per-channel `scale` and `bias` with `p * scale + bias == (p/255 - mean) / std` (to float rounding): the
    /// one arithmetic of every uint8-to-float path (BatchLoader, Dataset.normalize, recover, RDED).
    public var coefficients: (scale: [Float], bias: [Float]) {
        (std.map { 1 / (255 * $0) }, zip(mean, std).map { -$0.0 / $0.1 })
    }

    /// Writes `count` uint8 planar images (channels = mean.count planes of `plane` pixels each) as normalised
    /// floats, `p * scale + bias` per channel (`coefficients`).
    public func apply(_ pixels: UnsafePointer<UInt8>, count: Int, plane: Int, into out: UnsafeMutablePointer<Float>) {
        let channels = mean.count
        let (scale, bias) = coefficients
        for b in 0..<count {
            for ch in 0..<channels {
                let a = scale[ch], c = bias[ch]
                let src = pixels + (b * channels + ch) * plane
                let dst = out + (b * channels + ch) * plane
                for i in 0..<plane { dst[i] = Float(src[i]) * a + c }
            }
        }
    }

    /// Value of a zero pixel per channel (what torchvision's zero padding becomes after normalising).
    public var zeroPixel: [Float] { zip(mean, std).map { -$0.0 / $0.1 } }

    /// Normalised value bounds per channel of valid pixels [0, 255] (recover clamps to these).
    public var bounds: (low: [Float], high: [Float]) {
        (zip(mean, std).map { -$0.0 / $0.1 }, zip(mean, std).map { (1 - $0.0) / $0.1 })
    }
}
