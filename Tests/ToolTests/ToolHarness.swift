import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import XCTest

/// Base class of the tool tests: runs the built executables in a scratch folder and compares outputs with
/// golden files.
///
/// Golden files live in `Tests/Golden/<tool>/<case>/`. They are made with fixed seeds and `--threads 1`;
/// `make golden-update` (LD_GOLDEN_UPDATE=1) rewrites them from the current build, after which the diff is
/// reviewed and committed.
class ToolTestCase: XCTestCase {
    /// A scratch folder, removed after each test.
    var dir = ""

    /// Golden files are made with OpenBLAS's portable SSE3 kernels (see `Engine.selectKernels`): pinned here
    /// for the fixtures built in this process and, through the environment, for the tools it runs.
    override class func setUp() {
        super.setUp()
        Engine.selectKernels("Prescott")
    }

    override func setUp() {
        dir = NSTemporaryDirectory() + "ld-tooltest-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// `dir/name`.
    func path(_ name: String) -> String { dir + "/" + name }

    /// The built executable `name`: the .xctest sits in the products folder next to the executables.
    func binary(_ name: String) throws -> String {
        var candidates = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
                          Bundle(for: ToolTestCase.self).bundleURL.deletingLastPathComponent(),
                          Bundle.main.bundleURL]
        if let p = Bundle.main.executableURL { candidates.append(p.deletingLastPathComponent()) }
        for c in candidates {
            let p = c.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        throw XCTSkip("\(name) not built next to the test bundle")
    }

    struct Result {
        var status: Int32
        var out: Data
        var err: String
        var stdout: String { String(decoding: out, as: UTF8.self) }
    }

    /// Runs tool `name` (or, for a name with a `/`, that executable) with `args` in the scratch folder.
    /// stdin is `stdinPath`'s content, or empty.
    @discardableResult
    func run(_ name: String, _ args: [String], stdinPath: String? = nil, env: [String: String] = [:]) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: name.contains("/") ? name : try binary(name))
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        var e = ProcessInfo.processInfo.environment
        e.removeValue(forKey: "LD_FAKE_TTY")
        for (k, v) in env { e[k] = v }
        p.environment = e
        return try launch(p, stdin: stdinPath.flatMap { FileHandle(forReadingAtPath: $0) })
    }

    private final class Collected: @unchecked Sendable { var data = Data() }

    /// Runs `p` to completion, collecting stdout and stderr (stderr on another thread, so neither pipe can
    /// fill up and block the child).
    private func launch(_ p: Process, stdin: FileHandle?) throws -> Result {
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        // Without a file, stdin is an empty pipe whose write end is closed at once: a tool that reads stdin
        // sees end of input instead of waiting for a writer that never comes.
        let empty = Pipe()
        p.standardInput = stdin ?? empty
        try p.run()
        if stdin == nil { try empty.fileHandleForWriting.close() }
        let errData = Collected()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errData.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, out: o, err: String(decoding: errData.data, as: UTF8.self))
    }

    /// Runs a shell pipeline (`bash -o pipefail -c`) in the scratch folder with the products folder first on
    /// PATH, so the tools are called by name.
    @discardableResult
    func shell(_ script: String) throws -> Result {
        let tools = URL(fileURLWithPath: try binary("ld-prune")).deletingLastPathComponent().path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-o", "pipefail", "-c", script]
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        var e = ProcessInfo.processInfo.environment
        e["PATH"] = tools + ":" + (e["PATH"] ?? "/usr/bin:/bin")
        p.environment = e
        return try launch(p, stdin: nil)
    }

    /// Asserts that a failed run printed exactly one line on stderr, naming `mentioning`, and nothing on stdout.
    func assertOneLineError(_ r: Result, mentioning: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNotEqual(r.status, 0, "expected failure", file: file, line: line)
        let lines = r.err.split(separator: "\n", omittingEmptySubsequences: true)
        XCTAssertEqual(lines.count, 1, "stderr: \(r.err)", file: file, line: line)
        XCTAssertTrue(r.err.contains(mentioning), "stderr \(r.err) does not mention \(mentioning)", file: file, line: line)
        XCTAssertTrue(r.out.isEmpty, "stdout not empty on failure", file: file, line: line)
    }

    // MARK: - Golden files

    /// `Tests/Golden`.
    static let goldenRoot: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Golden").path
    }()

    /// Compares `actual` with `Tests/Golden/<tool>/<name>` byte for byte, or rewrites it when LD_GOLDEN_UPDATE
    /// is set.
    func assertGolden(_ actual: Data, _ tool: String, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let p = ToolTestCase.goldenRoot + "/" + tool + "/" + name
        if ProcessInfo.processInfo.environment["LD_GOLDEN_UPDATE"] != nil {
            try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try actual.write(to: URL(fileURLWithPath: p))
            return
        }
        guard let expected = FileManager.default.contents(atPath: p) else {
            XCTFail("golden file \(p) is missing: run `make golden-update`", file: file, line: line)
            return
        }
        if expected != actual {
            let firstDiff = zip(expected, actual).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(expected.count, actual.count)
            XCTFail("\(tool)/\(name) differs from its golden file (\(actual.count) vs \(expected.count) bytes, first difference at byte \(firstDiff)); if the change is intended run `make golden-update` and review the diff", file: file, line: line)
        }
    }

    /// Compares the file at `path` with a golden file.
    func assertGoldenFile(_ path: String, _ tool: String, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            XCTFail("\(path) was not written", file: file, line: line)
            return
        }
        try assertGolden(data, tool, name, file: file, line: line)
    }
}

/// Small deterministic inputs shared by the tools' tests: built in-process from fixed seeds, so each tool's
/// golden files depend on that tool alone.
enum ToolFixtures {
    /// `classes` classes of `perClass` 1x`size`x`size` images with class-dependent stripes plus noise.
    static func tinyImages(classes: Int = 2, perClass: Int = 10, size: Int = 8, seed: UInt64 = 5) -> Dataset {
        var rng = LDRandom(seed: seed, stage: .test)
        var pixels: [UInt8] = [], labels: [Int32] = []
        for i in 0..<classes * perClass {
            let k = i % classes
            labels.append(Int32(k))
            for y in 0..<size {
                for x in 0..<size {
                    let stripe = k % 2 == 0 ? (y / (1 + k / 2)) % 2 : (x / (1 + k / 2)) % 2
                    let v = 40 + 160 * stripe + Int(rng.int(in: 0..<40))
                    pixels.append(UInt8(min(255, v)))
                }
            }
        }
        return Dataset(pixels: pixels, labels: labels, classes: classes, channels: 1, height: size, width: size,
                       mean: [0.5], std: [0.3], classNames: (0..<classes).map { "c\($0)" }, source: "tiny")
    }

    /// A tiny convnet teacher (width 4, depth 2) for `data`, from a fixed seed, with a few SGD steps so its
    /// predictions are not uniform, and exact per-class BN statistics. Written to `path`.
    @discardableResult
    static func tinyTeacher(for data: Dataset, path: String, seed: UInt64 = 3, steps: Int = 20) throws -> ModelFile {
        Engine.threads = 1
        var rng = LDRandom(seed: seed, stage: .weightInit)
        let model = try Model(.convnet(width: 4, depth: 2, channels: data.channels, imageSize: data.height,
                                       classes: data.classes), rng: &rng)
        let norm = Normalization(of: data)
        let loader = try BatchLoader(data: data, normalization: norm)
        let sgd = SGD(model.parameters, learningRate: 0.05, momentum: 0.9)
        let all = Array(0..<data.count)
        let dLogits = Tensor(shape: [0])
        for _ in 0..<steps {
            let x = try loader.load(all)
            model.training = true
            model.zeroGrad()
            let logits = model.forward(x)
            dLogits.reshape(logits.shape)
            _ = try CrossEntropy.loss(logits: logits, labels: loader.labels, dLogits: dLogits)
            model.backward(dLogits)
            sgd.step()
        }
        model.training = false
        let x = try loader.load(all)
        loader.labels.withUnsafeBufferPointer { _ = model.forward(x, classLabels: $0.baseAddress!) }
        var file = ModelFile(model: model, mean: data.mean, std: data.std, classNames: data.classNames)
        try file.save(path: path, producer: "test", seed: seed)
        return file
    }
}
