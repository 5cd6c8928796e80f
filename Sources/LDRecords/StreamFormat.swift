import LDKernels
/// # ld record streams, format version 1
///
/// One self-describing binary format for models, class statistics, scores, label batches and image sets.
/// All integers are little-endian.
///
/// ```
/// stream   = magic version reserved header-record record* end-record
/// magic    = 89 4C 44 53 0D 0A 1A 0A          ("\x89LDS\r\n\x1a\n", PNG-style: catches 7-bit and CRLF damage)
/// version  = u16 (1)                           a reader refuses a version it does not know
/// reserved = u16 (0)
/// record   = u32 kind, u64 length, u32 CRC32C(kind ‖ length), payload[length], u32 CRC32C(payload)
/// ```
///
/// - Lengths are bounded (`StreamFormat.maxPayload` = 1 GiB; 16 MiB for the header) and checked, after the
///   frame CRC, before anything is allocated. Payloads are read in chunks into a buffer that grows with the
///   bytes actually received (never more than max(64 KiB, 2 × received)), so a forged length cannot exhaust
///   memory.
/// - The first record is the header (`RecordKind.header`): the JSON of `StreamHeader`, keys sorted, no
///   whitespace, so equal headers are equal bytes.
/// - The last record is the end record (`RecordKind.end`), payload u64 count, u64 chain:
///   `count` is the number of records before it (the header included); `chain` starts at 0 and, for each
///   of those records in order, becomes XXH64(seed: chain) of the 16 bytes
///   `u32 kind ‖ u32 CRC32C(payload) ‖ u64 length`. A stream cut anywhere, also exactly on a record boundary,
///   is therefore an error ("ended after N records without an end record"), as is a reordered or dropped record.
/// - Streams concatenate: after an end record the reader expects either the end of input or another magic.
///   `cat shard-*.ldl | tool` reads the shards back to back; `StreamReader` exposes each stream's header and
///   index so consumers can check that the headers agree.
/// - Compression is an outer layer: a writer may emit the whole stream as one zstd frame (checksum flag on,
///   flushed every 1 MiB of input and at the end). At the start of each stream a reader that sees the zstd
///   frame magic 28 B5 2F FD decodes the run of consecutive zstd frames (skippable frames included)
///   transparently, so `zstd -d < f | tool`, `zstd < plain | tool` and `cat a.zst b.ldl c.zst | tool` work.
///   Record CRCs stay inside, so plain streams are protected too.
///
/// Identities: `ContentHash` (XXH64) values shown as 16 hex digits. A stream's natural identity is its end-record
/// chain (`StreamReader.lastEndHash`), which covers every record's kind, length and payload CRC but not the
/// compression, so the same model compressed or not has the same identity; the header's `teacher_hash` and
/// `image_set_hash` carry such values.
///
/// Files: `OutputFile` writes `.NAME.tmp-HOST-PID` next to NAME and renames it on success; on error, on deinit and on
/// SIGINT/SIGTERM the temporary file is removed. Binary streams are never written to (or read from) a terminal.
///
/// Payload layouts (kinds ≥ 16; unknown kinds are passed through and dumped as byte counts):
///
/// - `image` (16), `ImageRecord`: u64 index, u32 label, u8 pixels[C·H·W] (header `shape` = [C, H, W]).
/// - `labels` (17), `LabelBatchRecord`: u64 batch, u32 epoch, u32 B, u32 K, u8 mix (0 none, 1 cutmix,
///   2 mixup), u8 logit format (0 fp16, 1 fp32, 2 top-k), u16 k (top-k only, else 0), u32 indices[B],
///   u16 crops[B][4] (top, left, height, width), u8 flags[B] (bit 0: flip); if mix ≠ none: f32 lambda,
///   u16 box[4] (top, left, height, width), u32 permutation[B]; then logits: fp16[B·K] | f32[B·K] |
///   u16 class[B·k] then fp16 value[B·k] (per image, k entries, best first).
/// - `tensor` (18), `TensorRecord`: u16 name length, UTF-8 name, u32 rank (≤ 8), u64 dims[rank],
///   f32 data[∏dims]. A model is a stream of tensor records.
/// - `score` (19), `ScoreRecord`: u64 index, u32 n, f32 values[n]; column names in header
///   `meta.columns` (array of strings).
public enum StreamFormat {
    /// The 8 magic bytes that open every stream.
    public static let magic: [UInt8] = [0x89, 0x4C, 0x44, 0x53, 0x0D, 0x0A, 0x1A, 0x0A]
    /// The format version this build writes and reads.
    public static let version: UInt16 = 1
    /// The largest payload a record may have (1 GiB).
    public static let maxPayload: UInt64 = 1 << 30
    /// The largest header payload (16 MiB).
    public static let maxHeader: UInt64 = 16 << 20
    /// Bytes of a frame before the payload: kind, length, CRC.
    public static let frameHeaderSize = 16
    /// The zstd frame magic (little-endian 0xFD2FB528).
    public static let zstdMagic: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD]
}

/// The kind of one record (the u32 in its frame). Unknown values are kept, so newer streams can be dumped.
public struct RecordKind: RawRepresentable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The JSON header, first record of every stream.
    public static let header = RecordKind(rawValue: 1)
    /// The end record, last of every stream.
    public static let end = RecordKind(rawValue: 2)
    /// `ImageRecord`.
    public static let image = RecordKind(rawValue: 16)
    /// `LabelBatchRecord`.
    public static let labels = RecordKind(rawValue: 17)
    /// `TensorRecord`.
    public static let tensor = RecordKind(rawValue: 18)
    /// `ScoreRecord`.
    public static let score = RecordKind(rawValue: 19)

    /// A short name for messages and dumps ("image", "labels", ..., or "kind-N").
    public var description: String {
        switch rawValue {
        case 1: return "header"
        case 2: return "end"
        case 16: return "image"
        case 17: return "labels"
        case 18: return "tensor"
        case 19: return "score"
        default: return "kind-\(rawValue)"
        }
    }
}

/// What a whole stream holds (header field `kind`). Open-ended: an unknown kind decodes and dumps fine,
/// tools reject it through `StreamReader.expect(kind:)`.
public struct StreamKind: RawRepresentable, Hashable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// An image set (`ImageRecord`s).
    public static let images = StreamKind("images")
    /// Soft labels from ld-relabel (`LabelBatchRecord`s).
    public static let labels = StreamKind("labels")
    /// A model's parameters and buffers (`TensorRecord`s).
    public static let model = StreamKind("model")
    /// Per-example scores (`ScoreRecord`s).
    public static let scores = StreamKind("scores")
    /// Per-class statistics (`TensorRecord`s).
    public static let stats = StreamKind("stats")

    public var description: String { rawValue }

    public init(from decoder: Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}
