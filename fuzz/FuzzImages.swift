// libFuzzer target for the image decoders (built by fuzz/run.sh with swiftc -sanitize=fuzzer, together with
// Sources/LDData/Images/{PNG,JPEG}.swift and the file and error helpers of Sources/LDKernels as one module).
//
// Every input must either decode cleanly or fail with an LDError; any other error, a trap, a sanitizer
// report, or memory beyond -rss_limit_mb is a bug. The last byte picks the channels asked for and the
// reduced JPEG scale, so the gray-to-RGB and scaled paths are fuzzed too.
#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImageInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let raw = UnsafeRawBufferPointer(start: data, count: size)
    let knob = size > 0 ? Int(data[size - 1]) : 0
    do {
        let header = try ImageFile.header(raw, name: "fuzz")
        let channels = knob & 1 == 0 ? header.channels : 3
        if try ImageFile.format(raw, name: "fuzz") == "jpeg" {
            let d = try JPEG.Decoder(raw, name: "fuzz")
            let denominator = [1, 2, 4, 8][(knob >> 1) & 3]
            let (w, h) = d.scaledSize(denominator)
            let out = UnsafeMutablePointer<UInt8>.allocate(capacity: channels * w * h)
            defer { out.deallocate() }
            if knob & 8 == 0 {
                try d.finish(into: out, channels: channels, denominator: denominator)
            } else {
                // The transforms read the decoder's interleaved rows: an exact-size buffer, so ASan sees any
                // read past it; the output size and box come from the input.
                try d.finishInterleaved(into: out, channels: channels, denominator: denominator)
                let s = 1 + (knob >> 4)
                let dst = UnsafeMutablePointer<UInt8>.allocate(capacity: channels * s * s)
                defer { dst.deallocate() }
                EvalTransform(size: s).apply(out, channels: channels, height: h, width: w,
                                             layout: .interleaved(channels: channels, width: w), into: dst)
                let x0 = Double(knob % max(1, w)), y0 = Double((knob / 3) % max(1, h))
                Resample.resize(out, channels: channels, height: h, width: w, layout: .interleaved(channels: channels, width: w),
                                box: (x0, y0, Double(w), Double(h)), outH: s, outW: s, flip: knob & 4 != 0, into: dst)
            }
        } else {
            _ = try PNG.decode(Array(raw), name: "fuzz")
        }
    } catch is LDError {
    } catch {
        fatalError("non-LDError escaped the image decoders: \(error)")
    }
    return 0
}

/// With LD_FUZZ_SEEDS=DIR, writes a seed corpus of valid images into DIR and exits.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzImageInitialize(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    guard let d = getenv("LD_FUZZ_SEEDS") else { return 0 }
    let dir = String(cString: d)
    mkdir(dir, 0o755)
    var seeds: [(String, [UInt8])] = []
    for (c, h, w) in [(1, 8, 8), (3, 17, 23), (3, 64, 48)] {
        var pixels = [UInt8](repeating: 0, count: c * h * w)
        for i in 0..<pixels.count { pixels[i] = UInt8((i * 37) & 255) }
        for progressive in [false, true] {
            if let j = try? JPEG.encode(pixels, channels: c, height: h, width: w, quality: 80, progressive: progressive) {
                seeds.append(("jpeg-\(c)x\(h)x\(w)-\(progressive ? "p" : "b")", j))
            }
        }
        if let p = try? PNG.encode(pixels, channels: c, height: h, width: w) { seeds.append(("png-\(c)x\(h)x\(w)", p)) }
    }
    for (name, bytes) in seeds {
        let f = fopen("\(dir)/\(name)", "wb")
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, bytes.count, f) }
        fclose(f)
    }
    exit(0)
}
