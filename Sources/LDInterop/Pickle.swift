import LDKernels

/// A dict or list being built by the pickle machine (shared by reference, as the pickle memo requires), and
/// a tuple; each knows how deeply it nests, so that no value nests deeper than `RestrictedUnpickler.maxDepth`
/// (deeper values would overflow the stack when they are freed).
public final class PickleDict {
    public internal(set) var items: [(key: PickleValue, value: PickleValue)] = []
    var depth = 1
}
public final class PickleList {
    public internal(set) var items: [PickleValue] = []
    var depth = 1
}
public final class PickleTuple {
    public let items: [PickleValue]
    let depth: Int
    init(_ items: [PickleValue]) {
        self.items = items
        depth = 1 + (items.map(\.depth).max() ?? 0)
    }
}

/// A storage a torch checkpoint refers to by persistent id: `data/<key>` in the archive, `count` elements.
public struct StorageRef: Equatable, Sendable {
    public var key: String
    public var dtype: ForeignDType
    public var count: Int

    public init(key: String, dtype: ForeignDType, count: Int) {
        self.key = key; self.dtype = dtype; self.count = count
    }
}

/// A tensor as `torch._utils._rebuild_tensor_v2` describes it: a view of a storage.
public struct TensorRef: Equatable, Sendable {
    public var storage: StorageRef
    public var offset: Int
    public var shape: [Int]
    public var stride: [Int]

    public init(storage: StorageRef, offset: Int, shape: [Int], stride: [Int]) {
        self.storage = storage; self.offset = offset; self.shape = shape; self.stride = stride
    }
}

/// What the restricted reader builds: plain data, containers, the allow-listed callables (by name, never
/// resolved to anything that runs), storages and tensor descriptions.
public indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer wider than 64 bits, as its little-endian two's-complement bytes (legacy torch.save's magic).
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple(PickleTuple)
    case list(PickleList)
    case dict(PickleDict)
    case global(String)
    case storage(StorageRef)
    case tensor(TensorRef)

    var depth: Int {
        switch self {
        case .tuple(let t): return t.depth
        case .list(let l): return l.depth
        case .dict(let d): return d.depth
        default: return 0
        }
    }

    var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "a bool"
        case .int, .bigInt: return "an int"
        case .float: return "a float"
        case .string: return "a string"
        case .bytes: return "bytes"
        case .tuple: return "a tuple"
        case .list: return "a list"
        case .dict: return "a dict"
        case .global(let g): return g
        case .storage: return "a storage"
        case .tensor: return "a tensor"
        }
    }
}

/// A pickle reader that understands only what a state dict of tensors needs (the opcodes of protocols 2-5
/// that torch.save emits for dicts, lists, tuples, numbers and strings) and an allow-list of globals:
/// `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_parameter` and the
/// torch storage types. It evaluates those three callables itself on plain values; any other global (say
/// `os.system` or `builtins.eval`), and every opcode that builds arbitrary objects (INST, OBJ, NEWOBJ, EXT),
/// is refused by name before anything is built. Nothing in the input is ever executed or imported.
public struct RestrictedUnpickler {
    /// The deepest nesting of containers a pickle may build (a state dict needs about 5).
    public static let maxDepth = 100

    public static let allowedGlobals: Set<String> = {
        var s: Set<String> = ["collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter"]
        for t in ["Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool"] { s.insert("torch.\(t)Storage") }
        return s
    }()

    let bytes: [UInt8]
    let name: String
    /// Resolves a persistent id (torch: `('storage', storage type, key, location, count)`).
    let persistentLoad: (PickleValue) throws -> PickleValue
    var pos = 0
    var stack: [PickleValue] = []
    var marks: [Int] = []
    var memo: [Int: PickleValue] = [:]

    /// The reader of the pickle in `bytes` from `start` (a file may hold several pickles one after another).
    public init(_ bytes: [UInt8], start: Int = 0, name: String, persistentLoad: @escaping (PickleValue) throws -> PickleValue) {
        self.bytes = bytes
        self.pos = min(max(start, 0), bytes.count)
        self.name = name
        self.persistentLoad = persistentLoad
    }

    func fail(_ message: String) -> LDError { LDError("\(name): \(message)") }

    mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - pos else { throw fail("pickle ends inside an opcode at byte \(pos) (truncated?)") }
        defer { pos += n }
        return bytes[pos..<(pos + n)]
    }

    mutating func uint(_ n: Int) throws -> UInt64 {
        var v: UInt64 = 0
        for (i, b) in try take(n).enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        return v
    }

    mutating func length(_ n: Int) throws -> Int {
        let v = try uint(n)
        guard v <= UInt64(bytes.count - pos) else { throw fail("pickle string of \(v) bytes at byte \(pos) runs past the end (truncated?)") }
        return Int(v)
    }

    mutating func line() throws -> String {
        guard let end = bytes[pos...].firstIndex(of: UInt8(ascii: "\n")) else { throw fail("pickle GLOBAL without end of line") }
        defer { pos = end + 1 }
        return String(decoding: bytes[pos..<end], as: UTF8.self)
    }

    mutating func pop() throws -> PickleValue {
        guard let v = stack.popLast() else { throw fail("pickle stack underflow at byte \(pos)") }
        if let m = marks.last, stack.count < m { throw fail("pickle pops past a mark at byte \(pos)") }
        return v
    }

    mutating func popMark() throws -> [PickleValue] {
        guard let m = marks.popLast(), m <= stack.count else { throw fail("pickle has no mark at byte \(pos)") }
        defer { stack.removeSubrange(m...) }
        return Array(stack[m...])
    }

    func string(_ s: ArraySlice<UInt8>) throws -> PickleValue {
        guard let t = String(validating: s, as: UTF8.self) else { throw fail("pickle string is not UTF-8") }
        return .string(t)
    }

    mutating func global(_ module: String, _ attribute: String) throws -> PickleValue {
        let full = "\(module).\(attribute)"
        guard RestrictedUnpickler.allowedGlobals.contains(full) else {
            throw fail("the pickle names the global '\(full)', which a state dict of tensors does not need; refused (nothing was run; torch.save(model.state_dict(), path) saves the weights alone)")
        }
        return .global(full)
    }

    /// Reads the pickle and returns its value.
    public mutating func load() throws -> PickleValue {
        while true {
            let at = pos
            guard pos < bytes.count else { throw fail("pickle ends without STOP (truncated?)") }
            let op = bytes[pos]
            pos += 1
            switch op {
            case 0x80: _ = try take(1)                                     // PROTO
            case 0x95: _ = try take(8)                                     // FRAME
            case UInt8(ascii: "."):                                        // STOP
                guard stack.count == 1, marks.isEmpty else { throw fail("pickle STOP with \(stack.count) values on the stack") }
                return stack[0]
            case UInt8(ascii: "("): marks.append(stack.count)              // MARK
            case UInt8(ascii: "0"): _ = try pop()                          // POP
            case UInt8(ascii: "1"): _ = try popMark()                      // POP_MARK
            case UInt8(ascii: "2"): let v = try pop(); stack += [v, v]     // DUP
            case UInt8(ascii: "}"): stack.append(.dict(PickleDict()))      // EMPTY_DICT
            case UInt8(ascii: "]"): stack.append(.list(PickleList()))      // EMPTY_LIST
            case UInt8(ascii: ")"): stack.append(try tuple([]))            // EMPTY_TUPLE
            case UInt8(ascii: "N"): stack.append(.none)
            case 0x88: stack.append(.bool(true))                           // NEWTRUE
            case 0x89: stack.append(.bool(false))                          // NEWFALSE
            case UInt8(ascii: "K"): stack.append(.int(Int(try uint(1))))   // BININT1
            case UInt8(ascii: "M"): stack.append(.int(Int(try uint(2))))   // BININT2
            case UInt8(ascii: "J"): stack.append(.int(Int(Int32(truncatingIfNeeded: try uint(4)))))  // BININT
            case 0x8a, 0x8b:                                               // LONG1, LONG4
                let n = try length(op == 0x8a ? 1 : 4)
                if n > 8 {
                    guard n <= 64 else { throw fail("pickle integer of \(n) bytes at byte \(at) is too large") }
                    stack.append(.bigInt(Array(try take(n))))
                    continue
                }
                var v = try uint(n)
                if n > 0 && n < 8 && v & (1 << (8 * UInt64(n) - 1)) != 0 { v |= ~0 << (8 * UInt64(n)) }
                stack.append(.int(Int(Int64(bitPattern: v))))
            case UInt8(ascii: "G"):                                        // BINFLOAT (big-endian)
                var v: UInt64 = 0
                for b in try take(8) { v = v << 8 | UInt64(b) }
                stack.append(.float(Double(bitPattern: v)))
            case UInt8(ascii: "X"): stack.append(try string(try take(try length(4))))   // BINUNICODE
            case 0x8c: stack.append(try string(try take(try length(1))))                // SHORT_BINUNICODE
            case 0x8d: stack.append(try string(try take(try length(8))))                // BINUNICODE8
            case UInt8(ascii: "U"): stack.append(.bytes(Array(try take(try length(1))))) // SHORT_BINSTRING
            case UInt8(ascii: "T"): stack.append(.bytes(Array(try take(try length(4))))) // BINSTRING
            case UInt8(ascii: "C"): stack.append(.bytes(Array(try take(try length(1))))) // SHORT_BINBYTES
            case UInt8(ascii: "B"): stack.append(.bytes(Array(try take(try length(4))))) // BINBYTES
            case 0x8e: stack.append(.bytes(Array(try take(try length(8)))))             // BINBYTES8
            case UInt8(ascii: "q"): memo[Int(try uint(1))] = try top()     // BINPUT
            case UInt8(ascii: "r"): memo[Int(try uint(4))] = try top()     // LONG_BINPUT
            case 0x94: memo[memo.count] = try top()                        // MEMOIZE
            case UInt8(ascii: "h"), UInt8(ascii: "j"):                     // BINGET, LONG_BINGET
                let k = Int(try uint(op == UInt8(ascii: "h") ? 1 : 4))
                guard let v = memo[k] else { throw fail("pickle refers to memo \(k), which was never stored") }
                stack.append(v)
            case UInt8(ascii: "c"):                                        // GLOBAL
                let module = try line(), attribute = try line()
                stack.append(try global(module, attribute))
            case 0x93:                                                     // STACK_GLOBAL
                let attribute = try pop(), module = try pop()
                guard case .string(let a) = attribute, case .string(let m) = module else { throw fail("pickle STACK_GLOBAL without names") }
                stack.append(try global(m, a))
            case UInt8(ascii: "t"): stack.append(try tuple(try popMark()))    // TUPLE
            case 0x85: stack.append(try tuple([try pop()]))                   // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); stack.append(try tuple([a, b]))           // TUPLE2
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); stack.append(try tuple([a, b, c]))  // TUPLE3
            case UInt8(ascii: "l"):                                           // LIST
                let l = PickleList()
                try append(try popMark(), to: l)
                stack.append(.list(l))
            case UInt8(ascii: "d"):                                        // DICT
                let d = PickleDict()
                try add(pairs: try popMark(), to: d)
                stack.append(.dict(d))
            case UInt8(ascii: "a"):                                        // APPEND
                let v = try pop()
                guard case .list(let l) = try top() else { throw fail("pickle APPEND to \(try top().kind)") }
                try append([v], to: l)
            case UInt8(ascii: "e"):                                        // APPENDS
                let vs = try popMark()
                guard case .list(let l) = try top() else { throw fail("pickle APPENDS to \(try top().kind)") }
                try append(vs, to: l)
            case UInt8(ascii: "s"):                                        // SETITEM
                let v = try pop(), k = try pop()
                guard case .dict(let d) = try top() else { throw fail("pickle SETITEM on \(try top().kind)") }
                try add(pairs: [k, v], to: d)
            case UInt8(ascii: "u"):                                        // SETITEMS
                let kv = try popMark()
                guard case .dict(let d) = try top() else { throw fail("pickle SETITEMS on \(try top().kind)") }
                try add(pairs: kv, to: d)
            case UInt8(ascii: "R"):                                        // REDUCE
                let args = try pop(), callable = try pop()
                stack.append(try call(callable, args))
            case UInt8(ascii: "b"):                                        // BUILD: state for a dict (OrderedDict's _metadata)
                let state = try pop()
                switch (try top(), state) {
                case (.dict, .dict), (.dict, .none), (.tensor, _): break
                default: throw fail("pickle BUILD of \(try top().kind) with \(state.kind) at byte \(at)")
                }
            case UInt8(ascii: "Q"):                                        // BINPERSID
                stack.append(try persistentLoad(try pop()))
            default:
                throw fail("pickle opcode 0x\(String(op, radix: 16)) ('\(RestrictedUnpickler.opcodeName(op))') at byte \(at) is not one a state dict of tensors uses; refused")
            }
        }
    }

    /// The byte after the last STOP read (where the next pickle of the file starts).
    public var position: Int { pos }

    func top() throws -> PickleValue {
        guard let v = stack.last else { throw fail("pickle stack underflow at byte \(pos)") }
        return v
    }

    func add(pairs: [PickleValue], to d: PickleDict) throws {
        guard pairs.count % 2 == 0 else { throw fail("pickle dict items are not pairs") }
        for i in stride(from: 0, to: pairs.count, by: 2) { d.items.append((pairs[i], pairs[i + 1])) }
        d.depth = max(d.depth, 1 + (pairs.map(\.depth).max() ?? 0))
        guard d.depth <= RestrictedUnpickler.maxDepth else { throw fail("pickle nests deeper than \(RestrictedUnpickler.maxDepth)") }
    }

    func append(_ values: [PickleValue], to l: PickleList) throws {
        l.items += values
        l.depth = max(l.depth, 1 + (values.map(\.depth).max() ?? 0))
        guard l.depth <= RestrictedUnpickler.maxDepth else { throw fail("pickle nests deeper than \(RestrictedUnpickler.maxDepth)") }
    }

    func tuple(_ items: [PickleValue]) throws -> PickleValue {
        let t = PickleTuple(items)
        guard t.depth <= RestrictedUnpickler.maxDepth else { throw fail("pickle nests deeper than \(RestrictedUnpickler.maxDepth)") }
        return .tuple(t)
    }

    /// Evaluates an allow-listed callable on plain values.
    func call(_ callable: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case .global(let f) = callable, case .tuple(let t) = args else {
            throw fail("pickle REDUCE calls \(callable.kind), which is not callable here")
        }
        let a = t.items
        switch f {
        case "collections.OrderedDict":
            let d = PickleDict()
            if let first = a.first {
                guard case .list(let l) = first else { throw fail("OrderedDict built from \(first.kind)") }
                for item in l.items {
                    guard case .tuple(let kv) = item, kv.items.count == 2 else { throw fail("OrderedDict item is not a pair") }
                    try add(pairs: kv.items, to: d)
                }
            }
            return .dict(d)
        case "torch._utils._rebuild_tensor_v2":
            guard a.count >= 4, case .storage(let s) = a[0], case .int(let offset) = a[1],
                  case .tuple(let sizeTuple) = a[2], case .tuple(let strideTuple) = a[3] else {
                throw fail("_rebuild_tensor_v2 with arguments it does not take")
            }
            func ints(_ v: [PickleValue]) throws -> [Int] {
                try v.map { guard case .int(let i) = $0 else { throw fail("tensor size or stride is not an integer") }; return i }
            }
            return .tensor(TensorRef(storage: s, offset: offset, shape: try ints(sizeTuple.items), stride: try ints(strideTuple.items)))
        case "torch._utils._rebuild_parameter":
            guard let t = a.first, case .tensor = t else { throw fail("_rebuild_parameter without a tensor") }
            return t
        default:
            throw fail("pickle calls '\(f)', which builds nothing a state dict needs; refused (nothing was run)")
        }
    }

    static func opcodeName(_ op: UInt8) -> String {
        switch op {
        case UInt8(ascii: "i"): return "INST"
        case UInt8(ascii: "o"): return "OBJ"
        case 0x81: return "NEWOBJ"
        case 0x92: return "NEWOBJ_EX"
        case 0x82, 0x83, 0x84: return "EXT"
        case UInt8(ascii: "P"): return "PERSID"
        case UInt8(ascii: "I"), UInt8(ascii: "L"), UInt8(ascii: "F"), UInt8(ascii: "S"), UInt8(ascii: "V"),
             UInt8(ascii: "p"), UInt8(ascii: "g"): return "protocol 0 text opcode"
        case 0x8f, 0x90, 0x91: return "set"
        case 0x96, 0x97, 0x98: return "out-of-band buffer"
        default: return "unknown"
        }
    }
}
