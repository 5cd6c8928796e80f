import LDKernels
/// NDJSON metrics: one compact JSON object per line (sorted keys), to stdout (`-`) or a file written
/// atomically when the run ends. Lines to stdout are flushed as they are written, so `| jq` follows a run.
public final class MetricsLog {
    private let sink: OutputFile
    /// Whether the log is a side output of a run whose main output is a file (a model). Then a reader
    /// that goes away (`| head -c 10`) only ends the log: the run goes on and writes its main output, and
    /// one line on stderr says so. When the log is the main output, a closed stdout ends the run quietly
    /// (`BrokenPipe`, exit 0), as for any stream.
    public var secondary = false
    private var readerGone = false

    /// `path` is `-` for stdout (allowed on a terminal: this is text) or a file.
    public init(path: String, secondary: Bool = false) throws {
        sink = try OutputFile(path: path, binary: false)
        self.secondary = secondary
    }

    /// Writes one line.
    public func write(_ object: [String: JSONValue]) throws {
        if readerGone { return }
        do {
            try sink.write(JSONValue.object(object).serialized + "\n")
            try sink.flush()
        } catch is BrokenPipe where secondary {
            readerGone = true
            sink.abort()
            Log.line("\(sink.name) was closed by its reader: no more metrics; the run goes on to write its output")
        }
    }

    /// Finishes the log (renames a file into place).
    public func close() throws {
        if readerGone { return }
        do { try sink.commit() } catch is BrokenPipe where secondary { readerGone = true }
    }

    /// Drops a file log's temporary (on failure).
    public func abort() { sink.abort() }
}
