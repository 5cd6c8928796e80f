import LDKernels
import LDRecords
import LDData
import LDNetworks
// Where recover's images go: a PNG ImageFolder (resumable, shard-friendly) and/or an image record stream.
//
// Folder layout: DIR/<class>/ipc<index>.png with zero-padded names (class folders `000`, `001`, ...; files
// `ipc0000.png`, ...), so the folder loader's sorted order is class-major and index order, image i of class c
// at position c * IPC + i. Each PNG is written to a hidden temporary name and renamed (PNG.write), so a file
// under its final name is always a complete image; `manifest.json` (configuration, teacher hash, mean, std,
// classNames) is written last, atomically. A run that stops early leaves complete images and no manifest; the
// same command resumes it, skipping every batch whose images all exist.
//
// `DIR/.ld-recover.json` (hidden: the loader skips it) records what shapes the images (method, knobs, seed,
// IPC, teacher hash) when the folder is first used; a re-run, or another shard writing into the same folder,
// must match it, so a folder never mixes images of two different runs.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A recover output folder.
public struct RecoverFolder {
    public let root: String
    /// Digits of the class folder names and of the IPC index in file names.
    public let classDigits: Int
    public let ipcDigits: Int
    public let channels: Int
    public let size: Int

    /// - Parameters: classes and ipc of the whole run fix the name widths (so every shard names alike).
    public init(root: String, classes: Int, ipc: Int, channels: Int, size: Int) {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
        classDigits = max(3, String(max(classes - 1, 0)).count)
        ipcDigits = max(4, String(max(ipc - 1, 0)).count)
        self.channels = channels
        self.size = size
    }

    static func padded(_ v: Int, _ digits: Int) -> String {
        let s = String(v)
        return s.count >= digits ? s : String(repeating: "0", count: digits - s.count) + s
    }

    /// `DIR/007`.
    public func classFolder(_ c: Int) -> String { root + "/" + RecoverFolder.padded(c, classDigits) }

    /// `DIR/007/ipc0003.png`.
    public func path(_ image: RecoverImage) -> String {
        classFolder(image.classIndex) + "/ipc" + RecoverFolder.padded(image.ipcIndex, ipcDigits) + ".png"
    }

    public var manifestPath: String { root + "/manifest.json" }
    public var identityPath: String { root + "/.ld-recover.json" }

    /// Creates the folder and the class folders of `classRange`, and checks or records the run's identity.
    /// Throws when the folder cannot be made or written, or holds a different run's images.
    public func prepare(identity: [String: JSONValue], classRange: Range<Int>) throws {
        do {
            try RecoverFolder.makeDirectory(root)
        } catch let e as LDError {
            throw LDError("\(root): cannot create the output folder (\(e.message))")
        }
        let text = JSONValue.object(identity).serialized + "\n"
        if Files.isFile(identityPath) {
            let existing = String(decoding: try Files.readFile(identityPath), as: UTF8.self)
            if existing != text {
                throw LDError("\(root): holds images of a different recover run (\(RecoverFolder.difference(existing, identity))); use another -o folder or remove it")
            }
        } else {
            // Class folders (all digits) may already be there from a shard that started at the same moment.
            let entries = try Files.list(root).filter { name in
                !name.hasPrefix(".") && !(name.allSatisfy(\.isASCII) && name.allSatisfy(\.isNumber))
            }
            if !entries.isEmpty {
                throw LDError("\(root): folder is not empty and was not made by ld-recover; use another -o folder")
            }
            let out = try OutputFile(path: identityPath, binary: false)
            do { try out.write(text); try out.commit() } catch { out.abort(); throw error }
        }
        for c in classRange {
            let folder = classFolder(c)
            try RecoverFolder.makeDirectory(folder)
            // Temporaries of an interrupted run (PNG.write's hidden `.NAME.tmp.PID.N`).
            for name in try Files.list(folder) where name.hasPrefix(".") && name.contains(".tmp.") {
                unlink(folder + "/" + name)
            }
        }
    }

    /// Names the first setting that differs from the recorded identity (for the error message).
    static func difference(_ existing: String, _ identity: [String: JSONValue]) -> String {
        guard let old = try? JSONDecoder().decode([String: JSONValue].self, from: Data(existing.utf8)) else {
            return "unreadable .ld-recover.json"
        }
        for key in Set(old.keys).union(identity.keys).sorted() where old[key] != identity[key] {
            return "\(key) \(old[key]?.serialized ?? "unset") there, \(identity[key]?.serialized ?? "unset") now"
        }
        return "same settings"
    }

    /// Whether the image's PNG is there (a file under its final name is complete).
    public func exists(_ image: RecoverImage) -> Bool { Files.isFile(path(image)) }

    /// Writes one image (uint8 planar C, H, W) atomically.
    public func write(_ image: RecoverImage, pixels: UnsafeBufferPointer<UInt8>) throws {
        try PNG.write(path: path(image), pixels: Array(pixels), channels: channels, height: size, width: size)
    }

    /// Reads back an image written earlier (resume), checking its shape.
    public func read(_ image: RecoverImage) throws -> [UInt8] {
        let p = path(image)
        let png = try PNG.read(path: p)
        guard png.channels == channels, png.height == size, png.width == size else {
            throw LDError("\(p): image is \(png.channels)x\(png.height)x\(png.width), the teacher takes \(channels)x\(size)x\(size); remove it to redo it")
        }
        return png.pixels
    }

    /// Writes `manifest.json` atomically (last, when every image is there).
    public func writeManifest(_ manifest: [String: JSONValue]) throws {
        let out = try OutputFile(path: manifestPath, binary: false)
        do { try out.write(JSONValue.object(manifest).serialized + "\n"); try out.commit() } catch { out.abort(); throw error }
    }

    /// mkdir -p with a one-line reason.
    static func makeDirectory(_ path: String) throws {
        if Files.isDirectory(path) { return }
        if Files.isFile(path) { throw LDError("\(path) exists and is not a folder") }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty && parent != path && !Files.isDirectory(parent) { try makeDirectory(parent) }
        if mkdir(path, 0o777) != 0 && errno != EEXIST {
            throw LDError("\(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// Writes recover's images as an image record stream (kind `images`): the shard's images in class-major
/// order with their indices in the whole set, so `cat` of the shards' streams loads as the whole set.
public enum RecoverStream {
    /// Writes `images` (global index, label, pixels) to an open writer and finishes it; aborts it on failure.
    public static func write(_ writer: StreamWriter,
                             images: [(index: Int, label: Int, pixels: ArraySlice<UInt8>)]) throws {
        do {
            for im in images {
                try writer.write(ImageRecord(index: UInt64(im.index), label: UInt32(im.label), pixels: Array(im.pixels)))
            }
            try writer.finish()
        } catch {
            writer.abort()
            throw error
        }
    }
}
