// ld-fuzz: a structure-aware fuzzer of the five tools' loading paths (`make fuzz`).
//
// libFuzzer (fuzz/run.sh) mutates bytes, so nearly every input it makes fails a checksum; this one makes
// streams whose framing is valid (CRCs, record count and chained end hash are right, written by
// `StreamForge`) and whose *content* is hostile: header fields (counts, shapes, class names, the model's
// configuration, normalisation) replaced by huge, negative, fractional, non-finite-looking, wrongly
// typed or enormous values; record fields overwritten at their offsets with extreme integers and floats
// (NaN, infinities, 2^31, 2^63); records dropped, repeated, reordered; streams concatenated with
// others. Each forged file goes to a tool that loads that kind (a model to ld-squeeze --eval-only,
// ld-recover, ld-relabel and ld-train; a label stream to ld-train and ld-prune; an image set to
// ld-train, ld-prune, ld-squeeze and ld-relabel; scores to ld-prune), run as a child process under an
// address-space limit and a time limit.
//
// A finding is any run that does not end with status 0, 1 or 64 (a signal is a trap or a crash, 124 a
// hang, an allocation beyond the limit shows as a trap), or that fails without exactly one line on
// stderr of at most 600 characters. Findings are saved (forged file and command) under the work folder
// and make the exit status 1.
//
// Usage: ld-fuzz [--seconds S] [--seed N] [--memory-mb M] [--work DIR]   (tools are found next to it)
import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

struct Options {
    var seconds = 120.0
    var seed: UInt64 = 1
    var memoryMB = 4096
    var work = NSTemporaryDirectory() + "ld-fuzz-\(getpid())"
    var keep = false

    init(_ args: [String]) {
        var i = 0
        func value() -> String {
            i += 1
            guard i < args.count else { fail("\(args[i - 1]) needs a value") }
            return args[i]
        }
        while i < args.count {
            switch args[i] {
            case "--seconds": seconds = Double(value()) ?? seconds
            case "--seed": seed = UInt64(value()) ?? seed
            case "--memory-mb": memoryMB = Int(value()) ?? memoryMB
            case "--work": work = value(); keep = true
            case "-h", "--help":
                print("usage: ld-fuzz [--seconds S (120)] [--seed N (1)] [--memory-mb M (4096)] [--work DIR]")
                exit(0)
            default: fail("unknown argument \(args[i])")
            }
            i += 1
        }
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("ld-fuzz: \(message)\n".utf8))
    exit(64)
}

/// The tools, next to this executable.
let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path

struct Outcome {
    var status: Int32
    var signaled: Bool
    var err: String
}

/// Runs a tool in `dir` under `ulimit -v` and `timeout`, stdout discarded.
func runTool(_ tool: String, _ args: [String], in dir: String, memoryMB: Int, seconds: Int = 30) -> Outcome {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    let quoted = ([binDir + "/" + tool] + args).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
    p.arguments = ["-c", "ulimit -v \(memoryMB * 1024); exec timeout -s KILL \(seconds) \(quoted)"]
    p.currentDirectoryURL = URL(fileURLWithPath: dir)
    var env = ProcessInfo.processInfo.environment
    env["SWIFT_BACKTRACE"] = "enable=no"
    p.environment = env
    let err = Pipe()
    p.standardError = err
    p.standardOutput = FileHandle.nullDevice
    p.standardInput = FileHandle.nullDevice
    do { try p.run() } catch { fail("cannot run \(tool): \(error)") }
    let data = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Outcome(status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal,
                   err: String(decoding: data, as: UTF8.self))
}

// MARK: - Hostile values

/// Values a header field is set to: huge, negative, fractional, zero, the wrong type, enormous.
func hostileJSON(_ rng: inout LDRandom) -> JSONValue {
    let choices: [JSONValue] = [
        .int(0), .int(-1), .int(1), .int(2), .int(1 << 31), .int(1 << 40), .int(Int64.max), .int(Int64.min),
        .double(4.611686018427388e18), .double(1e308), .double(-1e308), .double(0.5), .double(1e-300), .double(1e9),
        .string(""), .string("x"), .string(String(repeating: "A", count: 100_000)), .bool(true), .null,
        .array([]), .array([.int(0)]), .array([.double(1e308), .int(-1)]),
        .array((0..<100_000).map { .int(Int64($0)) }), .object([:]), .object(["a": .int(1)]),
    ]
    return choices[rng.int(in: 0..<choices.count)]
}

/// An integer or float bit pattern written over a record field.
func hostileBytes(width: Int, _ rng: inout LDRandom) -> [UInt8] {
    let patterns64: [UInt64] = [0, 1, UInt64.max, 1 << 31, 1 << 32, 1 << 62, 1 << 63, 0x7FFF_FFFF, 0xFFFF,
                                UInt64(Float.nan.bitPattern), UInt64(Float.infinity.bitPattern),
                                UInt64((-Float.infinity).bitPattern), UInt64(Float(1e30).bitPattern),
                                Double.nan.bitPattern, UInt64(Float16.nan.bitPattern) | UInt64(Float16.infinity.bitPattern) << 16]
    var v = patterns64[rng.int(in: 0..<patterns64.count)]
    if rng.int(in: 0..<4) == 0 { v = rng.next() }
    return (0..<width).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) }
}

/// Every path to a leaf in a JSON object (`config.width`), for header mutations.
func leafPaths(_ v: JSONValue, prefix: [String] = []) -> [[String]] {
    guard case .object(let o) = v else { return [prefix] }
    var out: [[String]] = prefix.isEmpty ? [] : [prefix]
    for (k, child) in o { out += leafPaths(child, prefix: prefix + [k]) }
    return out
}

func setting(_ v: JSONValue, _ path: [String], to new: JSONValue?) -> JSONValue {
    guard let key = path.first else { return new ?? .null }
    guard case .object(var o) = v else { return v }
    if path.count == 1 { o[key] = new } else { o[key] = setting(o[key] ?? .object([:]), Array(path.dropFirst()), to: new) }
    return .object(o)
}

// MARK: - Forging

struct Forger {
    var rng: LDRandom
    let dir: String

    /// A forged copy of `base` at `out`; returns a one-line description of what was done.
    mutating func forge(_ base: String, _ out: String, others: [String]) throws -> String {
        var described: [String] = []
        let headerEdits = rng.int(in: 0..<3), recordEdits = rng.int(in: 0..<4)
        var headerPlan: [([String], JSONValue?)] = []
        var topPlan: [(String, Int)] = []
        // Header: meta leaves (config fields included), classes and shape.
        let probe = try StreamReader(path: dir + "/" + base)
        let metaPaths = leafPaths(.object(probe.header.meta))
        for _ in 0..<headerEdits {
            switch rng.int(in: 0..<6) {
            case 0: topPlan.append(("classes", [0, -1, 1, 5, 1 << 24, Int(Int32.max)][rng.int(in: 0..<6)]))
            case 1: topPlan.append(("shape", rng.int(in: 0..<6)))
            default:
                guard !metaPaths.isEmpty else { continue }
                let path = metaPaths[rng.int(in: 0..<metaPaths.count)]
                headerPlan.append((path, rng.int(in: 0..<8) == 0 ? nil : hostileJSON(&rng)))
            }
        }
        for (p, v) in headerPlan { described.append("meta.\(p.joined(separator: "."))=\(v.map { String($0.serialized.prefix(40)) } ?? "removed")") }
        for (k, v) in topPlan { described.append("\(k)~\(v)") }
        // Records: overwrite a field, drop, repeat or swap.
        var recordPlan: [(index: Int, action: Int, offset: Int, bytes: [UInt8])] = []
        for _ in 0..<recordEdits {
            let index = rng.int(in: 0..<16), action = rng.int(in: 0..<8)
            let width = [1, 2, 4, 8][rng.int(in: 0..<4)]
            recordPlan.append((index, action, rng.int(in: 0..<4096), hostileBytes(width: width, &rng)))
        }
        var swapped: [UInt8]? = nil
        var n = 0
        let sink = try OutputFile(path: dir + "/" + out)
        try StreamForge.rewrite(dir + "/" + base, to: sink, header: { h in
            var meta = JSONValue.object(h.meta)
            for (p, v) in headerPlan { meta = setting(meta, p, to: v) }
            if case .object(let o) = meta { h.meta = o }
            for (k, v) in topPlan {
                if k == "classes" { h.classes = v }
                else { h.shape = [[], [1], [1, 8, 8], [3, 8, 8], [1, 1 << 20, 1 << 20], [1, 0, 8], [1, 8, 8, 8]][v] }
            }
        }, record: { r in
            defer { n += 1 }
            var payload = r.payload
            for p in recordPlan where p.index == n {
                switch p.action {
                case 0: return nil                                   // dropped
                case 1: swapped = payload; return nil                // moved after the next record
                case 2: if let s = swapped { payload = s }           // replaced by an earlier one (a duplicate)
                default:
                    guard !payload.isEmpty else { continue }
                    let at = p.offset % payload.count
                    for (j, b) in p.bytes.enumerated() where at + j < payload.count { payload[at + j] = b }
                }
            }
            return payload
        })
        for p in recordPlan {
            described.append("record \(p.index) " + (p.action < 3 ? ["dropped", "moved", "replaced by the moved one"][p.action] : "bytes at \(p.offset) = \(p.bytes)"))
        }
        // Sometimes another stream is appended (a cat of unrelated or reordered streams).
        if rng.int(in: 0..<6) == 0, !others.isEmpty {
            let other = others[rng.int(in: 0..<others.count)]
            let a = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + out)), b = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + other))
            try (rng.int(in: 0..<2) == 0 ? a + b : b + a).write(to: URL(fileURLWithPath: dir + "/" + out))
            described.append("concatenated with \(other)")
        }
        return described.isEmpty ? "unchanged" : described.joined(separator: "; ")
    }
}

// MARK: - Main

let options = Options(Array(CommandLine.arguments.dropFirst()))
let dir = options.work
try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
defer { if !options.keep { try? FileManager.default.removeItem(atPath: dir) } }

// Base inputs: 4 classes of 8x8 striped images, a width-4 teacher with class statistics and scores, a
// label stream, recovered images.
do {
    var rng = LDRandom(seed: 5, stage: .test)
    var pixels: [UInt8] = [], labels: [Int32] = []
    for i in 0..<16 {
        labels.append(Int32(i % 4))
        for y in 0..<8 { for x in 0..<8 { pixels.append(UInt8(40 + 160 * (((i % 2 == 0 ? y : x) / (1 + (i % 4) / 2)) % 2) + Int(rng.int(in: 0..<40)))) } }
    }
    let data = Dataset(pixels: pixels, labels: labels, classes: 4, channels: 1, height: 8, width: 8, mean: [0.5], std: [0.3],
                       classNames: ["a", "b", "c", "d"], source: "fuzz")
    try data.writeStream(path: dir + "/images.ldi", producer: "ld-fuzz")
} catch { fail("cannot write the base images: \(error)") }
let setup: [(String, [String])] = [
    ("ld-squeeze", ["--data", "images.ldi", "--width", "4", "--depth", "2", "--epochs", "2", "--batch-size", "8", "--class-stats",
                    "--scores", "scores.lds", "-o", "teacher.ldm", "--metrics", "/dev/null"]),
    ("ld-relabel", ["--teacher", "teacher.ldm", "--data", "images.ldi", "--epochs", "2", "--batch-size", "4", "-o", "labels.ldl"]),
    ("ld-recover", ["--teacher", "teacher.ldm", "--method", "lpld", "--ipc", "2", "--iterations", "2", "-o", "syn.ldi"]),
]
for (tool, args) in setup {
    let r = runTool(tool, args + ["-q", "--threads", "1"], in: dir, memoryMB: options.memoryMB)
    if r.status != 0 { fail("setup \(tool) failed: \(r.err)") }
}

/// The commands that load each kind of stream; `F` is the forged file.
let commands: [String: [(String, [String])]] = [
    "teacher.ldm": [
        ("ld-squeeze", ["--eval-only", "F", "--val", "images.ldi"]),
        ("ld-recover", ["--teacher", "F", "--method", "lpld", "--ipc", "1", "--iterations", "1", "-o", "out.ldi"]),
        ("ld-relabel", ["--teacher", "F", "--data", "images.ldi", "--epochs", "1", "--batch-size", "4", "-o", "out.ldl"]),
        ("ld-train", ["--data", "images.ldi", "--teacher", "F", "--val", "images.ldi", "--width", "4", "--epochs", "1"]),
        ("ld-prune", ["--dump", "F"]),
    ],
    "labels.ldl": [
        ("ld-train", ["--data", "images.ldi", "--labels", "F", "--val", "images.ldi", "--width", "4"]),
        ("ld-train", ["--data", "images.ldi", "--labels", "F", "--val", "images.ldi", "--width", "4", "--pool-sampling", "with-replacement", "--epochs", "2"]),
        ("ld-prune", ["F", "--ratio", "2", "--data", "images.ldi", "-o", "out.ldl"]),
        ("ld-prune", ["F", "--ratio", "2", "--rule", "margin", "-o", "out.ldl"]),
        ("ld-prune", ["--dump", "F"]),
    ],
    "images.ldi": [
        ("ld-train", ["--data", "F", "--hard", "--val", "images.ldi", "--width", "4", "--epochs", "1"]),
        ("ld-prune", ["--data", "F", "--ipc", "1", "-o", "out.ldi"]),
        ("ld-squeeze", ["--data", "F", "--width", "4", "--epochs", "1", "-o", "out.ldm", "--metrics", "/dev/null"]),
        ("ld-relabel", ["--teacher", "teacher.ldm", "--data", "F", "--epochs", "1", "--batch-size", "4", "-o", "out.ldl"]),
    ],
    "syn.ldi": [
        ("ld-train", ["--data", "F", "--teacher", "teacher.ldm", "--val", "images.ldi", "--width", "4", "--epochs", "1"]),
    ],
    "scores.lds": [
        ("ld-prune", ["--data", "images.ldi", "--scores", "F", "--select", "el2n", "--ipc", "1", "-o", "out.ldi"]),
        ("ld-prune", ["--data", "images.ldi", "--scores", "F", "--select", "ccs", "--ipc", "1", "-o", "out.ldi"]),
    ],
]
let bases = commands.keys.sorted()

var forger = Forger(rng: LDRandom(seed: options.seed, stage: .test), dir: dir)
let start = Date()
var executions = 0, findings = 0, refused = 0
var perTool: [String: Int] = [:]
let findingsDir = dir + "/findings"
while Date().timeIntervalSince(start) < options.seconds {
    let base = bases[forger.rng.int(in: 0..<bases.count)]
    let forged = "forged." + (base as NSString).pathExtension
    let what: String
    do { what = try forger.forge(base, forged, others: bases.filter { $0 != base } + [base]) } catch {
        continue  // the forger's own refusals (an edit that cannot be framed) are not findings
    }
    let list = commands[base]!
    let (tool, template) = list[forger.rng.int(in: 0..<list.count)]
    let args = template.map { $0 == "F" ? forged : $0 } + ["-q", "--threads", "1"]
    for f in ["out.ldi", "out.ldl", "out.ldm"] { try? FileManager.default.removeItem(atPath: dir + "/" + f) }
    let r = runTool(tool, args, in: dir, memoryMB: options.memoryMB)
    executions += 1
    perTool[tool, default: 0] += 1
    let lines = r.err.split(separator: "\n", omittingEmptySubsequences: true)
    var problem: String? = nil
    if r.signaled || ![0, 1, 64].contains(r.status) {
        problem = r.status == 9 || r.status == 137 ? "killed (hang or memory)" : "status \(r.status)\(r.signaled ? " (signal)" : "")"
    } else if r.status != 0 && (lines.count != 1 || lines[0].count > 600) {
        problem = "\(lines.count) stderr lines, the first \(lines.first?.count ?? 0) characters"
    }
    if r.status != 0 { refused += 1 }
    if let problem {
        findings += 1
        try? FileManager.default.createDirectory(atPath: findingsDir, withIntermediateDirectories: true)
        let stem = findingsDir + "/\(findings)"
        try? FileManager.default.copyItem(atPath: dir + "/" + forged, toPath: stem + "-" + forged)
        let report = "\(problem)\n\(tool) \(args.joined(separator: " "))\nforged from \(base): \(what)\n\(r.err.prefix(4000))\n"
        try? report.write(toFile: stem + ".txt", atomically: true, encoding: .utf8)
        FileHandle.standardError.write(Data("ld-fuzz: finding \(findings): \(problem): \(tool) on \(base) (\(what.prefix(200)))\n".utf8))
    }
}
var usage = rusage()
getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &usage)
let peakMB = Double(usage.ru_maxrss) / 1024
let tools = perTool.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
print("ld-fuzz: \(executions) executions in \(Int(Date().timeIntervalSince(start))) s (\(tools)); \(refused) refused with one line, \(executions - refused - findings) accepted; peak child memory \(Int(peakMB)) MB (limit \(options.memoryMB) MB); \(findings) findings\(findings > 0 ? " in \(findingsDir)" : "")")
if findings > 0 { exit(1) }  // the work folder, findings included, stays
