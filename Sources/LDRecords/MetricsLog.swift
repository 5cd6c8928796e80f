import LDKernels
/// NDJSON metrics: one compact JSON object per line (sorted keys), to stdout (`-`) or a file written
/// atomically when the run ends. Lines to stdout are flushed as they are written, so `| jq` follows a run.
public final class MetricsLog {
    private let sink: OutputFile

    /// `path` is `-` for stdout (allowed on a terminal: this is text) or a file.
    public init(path: String) throws {
        sink = try OutputFile(path: path, binary: false)
    }

    /// Writes one line.
    public func write(_ object: [String: JSONValue]) throws {
        try sink.write(JSONValue.object(object).serialized + "\n")
        try sink.flush()
    }

    /// Finishes the log (renames a file into place).
    public func close() throws { try sink.commit() }

    /// Drops a file log's temporary (on failure).
    public func abort() { sink.abort() }
}
