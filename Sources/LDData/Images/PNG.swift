import LDKernels
import LDRecords
import CPNG
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// 8-bit gray (1 channel) and RGB (3 channels) PNG images through libpng's simplified API only
/// (`png_image`), which reports errors in `image.message` instead of through setjmp/longjmp.
///
/// Pixels are planar, channel-major (CHW), like `Dataset` and `Tensor`: all of channel 0 row by row, then
/// channel 1, then channel 2. Reading converts what can be converted exactly: a palette image becomes gray
/// or RGB, an alpha channel is dropped when every pixel is opaque. A translucent image or a 16-bit image is
/// refused with a message naming the file.
public enum PNG {
    /// Decodes PNG bytes. `name` (a path) prefixes any error message.
    public static func decode(_ bytes: [UInt8], name: String = "PNG data") throws
        -> (pixels: [UInt8], channels: Int, height: Int, width: Int)
    {
        try bytes.withUnsafeBytes { raw in
            let d = try Decoder(raw, name: name)
            let n = d.channels * d.height * d.width
            let pixels = try [UInt8](unsafeUninitializedCapacity: n) { buf, count in
                try d.finish(into: buf.baseAddress!)
                count = n
            }
            return (pixels, d.channels, d.height, d.width)
        }
    }

    /// Reads and decodes a PNG file.
    public static func read(path: String) throws -> (pixels: [UInt8], channels: Int, height: Int, width: Int) {
        try decode(try Files.readFile(path), name: path)
    }

    /// Encodes `channels * height * width` planar (CHW) bytes as a PNG (1 channel: gray, 3: RGB). The bytes
    /// depend only on the pixels and the libpng/zlib versions (no time stamps or text chunks).
    public static func encode(_ pixels: [UInt8], channels: Int, height: Int, width: Int) throws -> [UInt8] {
        guard pixels.count == channels * height * width else {
            throw LDError("PNG encode: \(pixels.count) bytes for \(channels)x\(height)x\(width)")
        }
        return try pixels.withUnsafeBufferPointer {
            try encode($0.baseAddress!, channels: channels, height: height, width: width)
        }
    }

    /// Encodes planar (CHW) bytes from a pointer (for images already in a larger buffer).
    public static func encode(_ pixels: UnsafePointer<UInt8>, channels: Int, height: Int, width: Int) throws -> [UInt8] {
        guard channels == 1 || channels == 3 else {
            throw LDError("PNG encode: \(channels) channels (expected 1 for gray or 3 for RGB)")
        }
        guard height > 0, width > 0, height <= 1 << 20, width <= 1 << 20 else {
            throw LDError("PNG encode: bad size \(height)x\(width)")
        }
        let plane = height * width
        // Interleave to the HWC rows libpng expects.
        let hwc = UnsafeMutablePointer<UInt8>.allocate(capacity: plane * channels)
        defer { hwc.deallocate() }
        if channels == 1 {
            hwc.update(from: pixels, count: plane)
        } else {
            let r = pixels, g = pixels + plane, b = pixels + 2 * plane
            for i in 0..<plane {
                hwc[3 * i] = r[i]
                hwc[3 * i + 1] = g[i]
                hwc[3 * i + 2] = b[i]
            }
        }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = channels == 1 ? UInt32(PNG_FORMAT_GRAY) : UInt32(PNG_FORMAT_RGB)
        let stride = Int32(width * channels)
        // First call: the size; second call: the bytes.
        var size: png_alloc_size_t = 0
        guard png_image_write_to_memory(&image, nil, &size, 0, hwc, stride, nil) != 0, size > 0 else {
            let message = PNG.message(&image)
            png_image_free(&image)
            throw LDError("PNG encode: \(message)")
        }
        var out = [UInt8](repeating: 0, count: Int(size))
        var written = size
        let ok = out.withUnsafeMutableBytes {
            png_image_write_to_memory(&image, $0.baseAddress, &written, 0, hwc, stride, nil)
        }
        guard ok != 0 else {
            let message = PNG.message(&image)
            png_image_free(&image)
            throw LDError("PNG encode: \(message)")
        }
        if Int(written) < out.count { out.removeLast(out.count - Int(written)) }
        return out
    }

    /// Encodes and writes a PNG file: the bytes go to a temporary name in the same folder, which is renamed
    /// to `path` only when everything was written, so a failure never leaves a partial file under `path`.
    public static func write(path: String, pixels: [UInt8], channels: Int, height: Int, width: Int) throws {
        let bytes = try encode(pixels, channels: channels, height: height, width: width)
        try writeFileAtomically(path, bytes)
    }

    // MARK: - Decoding

    /// One image between `png_image_begin_read_*` and `png_image_finish_read`: the header is known, the
    /// caller checks it and supplies the destination. Frees libpng's state whatever happens.
    final class Decoder {
        var image = png_image()
        let name: String
        /// The file's format as libpng reports it and the format we ask for.
        let fileFormat: UInt32
        let channels: Int
        let height: Int
        let width: Int
        let hasAlpha: Bool

        /// `bytes` must stay valid until `finish`.
        init(_ bytes: UnsafeRawBufferPointer, name: String) throws {
            self.name = name
            image.version = UInt32(PNG_IMAGE_VERSION)
            guard bytes.count >= 8 else { throw LDError("\(name): not a PNG file (\(bytes.count) bytes)") }
            guard png_image_begin_read_from_memory(&image, bytes.baseAddress, bytes.count) != 0 else {
                let message = PNG.message(&image)
                png_image_free(&image)
                throw LDError("\(name): PNG: \(message)")
            }
            fileFormat = image.format
            height = Int(image.height)
            width = Int(image.width)
            channels = fileFormat & UInt32(PNG_FORMAT_FLAG_COLOR) != 0 ? 3 : 1
            hasAlpha = fileFormat & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0
            if fileFormat & UInt32(PNG_FORMAT_FLAG_LINEAR) != 0 {
                png_image_free(&image)
                throw LDError("\(name): 16-bit PNG is not supported (8-bit gray or RGB expected)")
            }
            guard height > 0, width > 0, height * width <= 1 << 28 else {
                png_image_free(&image)
                throw LDError("\(name): PNG size \(height)x\(width) out of range")
            }
        }

        deinit { png_image_free(&image) }

        /// Decodes the pixels as planar (CHW) bytes into `dest` (`channels * height * width` bytes).
        func finish(into dest: UnsafeMutablePointer<UInt8>) throws {
            let plane = height * width
            let stored = channels + (hasAlpha ? 1 : 0)  // interleaved channels as read
            var format = channels == 3 ? UInt32(PNG_FORMAT_RGB) : UInt32(PNG_FORMAT_GRAY)
            if hasAlpha { format |= UInt32(PNG_FORMAT_FLAG_ALPHA) }
            image.format = format
            if stored == 1 {
                guard png_image_finish_read(&image, nil, dest, Int32(width), nil) != 0 else {
                    throw LDError("\(name): PNG: \(PNG.message(&image))")
                }
                return
            }
            let hwc = UnsafeMutablePointer<UInt8>.allocate(capacity: plane * stored)
            defer { hwc.deallocate() }
            guard png_image_finish_read(&image, nil, hwc, Int32(width * stored), nil) != 0 else {
                throw LDError("\(name): PNG: \(PNG.message(&image))")
            }
            if hasAlpha {
                let a = hwc + channels
                for i in 0..<plane where a[i * stored] != 255 {
                    throw LDError("\(name): PNG has transparent pixels (row \(i / width), column \(i % width)); "
                        + "only opaque gray or RGB images are supported")
                }
            }
            for c in 0..<channels {
                let src = hwc + c
                let dst = dest + c * plane
                for i in 0..<plane { dst[i] = src[i * stored] }
            }
        }
    }

    /// The text libpng left in `image.message`.
    static func message(_ image: inout png_image) -> String {
        let text = withUnsafeBytes(of: &image.message) { raw -> String in
            let bytes = raw.bindMemory(to: UInt8.self)
            let end = bytes.firstIndex(of: 0) ?? bytes.count
            return String(decoding: bytes[0..<end], as: UTF8.self)
        }
        return text.isEmpty ? "unknown libpng error" : text
    }


    /// Writes `bytes` to a unique temporary file next to `path`, then renames it over `path`.
    static func writeFileAtomically(_ path: String, _ bytes: [UInt8]) throws {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[..<$0]) } ?? "."
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        var attempt = 0
        var fd: Int32 = -1
        var temp = ""
        while fd < 0 {
            temp = (dir.isEmpty ? "" : dir + "/") + ".\(base).tmp.\(getpid()).\(attempt)"
            fd = open(temp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            if fd < 0 {
                if errno == EEXIST && attempt < 100 { attempt += 1; continue }
                throw LDError("\(path): cannot create temporary file \(temp): \(String(cString: strerror(errno)))")
            }
        }
        var failure: String? = nil
        bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = pngSysWrite(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = String(cString: strerror(errno))
                    return
                }
                done += n
            }
        }
        if close(fd) != 0, failure == nil { failure = String(cString: strerror(errno)) }
        if failure == nil, rename(temp, path) != 0 { failure = String(cString: strerror(errno)) }
        if let failure {
            unlink(temp)
            throw LDError("\(path): write failed: \(failure)")
        }
    }
}

/// POSIX write(2), named apart from `PNG.write`.
private func pngSysWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, p, n)
    #else
    return Darwin.write(fd, p, n)
    #endif
}
