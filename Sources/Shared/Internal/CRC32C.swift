/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of record frames.
///
/// Slicing-by-8 over eight 256-entry tables held in one unsafe buffer (no Swift array in the hot loop).
/// `CRC32C.checksum("123456789")` is 0xE3069283 (the standard check value).
public enum CRC32C {
    /// Eight tables of 256 entries, table k at offset 256*k.
    @usableFromInline
    static let tables: UnsafeMutablePointer<UInt32> = {
        let t = UnsafeMutablePointer<UInt32>.allocate(capacity: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[i] = c
        }
        for i in 0..<256 {
            var c = t[i]
            for k in 1..<8 {
                c = (c >> 8) ^ t[Int(c & 0xFF)]
                t[256 * k + i] = c
            }
        }
        return t
    }()

    /// Continues a CRC over `count` bytes at `bytes`. Start with `crc = 0`; the result is the final CRC of
    /// everything fed so far (pre- and post-inversion are handled inside).
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawPointer, _ count: Int) -> UInt32 {
        let t = tables
        var c = ~crc
        var p = bytes
        var n = count
        // Align to 8 bytes so the wide loads are aligned.
        while n > 0 && (UInt(bitPattern: p) & 7) != 0 {
            c = (c >> 8) ^ t[Int((c ^ UInt32(p.load(as: UInt8.self))) & 0xFF)]
            p += 1; n -= 1
        }
        while n >= 8 {
            let w = UInt64(littleEndian: p.load(as: UInt64.self)) ^ UInt64(c)
            let lo = UInt32(truncatingIfNeeded: w), hi = UInt32(truncatingIfNeeded: w >> 32)
            c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
            p += 8; n -= 8
        }
        while n > 0 {
            c = (c >> 8) ^ t[Int((c ^ UInt32(p.load(as: UInt8.self))) & 0xFF)]
            p += 1; n -= 1
        }
        return ~c
    }

    /// CRC-32C of a buffer.
    public static func checksum(_ buffer: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        return update(0, base, buffer.count)
    }

    /// CRC-32C of a byte array.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// CRC-32C of a string's UTF-8 bytes.
    public static func checksum(_ string: String) -> UInt32 {
        checksum(Array(string.utf8))
    }
}
