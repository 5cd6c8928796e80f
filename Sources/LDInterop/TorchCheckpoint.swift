import Foundation
import LDKernels

/// A `torch.save` checkpoint: the zip format of PyTorch >= 1.6 (`<prefix>/data.pkl`, the pickled object with
/// tensors as persistent ids of storages; `<prefix>/data/<key>`, each storage's raw little-endian bytes;
/// `<prefix>/byteorder`), or the legacy format before it (`readLegacy`). The pickle is read by `RestrictedUnpickler`, the zip by `ZipArchive`.
public enum TorchCheckpoint {
    /// The most elements a checkpoint's tensors may have together (a strided view can be far larger than its
    /// storage, so the file's size does not bound them): 2^28, 1 GB of floats, 24 ResNet-18s.
    static let maxElements = 1 << 28

    /// The state dict of the checkpoint at `path`: the pickled object itself when it is a dict of tensors, or
    /// the dict of tensors under `state_dict` or `model` (with DataParallel's `module.` prefix removed).
    public static func read(path: String) throws -> StateDict {
        try read(try Files.readFile(path), name: path)
    }

    /// The state dict of the checkpoint in `bytes`; `name` starts errors.
    public static func read(_ bytes: [UInt8], name: String) throws -> StateDict {
        if bytes.count >= 2 && bytes[0] == 0x80 && bytes[1] <= 5 { return try readLegacy(bytes, name: name) }
        guard bytes.count >= 4, bytes[0] == 0x50, bytes[1] == 0x4B else {
            throw LDError("\(name): not a torch.save checkpoint (no zip archive signature)")
        }
        let archive = try ZipArchive(bytes, name: name)
        let pickles = archive.entries.filter { $0.path == "data.pkl" || $0.path.hasSuffix("/data.pkl") }
        guard pickles.count == 1 else {
            throw LDError("\(name): a torch.save archive holds one data.pkl, this one \(pickles.count)")
        }
        let pkl = pickles[0].path
        let prefix = String(pkl.dropLast("data.pkl".count))
        if let order = archive[prefix + "byteorder"] {
            let text = String(decoding: try archive.read(order), as: UTF8.self)
            guard text.trimmingCharacters(in: .whitespacesAndNewlines) == "little" else {
                throw LDError("\(name): tensors stored \(text)-endian; ld reads little-endian checkpoints")
            }
        }
        var storages: [String: StorageRef] = [:]
        var unpickler = RestrictedUnpickler(try archive.read(pickles[0]), name: name) { pid in
            try storage(pid, fields: 5, seen: &storages, name: name)
        }
        let root = try unpickler.load()
        return try stateDict(root, name: name) { ref in
            guard let entry = archive[prefix + "data/" + ref.key] else {
                throw LDError("\(name): storage data/\(ref.key) is missing from the archive")
            }
            return try archive.read(entry)
        }
    }

    /// A persistent id `('storage', torch.<T>Storage, key, location, count[, view])` as a storage.
    static func storage(_ pid: PickleValue, fields: Int, seen storages: inout [String: StorageRef], name: String) throws -> PickleValue {
        guard case .tuple(let tuple) = pid, case let t = tuple.items, t.count == fields, case .string("storage") = t[0], case .global(let type) = t[1],
              case .string(let key) = t[2], case .int(let count) = t[4], count >= 0 else {
            throw LDError("\(name): persistent id \(pid.kind) is not a torch storage")
        }
        if fields == 6, case .none = t[5] {} else if fields == 6 {
            throw LDError("\(name): storage \(key) is a view of another storage (legacy format); re-save the checkpoint with a recent torch.save")
        }
        guard let dtype = ForeignDType(torchStorage: String(type.dropFirst("torch.".count))) else {
            throw LDError("\(name): storage type \(type) is not one ld reads")
        }
        let ref = StorageRef(key: key, dtype: dtype, count: count)
        if let seen = storages[key], seen != ref {
            throw LDError("\(name): storage \(key) is described twice, differently")
        }
        storages[key] = ref
        return .storage(ref)
    }

    /// The legacy format (PyTorch < 1.6, and `_use_new_zipfile_serialization=False`): five pickles one after
    /// another (a magic number, the protocol version 1001, system facts, the object, the list of storage keys),
    /// then each storage in that order as an 8-byte little-endian element count and its raw bytes.
    static func readLegacy(_ bytes: [UInt8], name: String) throws -> StateDict {
        let magic: [UInt8] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]   // 0x1950a86a20f9469cfc6c
        var storages: [String: StorageRef] = [:]
        var reader = RestrictedUnpickler(bytes, name: name) { _ in throw LDError("\(name): legacy header with a persistent id") }
        guard case .bigInt(magic) = try reader.load() else {
            throw LDError("\(name): a pickle, but not a torch.save checkpoint (no legacy magic number)")
        }
        reader = RestrictedUnpickler(bytes, start: reader.position, name: name) { _ in throw LDError("\(name): legacy header with a persistent id") }
        guard case .int(1001) = try reader.load() else { throw LDError("\(name): legacy torch.save protocol is not 1001") }
        reader = RestrictedUnpickler(bytes, start: reader.position, name: name) { _ in throw LDError("\(name): legacy header with a persistent id") }
        guard case .dict(let info) = try reader.load() else { throw LDError("\(name): legacy torch.save system facts are not a dict") }
        for (k, v) in info.items {
            if case .string("little_endian") = k, case .bool(false) = v {
                throw LDError("\(name): tensors stored big-endian; ld reads little-endian checkpoints")
            }
        }
        reader = RestrictedUnpickler(bytes, start: reader.position, name: name) { pid in
            try storage(pid, fields: 6, seen: &storages, name: name)
        }
        let root = try reader.load()
        reader = RestrictedUnpickler(bytes, start: reader.position, name: name) { _ in throw LDError("\(name): legacy storage list with a persistent id") }
        guard case .list(let keyList) = try reader.load() else { throw LDError("\(name): legacy storage keys are not a list") }
        var data: [String: [UInt8]] = [:]
        var at = reader.position
        for item in keyList.items {
            guard case .string(let key) = item, let ref = storages[key] else { throw LDError("\(name): legacy storage key \(item.kind) is unknown") }
            guard bytes.count - at >= 8 else { throw LDError("\(name): legacy storage \(key) is missing (truncated?)") }
            var n: UInt64 = 0
            for i in 0..<8 { n |= UInt64(bytes[at + i]) << (8 * UInt64(i)) }
            at += 8
            let (size, overflow) = ref.count.multipliedReportingOverflow(by: ref.dtype.size)
            guard n == UInt64(ref.count), !overflow, size <= bytes.count - at else {
                throw LDError("\(name): legacy storage \(key) has \(n) elements where \(ref.count) were announced, or runs past the end (truncated?)")
            }
            data[key] = Array(bytes[at..<(at + size)])
            at += size
        }
        return try stateDict(root, name: name) { ref in
            guard let d = data[ref.key] else { throw LDError("\(name): legacy storage \(ref.key) is missing") }
            return d
        }
    }

    /// The state dict in a checkpoint's unpickled object, each storage's bytes from `storageBytes`.
    static func stateDict(_ root: PickleValue, name: String, storageBytes: (StorageRef) throws -> [UInt8]) throws -> StateDict {
        guard case .dict(let top) = root else { throw LDError("\(name): holds \(root.kind), not a dict of tensors") }
        var stateDict = top
        if !isTensorDict(top) {
            let keys = top.items.compactMap { if case .string(let s) = $0.key { return s } else { return nil } }
            guard let inner = top.items.first(where: { if case .string(let s) = $0.key { return s == "state_dict" || s == "model" }; return false }),
                  case .dict(let d) = inner.value else {
                throw LDError("\(name): holds a dict without tensors under 'state_dict' or 'model' (keys: \(keys.prefix(8).joined(separator: ", ")))")
            }
            stateDict = d
        }
        var loaded: [String: [UInt8]] = [:]
        var total = 0
        var state = StateDict()
        for (k, v) in stateDict.items {
            guard case .string(let key) = k else { throw LDError("\(name): state dict key is \(k.kind), not a string") }
            guard case .tensor(let ref) = v else { throw LDError("\(name): state dict entry '\(key)' is \(v.kind), not a tensor") }
            if loaded[ref.storage.key] == nil {
                let data = try storageBytes(ref.storage)
                let (need, overflow) = ref.storage.count.multipliedReportingOverflow(by: ref.storage.dtype.size)
                guard !overflow, data.count == need else {
                    throw LDError("\(name): storage data/\(ref.storage.key) has \(data.count) bytes, \(ref.storage.count) \(ref.storage.dtype.rawValue) elements need \(overflow ? "more" : String(need))")
                }
                loaded[ref.storage.key] = data
            }
            let count = ForeignTensor.count(ref.shape) ?? Int.max
            guard count <= maxElements - total else {
                throw LDError("\(name): tensor '\(key)' takes the state dict past \(maxElements) elements, more than ld reads")
            }
            total += count
            try state.insert(key, try gather(ref, from: loaded[ref.storage.key]!, key: key, name: name))
        }
        return state.strippingModulePrefix()
    }

    static func isTensorDict(_ d: PickleDict) -> Bool {
        !d.items.isEmpty && d.items.allSatisfy { if case .tensor = $0.value { return true }; return false }
    }

    /// The tensor `ref` describes, read through its storage offset and strides (any non-negative strides,
    /// overlapping ones included); a view reaching outside its storage is refused.
    public static func gather(_ ref: TensorRef, from storage: [UInt8], key: String, name: String) throws -> ForeignTensor {
        guard ref.shape.count == ref.stride.count, ref.offset >= 0, ref.stride.allSatisfy({ $0 >= 0 }),
              let count = ForeignTensor.count(ref.shape), count <= maxElements else {
            throw LDError("\(name): tensor '\(key)' has size \(ref.shape), stride \(ref.stride), offset \(ref.offset), which ld cannot read")
        }
        if count > 0 {
            var last = ref.offset
            for (d, s) in zip(ref.shape, ref.stride) {
                let (m, o1) = (d - 1).multipliedReportingOverflow(by: s)
                let (t, o2) = last.addingReportingOverflow(m)
                guard !o1, !o2 else { throw LDError("\(name): tensor '\(key)' strides overflow") }
                last = t
            }
            guard last < ref.storage.count else {
                throw LDError("\(name): tensor '\(key)' (size \(ref.shape), stride \(ref.stride), offset \(ref.offset)) reaches element \(last) of a storage of \(ref.storage.count)")
            }
        }
        let dtype = ref.storage.dtype
        let rank = ref.shape.count
        var values = [Float](repeating: 0, count: count)
        storage.withUnsafeBytes { raw in
            guard count > 0 else { return }
            var index = [Int](repeating: 0, count: rank)
            var at = ref.offset
            for i in 0..<count {
                values[i] = dtype.float(raw, at)
                var d = rank - 1
                while d >= 0 {
                    index[d] += 1
                    at += ref.stride[d]
                    if index[d] < ref.shape[d] { break }
                    at -= ref.stride[d] * ref.shape[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
        return ForeignTensor(dtype: dtype, shape: ref.shape, values: values)
    }
}
