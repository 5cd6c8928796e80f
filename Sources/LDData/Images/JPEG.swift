import LDKernels
import CTurboJPEG

/// 8-bit baseline and progressive JPEG images through libjpeg-turbo's TurboJPEG API, which returns errors
/// (its setjmp/longjmp stays inside the library). Decoding is PIL's: the accurate integer DCT and smooth
/// chroma upsampling (TurboJPEG's defaults, neither FASTDCT nor FASTUPSAMPLE).
///
/// Pixels are planar (CHW) like `PNG` and `Dataset`. Gray JPEGs decode to 1 channel, YCbCr and RGB ones to 3;
/// a gray image asked for as RGB has its value in all three channels (PIL's `convert("RGB")`). CMYK and
/// YCCK images, 12-bit images and anything libjpeg-turbo warns about (a truncated or corrupt stream) are
/// refused with a message naming the file: a decode either gives every pixel of the file or fails.
public enum JPEG {
    /// Largest width x height accepted: checked on the header, before any pixel memory is allocated
    /// (a forged header may declare 65535 x 65535).
    public static let maxPixels = 1 << 28

    /// Whether `bytes` start like a JPEG file (SOI and the first marker).
    public static func sniff(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF
    }

    /// The reduced decode size PIL's `draft` picks for a target of `target` x `target` pixels: the largest
    /// of the DCT scalings 1/1, 1/2, 1/4, 1/8 that keeps both sides at least `target`, sides rounded up
    /// as libjpeg does. `target` 0: full size.
    public static func draftScale(width: Int, height: Int, target: Int) -> Int {
        guard target > 0 else { return 1 }
        let fit = min(width / target, height / target)
        for denominator in [8, 4, 2] where fit >= denominator { return denominator }
        return 1
    }

    /// A JPEG whose header has been read; `finish` decodes its pixels. `bytes` must stay valid until then.
    public final class Decoder {
        public let name: String
        /// The file's size and channels (1: gray, 3: colour).
        public let width: Int, height: Int, channels: Int
        private let handle: tjhandle
        private let bytes: UnsafeRawBufferPointer

        public init(_ bytes: UnsafeRawBufferPointer, name: String) throws {
            self.name = name
            self.bytes = bytes
            guard bytes.count > 0 else { throw LDError("\(name): empty file (0 bytes)") }
            guard JPEG.sniff(bytes) else { throw LDError("\(name): not a JPEG file") }
            guard let h = tjInitDecompress() else { throw LDError("\(name): JPEG: cannot start a decoder") }
            handle = h
            var w: Int32 = 0, ht: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
            let base = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
            guard tjDecompressHeader3(h, base, UInt(bytes.count), &w, &ht, &subsampling, &colorspace) == 0 else {
                let message = JPEG.message(h)
                tjDestroy(h)
                if message.contains("precision") {
                    throw LDError("\(name): a JPEG of more than 8 bits per sample (12-bit), which ld does not decode (\(message))")
                }
                throw LDError("\(name): corrupt or truncated JPEG header: \(message)")
            }
            width = Int(w); height = Int(ht)
            switch Int(colorspace) {
            case Int(TJCS_GRAY.rawValue): channels = 1
            case Int(TJCS_YCbCr.rawValue), Int(TJCS_RGB.rawValue): channels = 3
            default:
                tjDestroy(h)   // `channels` is not set: no deinit runs
                throw LDError("\(name): a CMYK/YCCK JPEG, which ld does not decode (convert it to RGB, e.g. `convert in.jpg -colorspace sRGB out.jpg`)")
            }
            // Every stored property is set from here on, so a throw runs deinit, which destroys the handle.
            guard width > 0, height > 0, width * height <= JPEG.maxPixels else {
                throw LDError("\(name): JPEG declares \(width)x\(height) pixels, more than the \(JPEG.maxPixels) ld decodes")
            }
        }

        deinit { tjDestroy(handle) }

        /// The size a decode at 1/`denominator` scale gives (sides rounded up).
        public func scaledSize(_ denominator: Int) -> (width: Int, height: Int) {
            ((width + denominator - 1) / denominator, (height + denominator - 1) / denominator)
        }

        /// Decodes at 1/`denominator` scale (1, 2, 4 or 8) into `dest` as planar bytes of `channels` (1 or 3;
        /// a gray file asked for 3 channels is replicated, a colour file asked for 1 is refused).
        /// `dest` holds `channels * scaledSize(denominator)` bytes.
        public func finish(into dest: UnsafeMutablePointer<UInt8>, channels wanted: Int? = nil, denominator: Int = 1) throws {
            let c = wanted ?? channels
            precondition([1, 2, 4, 8].contains(denominator) && (c == 1 || c == 3), "JPEG.finish: scale 1/\(denominator), \(c) channels")
            if c == 1 && channels == 3 {
                throw LDError("\(name): a colour JPEG in a gray image set (ld converts gray to RGB, not RGB to gray)")
            }
            let (w, h) = scaledSize(denominator)
            let base = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let flags = TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS
            if c == 1 {
                guard tjDecompress2(handle, base, UInt(bytes.count), dest, Int32(w), 0, Int32(h), Int32(TJPF_GRAY.rawValue), flags) == 0 else {
                    throw LDError("\(name): corrupt or truncated JPEG: \(JPEG.message(handle))")
                }
                return
            }
            let plane = w * h
            let hwc = UnsafeMutablePointer<UInt8>.allocate(capacity: 3 * plane)
            defer { hwc.deallocate() }
            guard tjDecompress2(handle, base, UInt(bytes.count), hwc, Int32(w), 0, Int32(h), Int32(TJPF_RGB.rawValue), flags) == 0 else {
                throw LDError("\(name): corrupt or truncated JPEG: \(JPEG.message(handle))")
            }
            let r = dest, g = dest + plane, b = dest + 2 * plane
            for i in 0..<plane {
                r[i] = hwc[3 * i]; g[i] = hwc[3 * i + 1]; b[i] = hwc[3 * i + 2]
            }
        }

        /// Decodes at 1/`denominator` scale into `dest` as interleaved rows (h x w x `channels`, RGB order;
        /// a gray file asked for 3 channels replicated), which resampling reads directly
        /// (`Resample.Layout.interleaved`), sparing the planar copy of a large image.
        public func finishInterleaved(into dest: UnsafeMutablePointer<UInt8>, channels c: Int, denominator: Int = 1) throws {
            precondition([1, 2, 4, 8].contains(denominator) && (c == 1 || c == 3), "JPEG.finishInterleaved: scale 1/\(denominator), \(c) channels")
            if c == 1 && channels == 3 {
                throw LDError("\(name): a colour JPEG in a gray image set (ld converts gray to RGB, not RGB to gray)")
            }
            let (w, h) = scaledSize(denominator)
            let base = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let format = c == 1 ? TJPF_GRAY : TJPF_RGB
            guard tjDecompress2(handle, base, UInt(bytes.count), dest, Int32(w), 0, Int32(h), Int32(format.rawValue),
                                TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS) == 0 else {
                throw LDError("\(name): corrupt or truncated JPEG: \(JPEG.message(handle))")
            }
        }
    }

    /// Decodes JPEG bytes at full size; `name` (a path) prefixes any error message.
    public static func decode(_ bytes: [UInt8], name: String = "JPEG data", channels: Int? = nil) throws
        -> (pixels: [UInt8], channels: Int, height: Int, width: Int)
    {
        try bytes.withUnsafeBytes { raw in
            let d = try Decoder(raw, name: name)
            let c = channels ?? d.channels, n = c * d.height * d.width
            let pixels = try [UInt8](unsafeUninitializedCapacity: n) { buf, count in
                try d.finish(into: buf.baseAddress!, channels: c)
                count = n
            }
            return (pixels, c, d.height, d.width)
        }
    }

    /// Encodes planar (CHW) bytes of 1 or 3 channels as a baseline JPEG (4:2:0 for colour, as PIL's
    /// default) at `quality`, or progressive. For tests and fixtures; ld's own outputs are PNG.
    public static func encode(_ pixels: [UInt8], channels: Int, height: Int, width: Int, quality: Int = 90,
                              progressive: Bool = false) throws -> [UInt8] {
        precondition(channels == 1 || channels == 3, "JPEG.encode: \(channels) channels")
        precondition(pixels.count == channels * height * width, "JPEG.encode: \(pixels.count) bytes")
        guard let h = tjInitCompress() else { throw LDError("JPEG: cannot start an encoder") }
        defer { tjDestroy(h) }
        let plane = height * width
        var hwc = [UInt8](repeating: 0, count: channels * plane)
        for c in 0..<channels { for i in 0..<plane { hwc[i * channels + c] = pixels[c * plane + i] } }
        var out: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        let format = channels == 1 ? TJPF_GRAY : TJPF_RGB
        let subsampling = channels == 1 ? TJSAMP_GRAY : TJSAMP_420
        let flags = TJFLAG_ACCURATEDCT | (progressive ? TJFLAG_PROGRESSIVE : 0)
        let status = tjCompress2(h, hwc, Int32(width), 0, Int32(height), Int32(format.rawValue), &out, &size,
                                 Int32(subsampling.rawValue), Int32(quality), flags)
        defer { tjFree(out) }
        guard status == 0, let o = out else { throw LDError("JPEG: encode failed: \(message(h))") }
        return Array(UnsafeBufferPointer(start: o, count: Int(size)))
    }

    /// TurboJPEG's last error for `handle`.
    static func message(_ handle: tjhandle) -> String {
        guard let s = tjGetErrorStr2(handle) else { return "unknown error" }
        return String(cString: s)
    }
}

/// PNG or JPEG, told apart by content, not by the file's extension.
public enum ImageFile {
    /// Whether a file name has an image extension ld reads: `.png`, `.jpg`, `.jpeg` in any case.
    public static func isImageName(_ name: String) -> Bool {
        let lower = name.lowercased()
        return lower.hasSuffix(".png") || lower.hasSuffix(".jpg") || lower.hasSuffix(".jpeg")
    }

    /// One file's size and channels, from its header.
    public struct Header: Equatable, Sendable {
        public var channels: Int, height: Int, width: Int
    }

    /// The header of the image in `bytes`.
    public static func header(_ bytes: UnsafeRawBufferPointer, name: String) throws -> Header {
        if try format(bytes, name: name) == "jpeg" {
            let d = try JPEG.Decoder(bytes, name: name)
            return Header(channels: d.channels, height: d.height, width: d.width)
        }
        let d = try PNG.Decoder(bytes, name: name)
        return Header(channels: d.channels, height: d.height, width: d.width)
    }

    /// Decodes the image file at `path` into `dest` as `channels` planar planes of `height` x `width` (a gray
    /// image into an RGB slot is replicated); its size must be that one.
    public static func decode(path: String, channels: Int, height: Int, width: Int, into dest: UnsafeMutablePointer<UInt8>) throws {
        let bytes = try Files.readFile(path)
        try bytes.withUnsafeBytes { raw in
            let jpeg = try format(raw, name: path) == "jpeg"
            let (c, h, w): (Int, Int, Int)
            if jpeg {
                let d = try JPEG.Decoder(raw, name: path)
                (c, h, w) = (d.channels, d.height, d.width)
                guard h == height, w == width else { throw sizeError(path, h, w, height, width) }
                try d.finish(into: dest, channels: channels)
                return
            }
            let d = try PNG.Decoder(raw, name: path)
            (c, h, w) = (d.channels, d.height, d.width)
            guard h == height, w == width else { throw sizeError(path, h, w, height, width) }
            if c == channels { try d.finish(into: dest); return }
            guard c == 1 else { throw LDError("\(path): a colour PNG in a gray image set") }
            try d.finish(into: dest)
            let plane = h * w
            for k in 1..<channels { (dest + k * plane).update(from: dest, count: plane) }
        }
    }

    /// Decodes the image file at `path` and applies `transform` (any size in, transform.size square out) into
    /// `dest` as `channels` planes; a JPEG much larger than the resize target is decoded at a reduced scale.
    public static func decode(path: String, channels: Int, transform: EvalTransform, into dest: UnsafeMutablePointer<UInt8>) throws {
        let image = try decodeStored(path: path, channels: channels, draftTarget: transform.resizeTo)
        image.pixels.withUnsafeBufferPointer {
            transform.apply($0.baseAddress!, channels: channels, height: image.height, width: image.width, layout: image.layout, into: dest)
        }
    }

    /// The image file at `path` decoded whole as `channels` channels (a gray PNG replicated into RGB): a JPEG
    /// interleaved, at the reduced scale PIL's draft mode picks for `draftTarget` when given; a PNG planar.
    public static func decodeStored(path: String, channels: Int, draftTarget: Int? = nil) throws
        -> (pixels: [UInt8], height: Int, width: Int, layout: Resample.Layout)
    {
        let bytes = try Files.readFile(path)
        return try bytes.withUnsafeBytes { raw in
            if try format(raw, name: path) == "jpeg" {
                let d = try JPEG.Decoder(raw, name: path)
                let k = draftTarget.map { JPEG.draftScale(width: d.width, height: d.height, target: $0) } ?? 1
                let (w, h) = d.scaledSize(k)
                var pixels = [UInt8](repeating: 0, count: channels * h * w)
                try pixels.withUnsafeMutableBufferPointer { try d.finishInterleaved(into: $0.baseAddress!, channels: channels, denominator: k) }
                return (pixels, h, w, .interleaved(channels: channels, width: w))
            }
            let d = try PNG.Decoder(raw, name: path)
            let (h, w) = (d.height, d.width)
            var pixels = [UInt8](repeating: 0, count: max(channels, d.channels) * h * w)
            try pixels.withUnsafeMutableBufferPointer { try d.finish(into: $0.baseAddress!) }
            if d.channels != channels {
                guard d.channels == 1 else { throw LDError("\(path): a colour PNG in a gray image set") }
                let plane = h * w
                pixels.withUnsafeMutableBufferPointer { b in for k in 1..<channels { (b.baseAddress! + k * plane).update(from: b.baseAddress!, count: plane) } }
            }
            return (pixels, h, w, .planar(height: h, width: w))
        }
    }

    static func sizeError(_ path: String, _ h: Int, _ w: Int, _ height: Int, _ width: Int) -> LDError {
        LDError("\(path): image is \(h)x\(w) (height x width), the set's images are \(height)x\(width)")
    }

    /// The format of `bytes`: "png", "jpeg", or an error naming the file.
    public static func format(_ bytes: UnsafeRawBufferPointer, name: String) throws -> String {
        if bytes.count == 0 { throw LDError("\(name): empty file (0 bytes)") }
        if JPEG.sniff(bytes) { return "jpeg" }
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        if bytes.count >= 8 && zip(bytes.prefix(8), png).allSatisfy({ $0 == $1 }) { return "png" }
        let hex = Array("0123456789abcdef")
        let head = bytes.prefix(4).map { String([hex[Int($0 >> 4)], hex[Int($0 & 15)]]) }.joined(separator: " ")
        throw LDError("\(name): neither PNG nor JPEG (starts with \(head))")
    }
}
