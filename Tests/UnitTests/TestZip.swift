/// A minimal zip writer for tests (stored entries, CRC-32), independent of the reader under test: builds
/// torch.save-shaped archives with hostile contents.
enum TestZip {
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
        }
        return ~c
    }

    static func make(_ entries: [(path: String, bytes: [UInt8])]) -> [UInt8] {
        var out = [UInt8](), directory = [UInt8]()
        func u16(_ v: Int, _ to: inout [UInt8]) { to += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func u32(_ v: Int, _ to: inout [UInt8]) { u16(v & 0xFFFF, &to); u16(v >> 16 & 0xFFFF, &to) }
        for (path, bytes) in entries {
            let name = Array(path.utf8), crc = Int(crc32(bytes)), offset = out.count
            u32(0x0403_4B50, &out); u16(20, &out); u16(0, &out); u16(0, &out); u16(0, &out); u16(0x21, &out)
            u32(crc, &out); u32(bytes.count, &out); u32(bytes.count, &out); u16(name.count, &out); u16(0, &out)
            out += name + bytes
            u32(0x0201_4B50, &directory); u16(20, &directory); u16(20, &directory); u16(0, &directory); u16(0, &directory)
            u16(0, &directory); u16(0x21, &directory); u32(crc, &directory); u32(bytes.count, &directory)
            u32(bytes.count, &directory); u16(name.count, &directory); u16(0, &directory); u16(0, &directory)
            u16(0, &directory); u16(0, &directory); u32(0, &directory); u32(offset, &directory)
            directory += name
        }
        let cdOffset = out.count
        out += directory
        u32(0x0605_4B50, &out); u16(0, &out); u16(0, &out); u16(entries.count, &out); u16(entries.count, &out)
        u32(directory.count, &out); u32(cdOffset, &out); u16(0, &out)
        return out
    }
}
