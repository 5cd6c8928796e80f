/// XXH64, a fast 64-bit non-cryptographic hash, re-implemented from its published specification
/// (xxhash `doc/xxhash_spec.md`). ld uses it for identities (teacher, image set, pixel summaries) shown as
/// 16 lowercase hex digits, and for the record chain hash in end records.
///
/// `ContentHash.xxh64([], seed: 0)` is 0xEF46DB3751D8E999 (the spec's empty-input value).
public struct ContentHash {
    @usableFromInline static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    @usableFromInline static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    @usableFromInline static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    @usableFromInline static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    @usableFromInline static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    private var v1: UInt64, v2: UInt64, v3: UInt64, v4: UInt64
    private let seed: UInt64
    private var total: UInt64 = 0
    /// Up to 31 bytes not yet folded into the four lanes.
    private var tail: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private var tailCount = 0

    /// A streaming hasher; feed bytes with `update`, read the value with `finalize` (which does not consume).
    public init(seed: UInt64 = 0) {
        self.seed = seed
        v1 = seed &+ ContentHash.p1 &+ ContentHash.p2
        v2 = seed &+ ContentHash.p2
        v3 = seed
        v4 = seed &- ContentHash.p1
    }

    @inline(__always) static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        var a = acc &+ input &* p2
        a = (a << 31) | (a >> 33)
        return a &* p1
    }

    @inline(__always) static func merge(_ acc: UInt64, _ val: UInt64) -> UInt64 {
        let a = acc ^ round(0, val)
        return a &* p1 &+ p4
    }

    /// Feeds `count` bytes.
    public mutating func update(_ bytes: UnsafeRawPointer, _ count: Int) {
        var p = bytes
        var n = count
        total &+= UInt64(count)
        if tailCount > 0 {
            let take = min(32 - tailCount, n)
            withUnsafeMutableBytes(of: &tail) { t in
                (t.baseAddress! + tailCount).copyMemory(from: p, byteCount: take)
            }
            tailCount += take; p += take; n -= take
            if tailCount < 32 { return }
            let (a, b, c, d) = tail
            v1 = ContentHash.round(v1, UInt64(littleEndian: a))
            v2 = ContentHash.round(v2, UInt64(littleEndian: b))
            v3 = ContentHash.round(v3, UInt64(littleEndian: c))
            v4 = ContentHash.round(v4, UInt64(littleEndian: d))
            tailCount = 0
        }
        var a1 = v1, a2 = v2, a3 = v3, a4 = v4
        while n >= 32 {
            a1 = ContentHash.round(a1, UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)))
            a2 = ContentHash.round(a2, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
            a3 = ContentHash.round(a3, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self)))
            a4 = ContentHash.round(a4, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 24, as: UInt64.self)))
            p += 32; n -= 32
        }
        v1 = a1; v2 = a2; v3 = a3; v4 = a4
        if n > 0 {
            withUnsafeMutableBytes(of: &tail) { t in t.baseAddress!.copyMemory(from: p, byteCount: n) }
            tailCount = n
        }
    }

    /// Feeds a buffer.
    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        if let b = buffer.baseAddress, buffer.count > 0 { update(b, buffer.count) }
    }

    /// Feeds a byte array.
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Feeds the little-endian bytes of an integer.
    public mutating func update<T: FixedWidthInteger>(integer: T) {
        withUnsafeBytes(of: integer.littleEndian) { update($0) }
    }

    /// The hash of everything fed so far.
    public func finalize() -> UInt64 {
        var h: UInt64
        if total >= 32 {
            h = ((v1 << 1) | (v1 >> 63)) &+ ((v2 << 7) | (v2 >> 57))
                &+ ((v3 << 12) | (v3 >> 52)) &+ ((v4 << 18) | (v4 >> 46))
            h = ContentHash.merge(h, v1)
            h = ContentHash.merge(h, v2)
            h = ContentHash.merge(h, v3)
            h = ContentHash.merge(h, v4)
        } else {
            h = seed &+ ContentHash.p5
        }
        h &+= total
        var t = tail
        let n = tailCount
        withUnsafeBytes(of: &t) { raw in
            var i = 0
            while i + 8 <= n {
                let k = ContentHash.round(0, UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
                h ^= k
                h = ((h << 27) | (h >> 37)) &* ContentHash.p1 &+ ContentHash.p4
                i += 8
            }
            if i + 4 <= n {
                h ^= UInt64(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt32.self))) &* ContentHash.p1
                h = ((h << 23) | (h >> 41)) &* ContentHash.p2 &+ ContentHash.p3
                i += 4
            }
            while i < n {
                h ^= UInt64(raw[i]) &* ContentHash.p5
                h = ((h << 11) | (h >> 53)) &* ContentHash.p1
                i += 1
            }
        }
        h ^= h >> 33
        h = h &* ContentHash.p2
        h ^= h >> 29
        h = h &* ContentHash.p3
        h ^= h >> 32
        return h
    }

    /// XXH64 of a buffer.
    public static func xxh64(_ buffer: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        var h = ContentHash(seed: seed)
        h.update(buffer)
        return h.finalize()
    }

    /// XXH64 of a byte array.
    public static func xxh64(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { xxh64($0, seed: seed) }
    }

    /// A hash as the 16 lowercase hex digits used in headers and dumps.
    public static func hex(_ value: UInt64) -> String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    /// Parses 16 hex digits back to a hash (nil when malformed).
    public static func parse(hex: String) -> UInt64? {
        guard hex.utf8.count == 16 else { return nil }
        return UInt64(hex, radix: 16)
    }
}
