import LDKernels

/// Rewrites a stream with its header and records changed, framing the result correctly (CRCs, record
/// count and chained end hash): a valid stream whose *content* is whatever the caller made it. The tests
/// and the structure-aware fuzzer (`fuzz/structured`) build hostile inputs with it; a consumer must refuse
/// them by what they say, since the framing holds.
public enum StreamForge {
    /// Reads every stream of `input` (a path) and writes them, concatenated, to `sink`: each header passed
    /// through `header`, each record's payload through `record` (nil drops the record).
    public static func rewrite(_ input: String, to sink: ByteSink,
                               header edit: (inout StreamHeader) throws -> Void = { _ in },
                               record: (Record) throws -> [UInt8]? = { $0.payload }) throws {
        let reader = try StreamReader(path: input)
        // Each stream is framed in memory, then appended (a writer's finish commits its sink).
        var writer: StreamWriter?, memory = MemorySink()
        func flushStream() throws {
            guard let w = writer else { return }
            try w.finish()
            try sink.write(memory.bytes)
            memory = MemorySink()
            writer = nil
        }
        while let event = try reader.nextEvent() {
            switch event {
            case .header(let h):
                try flushStream()
                var forged = h
                try edit(&forged)
                writer = try StreamWriter(sink: memory, header: forged)
            case .record(let r):
                if let bytes = try record(r) { try writer?.write(kind: r.kind, payload: bytes) }
            case .end:
                continue
            }
        }
        try flushStream()
        try sink.commit()
    }

    /// The same into a file at `output` (written atomically).
    public static func rewrite(_ input: String, to output: String,
                               header edit: (inout StreamHeader) throws -> Void = { _ in },
                               record: (Record) throws -> [UInt8]? = { $0.payload }) throws {
        let sink = try OutputFile(path: output)
        do { try rewrite(input, to: sink, header: edit, record: record) } catch { sink.abort(); throw error }
    }
}
