import LDKernels
import LDRecords
import LDData

/// `ld-prune --pack`: a data set (typically a folder of JPEGs of any size) written as an image stream,
/// decoded and brought to one size once (`--image-size`: the evaluation transform), so that repeated epochs
/// read pixels instead of decoding JPEGs. `--shard K/N` writes the K-th of N contiguous ranges of the images
/// with their global indices and the whole set's header, so `cat` of the shards in any order loads as the set.
public struct PackJob {
    public var data: String
    public var output = "-"
    public var imageSize: Int?
    /// `--eval-ratio`: the evaluation transform's ratio (recorded in the stream when it applied).
    public var evalRatio = EvalTransform.defaultRatio
    /// (K, N): the K-th of N shards, 0-based.
    public var shard: (index: Int, count: Int)?
    public var compression: StreamCompression = .none
    public var console = Console()

    public init(data: String) { self.data = data }

    public func run() throws {
        var files = RunFiles()
        files.data("--data", data)
        files.output("-o", output)
        try files.check()
        let set = try Dataset.load(data, imageSize: imageSize, evalRatio: evalRatio)
        let (k, n) = shard ?? (0, 1)
        let range = (k * set.count / n)..<((k + 1) * set.count / n)
        let writer = try StreamWriter(path: output, header: set.streamHeader(producer: "ld-prune"), compression: compression)
        do {
            try set.writeRecords(writer, range: range)
            try writer.finish()
        } catch {
            writer.abort()
            throw error
        }
        console.say("ld-prune: packed \(range.count) of \(set.count) images of \(data) as \(set.channels)x\(set.height)x\(set.width)\(shard.map { " (shard \($0.index)/\($0.count))" } ?? "")")
    }
}
