import LDKernels
import LDRecords
/// An image classification data set in memory, whatever its source (IDX, CIFAR binaries, PNG folder,
/// image record stream): uint8 pixels in NCHW order, integer labels, and what a model needs to know to
/// normalise them.
public struct Dataset {
    /// Pixels, `count * channels * height * width` bytes, image-major then channel, row, column.
    public var pixels: [UInt8]
    /// Class id of each image, in `0..<classes`.
    public var labels: [Int32]
    public var classes: Int
    public var channels: Int
    public var height: Int
    public var width: Int
    /// Per-channel mean and standard deviation of pixel/255, used as `(x/255 - mean) / std`.
    public var mean: [Float]
    public var std: [Float]
    /// One name per class (folder names, or the data set's published names).
    public var classNames: [String]
    /// Where the images came from (`fmnist:train`, a path), for messages and stream headers.
    public var source: String
    /// Cells per axis when each image is a canvas of F x F combined images (`ld-prune --combine`): the `grid`
    /// of the image stream's header meta or of the folder's manifest.json; nil for plain images.
    public var grid: Int? = nil
    /// For an image folder too large to hold decoded (`Memory.dataBudget`): its files, decoded batch by batch
    /// (`images(_:into:)`); `pixels` is then empty. nil for a set in memory.
    public var files: ImageFiles? = nil
    /// The ratio of the evaluation transform (resize to size / ratio, centre crop) that brought images of
    /// other sizes to this set's size, recorded so that a model evaluated with another ratio refuses the set;
    /// nil when every image had the set's size.
    public var evalRatio: Double? = nil

    public init(pixels: [UInt8], labels: [Int32], classes: Int, channels: Int, height: Int, width: Int,
                mean: [Float], std: [Float], classNames: [String], source: String) {
        self.pixels = pixels
        self.labels = labels
        self.classes = classes
        self.channels = channels
        self.height = height
        self.width = width
        self.mean = mean
        self.std = std
        self.classNames = classNames
        self.source = source
    }

    /// Number of images.
    public var count: Int { labels.count }
    /// Bytes per image.
    public var imageSize: Int { channels * height * width }
}
