import Foundation
import LDKernels
import LDData

/// `ld-bench makeset DIR [--layout tiny|imagenet] [--classes N] [--per-class K] [--val-per-class V] [--seed S]`:
/// a synthetic JPEG set in a real data set's layout, for end-to-end runs (`pipelines/shaped.sh`):
///
/// - `tiny`: Tiny-ImageNet's: `train/WNID/images/WNID_k.JPEG` (64 x 64), `val/images/val_j.JPEG` with
///   `val/val_annotations.txt` (`NAME<TAB>WNID<TAB>box`);
/// - `imagenet`: ImageNet's: `train/WNID/WNID_k.JPEG` of assorted sizes (250-450 x 300-500), a flat
///   `val/ILSVRC2012_val_j.JPEG` folder with `LOC_val_solution.csv` (`ImageId,PredictionString`).
///
/// Each class has its own colour and stripe orientation under per-image noise and offsets, so a model can
/// learn it; nothing else about the images is meaningful.
func makeSet(_ args: [String]) throws {
    var dir: String? = nil, layout = "tiny", classes = 200, perClass = 10, valPerClass = 2, seed: UInt64 = 0
    var i = 0
    while i < args.count {
        switch args[i] {
        case "--layout": i += 1; layout = args[i]
        case "--classes": i += 1; classes = Int(args[i]) ?? classes
        case "--per-class": i += 1; perClass = Int(args[i]) ?? perClass
        case "--val-per-class": i += 1; valPerClass = Int(args[i]) ?? valPerClass
        case "--seed": i += 1; seed = UInt64(args[i]) ?? seed
        default: dir = args[i]
        }
        i += 1
    }
    guard let dir, ["tiny", "imagenet"].contains(layout) else {
        throw LDError("ld-bench makeset DIR [--layout tiny|imagenet] [--classes N] [--per-class K] [--val-per-class V]")
    }
    let fm = FileManager.default
    let wnids = (0..<classes).map { String(format: "n%08d", 1_440_000 + 37 * $0) }
    var rng = LDRandom(seed: seed, stage: .subset)
    func image(_ c: Int) throws -> [UInt8] {
        let (h, w) = layout == "tiny" ? (64, 64) : (250 + rng.int(in: 0...200), 300 + rng.int(in: 0...200))
        let angle = Double(c % 8) * .pi / 8, freq = 0.05 + 0.02 * Double((c / 8) % 5)
        let base = [(c * 53) % 200 + 28, (c * 97) % 200 + 28, (c * 151) % 200 + 28].map(Double.init)
        let dx = cos(angle), dy = sin(angle), phase = Double(rng.int(in: 0...99))
        var px = [UInt8](repeating: 0, count: 3 * h * w)
        for y in 0..<h {
            for x in 0..<w {
                let s = 40 * sin(freq * (Double(x) * dx + Double(y) * dy) * 64 / Double(min(h, w)) * 4 + phase)
                for ch in 0..<3 {
                    let noise = Double(rng.int(in: 0...30)) - 15
                    px[(ch * h + y) * w + x] = UInt8(max(0, min(255, base[ch] + s + noise)))
                }
            }
        }
        return try JPEG.encode(px, channels: 3, height: h, width: w, quality: 90)
    }
    var written = 0
    for (c, wnid) in wnids.enumerated() {
        let folder = layout == "tiny" ? "\(dir)/train/\(wnid)/images" : "\(dir)/train/\(wnid)"
        try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for k in 0..<perClass {
            try Data(try image(c)).write(to: URL(fileURLWithPath: "\(folder)/\(wnid)_\(k).JPEG"))
            written += 1
        }
    }
    let valImages = layout == "tiny" ? "\(dir)/val/images" : "\(dir)/val"
    try fm.createDirectory(atPath: valImages, withIntermediateDirectories: true)
    var list = layout == "tiny" ? "" : "ImageId,PredictionString\n"
    var j = 0
    for _ in 0..<valPerClass {
        for (c, wnid) in wnids.enumerated() {
            let name = layout == "tiny" ? "val_\(j)" : String(format: "ILSVRC2012_val_%08d", j + 1)
            try Data(try image(c)).write(to: URL(fileURLWithPath: "\(valImages)/\(name).JPEG"))
            list += layout == "tiny" ? "\(name).JPEG\t\(wnid)\t0\t0\t63\t63\n" : "\(name),\(wnid) 0 0 10 10\n"
            j += 1
        }
    }
    try Data(list.utf8).write(to: URL(fileURLWithPath: layout == "tiny" ? "\(dir)/val/val_annotations.txt" : "\(dir)/LOC_val_solution.csv"))
    print("wrote \(written) training and \(j) validation JPEGs under \(dir) (\(layout) layout, \(classes) classes)")
}
