import LDKernels
import LDRecords
import LDData
import LDNetworks
import Foundation

/// Writing a selected subset as a PNG ImageFolder that `Dataset.load` reads back unchanged.
public enum SubsetOutput {
    /// Writes `data` to the folder `directory`: one zero-padded class folder per class (`000/`, `001/`, ...; at
    /// least three digits, so the names sort numerically), images named by their position in the set
    /// (`000000.png`, ...) so the folder's order is the set's order, and `manifest.json` with `mean`, `std`,
    /// `classNames` (what the folder loader reads) plus `extra` (for example `source_indices`).
    ///
    /// The folder is built as `.DIR.tmp-HOST-PID` beside it and renamed into place at the end; an existing
    /// non-empty `DIR` is refused, a failure leaves nothing under `DIR`, and the temporary folders of killed
    /// runs (`StaleTemps`) are removed.
    public static func writePNGFolder(_ data: Dataset, to directory: String, extra: [String: JSONValue] = [:]) throws {
        let data = try data.resident()
        let fm = FileManager.default
        var dir = directory
        while dir.count > 1 && dir.hasSuffix("/") { dir.removeLast() }
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: dir, isDirectory: &isDir) {
            guard isDir.boolValue, (try? fm.contentsOfDirectory(atPath: dir))?.isEmpty == true else {
                throw LDError("\(dir): already exists; remove it or choose another --png folder")
            }
        }
        let slash = dir.lastIndex(of: "/")
        let parent = slash.map { String(dir[...$0]) } ?? "", base = slash.map { String(dir[dir.index(after: $0)...]) } ?? dir
        for stale in StaleTemps.find(dir: parent, base: base) { try? fm.removeItem(atPath: stale) }
        let tmp = "\(parent).\(base).tmp-\(StaleTemps.owner)"
        try? fm.removeItem(atPath: tmp)
        do {
            try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
            let digits = max(3, String(max(data.classes - 1, 0)).count)
            let fileDigits = max(6, String(max(data.count - 1, 0)).count)
            func pad(_ v: Int, _ n: Int) -> String {
                let s = String(v)
                return String(repeating: "0", count: max(0, n - s.count)) + s
            }
            for c in 0..<data.classes {
                try fm.createDirectory(atPath: "\(tmp)/\(pad(c, digits))", withIntermediateDirectories: false)
            }
            let size = data.imageSize
            try data.pixels.withUnsafeBufferPointer { pix in
                for i in 0..<data.count {
                    let bytes = try PNG.encode(pix.baseAddress! + i * size, channels: data.channels, height: data.height,
                                               width: data.width)
                    let path = "\(tmp)/\(pad(Int(data.labels[i]), digits))/\(pad(i, fileDigits)).png"
                    guard fm.createFile(atPath: path, contents: Data(bytes)) else {
                        throw LDError("\(path): cannot write the file")
                    }
                }
            }
            var manifest = extra
            manifest["mean"] = .array(data.mean.map { JSONValue.number($0) })
            manifest["std"] = .array(data.std.map { JSONValue.number($0) })
            manifest["class_names"] = .array(data.classNames.map { .string($0) })
            manifest["source"] = .string(data.source)
            guard fm.createFile(atPath: "\(tmp)/manifest.json", contents: Data((JSONValue.object(manifest).serialized + "\n").utf8)) else {
                throw LDError("\(tmp)/manifest.json: cannot write the file")
            }
            if fm.fileExists(atPath: dir) { try fm.removeItem(atPath: dir) }
            guard rename(tmp, dir) == 0 else {
                throw LDError("\(dir): cannot rename \(tmp) into place: \(String(cString: strerror(errno)))")
            }
        } catch {
            try? fm.removeItem(atPath: tmp)
            throw error
        }
    }
}
