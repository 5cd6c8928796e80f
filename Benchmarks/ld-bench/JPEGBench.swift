import Foundation
import LDKernels
import LDData
import LDNetworks

/// `ld-bench jpeg DIR [--mode train|val] [--size 224] [--threads T] [--secs S]`: images/s of ld's image
/// loading on a JPEG ImageFolder (as `../shared/peer/jpeg_bench.py make` writes one), the same work as that
/// script's `time` mode does through PIL, torchvision and a DataLoader: read the file, decode, then
/// train: RandomResizedCrop(size, scale 0.08-1) + horizontal flip, val: Resize(size/0.875) + CenterCrop(size)
/// (a JPEG at least twice the resize target decoded at a reduced scale, as PIL's draft), then normalise to
/// floats with ImageNet's mean and std. T threads each take every T-th file.
func jpegBench(_ args: [String]) throws {
    var dir: String? = nil, mode = "train", size = 224, threads = 2, secs = 10.0, decodeOnly = false
    var i = 0
    while i < args.count {
        switch args[i] {
        case "--mode": i += 1; mode = args[i]
        case "--size": i += 1; size = Int(args[i]) ?? size
        case "--threads": i += 1; threads = Int(args[i]) ?? threads
        case "--secs": i += 1; secs = Double(args[i]) ?? secs
        case "--decode-only": decodeOnly = true   // development: the decoder's share
        default: dir = args[i]
        }
        i += 1
    }
    guard let root = dir, ["train", "val"].contains(mode) else { throw LDError("ld-bench jpeg DIR [--mode train|val] [--size S] [--threads T] [--secs S]") }
    var files: [String] = []
    if let e = FileManager.default.enumerator(atPath: root) {
        for case let p as String in e where ImageFile.isImageName(p) { files.append(root + "/" + p) }
    }
    files.sort()
    guard !files.isEmpty else { throw LDError("ld-bench jpeg: no JPEG or PNG files under \(root)") }
    let mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225]
    let transform = EvalTransform(size: size), crop = RandomResizedCrop()
    let counts = UnsafeMutablePointer<Int>.allocate(capacity: threads)
    counts.initialize(repeating: 0, count: threads)
    defer { counts.deallocate() }
    let start = Date()
    let deadline = start.addingTimeInterval(secs)
    DispatchQueue.concurrentPerform(iterations: threads) { t in
        var rng = LDRandom(seed: UInt64(t), stage: .augment)
        var decoded = [UInt8](), out = [UInt8](repeating: 0, count: 3 * size * size)
        var floats = [Float](repeating: 0, count: 3 * size * size)
        var k = t
        while Date() < deadline {
            let path = files[k % files.count]
            k += threads
            do {
                let bytes = try Files.readFile(path)
                try bytes.withUnsafeBytes { raw in
                    let d = try JPEG.Decoder(raw, name: path)
                    let scale = mode == "val" ? JPEG.draftScale(width: d.width, height: d.height, target: transform.resizeTo) : 1
                    let (w, h) = d.scaledSize(scale)
                    if decoded.count < 3 * w * h { decoded = [UInt8](repeating: 0, count: 3 * w * h) }
                    try decoded.withUnsafeMutableBufferPointer { try d.finishInterleaved(into: $0.baseAddress!, channels: 3, denominator: scale) }
                    if decodeOnly { return }
                    decoded.withUnsafeBufferPointer { s in
                        out.withUnsafeMutableBufferPointer { o in
                            let layout = Resample.Layout.interleaved(channels: 3, width: w)
                            if mode == "val" {
                                transform.apply(s.baseAddress!, channels: 3, height: h, width: w, layout: layout, into: o.baseAddress!)
                            } else {
                                let a = crop.sample(height: h, width: w, using: &rng)
                                Resample.resize(s.baseAddress!, channels: 3, height: h, width: w, layout: layout,
                                                box: (Double(a.box.left), Double(a.box.top), Double(a.box.left + a.box.width), Double(a.box.top + a.box.height)),
                                                outH: size, outW: size, flip: a.flip, into: o.baseAddress!)
                            }
                        }
                    }
                }
                let plane = size * size
                out.withUnsafeBufferPointer { o in floats.withUnsafeMutableBufferPointer { f in
                    for c in 0..<3 {
                        let m = mean[c], inv = 1 / (255 * std[c]), shift = m / std[c]
                        let src = o.baseAddress! + c * plane, dst = f.baseAddress! + c * plane
                        for p in 0..<plane { dst[p] = Float(src[p]) * inv - shift }
                    }
                } }
                counts[t] += 1
            } catch {
                Log.line("ld-bench jpeg: \(error)")
                return
            }
        }
    }
    let dt = Date().timeIntervalSince(start)
    let n = (0..<threads).reduce(0) { $0 + counts[$1] }
    print(String(format: "load %@ jpeg %dpx t%d\t%.1f img/s\t(%d images of %d files)", mode, size, threads, Double(n) / dt, n, files.count))
}
