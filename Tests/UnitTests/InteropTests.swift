import Foundation
import XCTest
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDInterop

/// PyTorch interchange: the fixtures PyTorch wrote (Fixtures/Interop, made by make_fixtures.py there) give the
/// logits PyTorch computed; export then import is bit-identical; bad files are refused with one line.
final class InteropTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/Interop").path

    func fixture(_ name: String) -> String { InteropTests.fixtures + "/" + name }

    func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "ld-interop-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// The fixtures' inputs: x[j] = float32(1.5 sin(0.013 j + 0.5)) over the NCHW batch.
    static func inputs(_ n: Int, _ c: Int, _ size: Int) -> Tensor {
        let count = n * c * size * size
        return Tensor(shape: [n, c, size, size], values: (0..<count).map { Float(1.5 * sin(0.013 * Double($0) + 0.5)) })
    }

    static let reference: [String: [[Double]]] = {
        let data = try! Data(contentsOf: URL(fileURLWithPath: fixtures + "/reference.json"))
        let object = try! JSONSerialization.jsonObject(with: data) as! [String: Any]
        return object.compactMapValues { $0 as? [[Double]] }
    }()

    func settings(for name: String) -> ImportSettings {
        if name.hasPrefix("convnet") { return ImportSettings(mean: [0.5], std: [0.25]) }
        return ImportSettings(preset: name.contains("imagenet") ? "imagenet" : "cifar10",
                              imageSize: name.contains("imagenet") ? 64 : 32)
    }

    /// max |ld - torch| / max |torch| over the batch, for `predict` and eval-mode `forward`.
    func relativeError(_ file: ModelFile, _ name: String) throws -> Double {
        let c = file.model.config
        let ref = try XCTUnwrap(InteropTests.reference[name], name)
        let x = InteropTests.inputs(ref.count, c.channels, c.imageSize)
        let scale = ref.joined().map(abs).max()!
        var worst = 0.0
        file.model.training = false
        for logits in [file.model.predict(x).array, file.model.forward(x).array] {
            XCTAssertEqual(logits.count, ref.count * c.classes)
            for (a, b) in zip(logits, ref.joined()) { worst = max(worst, abs(Double(a) - b) / scale) }
        }
        return worst
    }

    // MARK: - PyTorch's logits

    func testLogitsMatchPyTorchForEveryFixture() throws {
        let files = ["convnet.safetensors", "convnet.pt", "convnet_ckpt.pt", "convnet_deflated.pt", "convnet_legacy.pt", "convnet_f16.safetensors",
                     "convnet_bf16.safetensors", "convnet_bf16.pt", "resnet18_small.pt", "resnet18_imagenet.pt"]
        for name in files {
            let (file, notes) = try PyTorchFile.importModel(path: fixture(name), settings: settings(for: name))
            let error = try relativeError(file, name)
            print("interop: \(name): \(file.model.config.summary), max |ld - torch| / max |torch| = \(String(format: "%.2e", error))")
            XCTAssertLessThan(error, 1e-4, name)
            XCTAssertTrue(notes[0].contains(file.model.config.summary), notes[0])
        }
    }

    func testArchitectureIsInferredFromNamesAndShapes() throws {
        let convnet = try PyTorchFile.importModel(path: fixture("convnet.pt"), settings: ImportSettings(preset: "fmnist")).file
        XCTAssertEqual(convnet.model.config, .convnet(width: 8, depth: 2, channels: 1, imageSize: 28, classes: 10))
        XCTAssertEqual(convnet.classNames, Dataset.fashionMNISTClassNames)
        XCTAssertEqual(convnet.mean, [0.2860])
        let small = try PyTorchFile.importModel(path: fixture("resnet18_small.pt"), settings: ImportSettings(preset: "cifar10")).file
        XCTAssertEqual(small.model.config, .resnet18(channels: 3, imageSize: 32, classes: 10, stem: "small"))
        let big = try PyTorchFile.importModel(path: fixture("resnet18_imagenet.pt"),
                                              settings: ImportSettings(preset: "imagenet", classNames: (0..<10).map { "c\($0)" })).file
        XCTAssertEqual(big.model.config, .resnet18(channels: 3, imageSize: 224, classes: 10, stem: "imagenet"))
        XCTAssertEqual(big.std, [0.229, 0.224, 0.225])
        XCTAssertEqual(big.classNames[9], "c9")
        // Bottleneck ResNets by their blocks per stage (names only: no ld metadata to go by).
        for (arch, stem, m) in [("resnet50", "imagenet", nil), ("resnet101", "small", nil), ("vgg11", "small", nil), ("vgg11", "imagenet", nil),
                                ("mobilenetv2", "small", nil), ("mobilenetv2", "small", 0.5), ("efficientnet-b0", "small", nil)] as [(String, String, Double?)] {
            var rng = LDRandom(seed: 1, stage: .weightInit)
            let config = try ModelConfig.named(arch, width: 64, depth: 3, stem: stem, channels: 3, imageSize: 64, classes: 6, widthMultiplier: m)
            let model = try Model(config, rng: &rng)
            let state = TorchvisionNames.stateDict(of: model)
            XCTAssertEqual(try TorchvisionNames.infer(state, name: arch, imageSize: 64).config, config)
            // and the weights come back where they were
            let back = try TorchvisionNames.model(config, from: state, name: arch)
            XCTAssertTrue(zip(model.parameters, back.parameters).allSatisfy { $0.value.array == $1.value.array }, arch)
        }
    }

    /// ld's export has exactly the names and shapes PyTorch saved for the same architecture (what
    /// `load_state_dict(strict=True)` checks), num_batches_tracked as int64.
    func testExportedNamesAndShapesAreTorchvisions() throws {
        for name in ["convnet.pt", "resnet18_small.pt", "resnet18_imagenet.pt"] {
            let torch = try PyTorchFile.read(path: fixture(name)).state
            let file = try PyTorchFile.importModel(path: fixture(name), settings: settings(for: name)).file
            let ours = TorchvisionNames.stateDict(of: file.model)
            XCTAssertEqual(ours.names, torch.names, name)
            for n in torch.names {
                XCTAssertEqual(ours[n]!.shape, torch[n]!.shape, n)
                XCTAssertEqual(ours[n]!.dtype, n.hasSuffix("num_batches_tracked") ? .i64 : .f32, n)
                XCTAssertEqual(torch[n]!.dtype, n.hasSuffix("num_batches_tracked") ? .i64 : .f32, n)
            }
        }
    }

    // MARK: - Round trips

    func assertBitIdentical(_ a: ModelFile, _ b: ModelFile, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.model.config, b.model.config, file: file, line: line)
        XCTAssertEqual(a.mean.map(\.bitPattern), b.mean.map(\.bitPattern), file: file, line: line)
        XCTAssertEqual(a.std.map(\.bitPattern), b.std.map(\.bitPattern), file: file, line: line)
        XCTAssertEqual(a.classNames, b.classNames, file: file, line: line)
        XCTAssertEqual(a.info, b.info, file: file, line: line)
        let ta = a.model.parameters.map(\.value) + a.model.buffers.map(\.tensor)
        let tb = b.model.parameters.map(\.value) + b.model.buffers.map(\.tensor)
        XCTAssertEqual(ta.count, tb.count, file: file, line: line)
        for (x, y) in zip(ta, tb) {
            XCTAssertEqual(x.shape, y.shape, file: file, line: line)
            XCTAssertEqual(x.array.map(\.bitPattern), y.array.map(\.bitPattern), file: file, line: line)
        }
    }

    func testExportThenImportIsBitIdentical() throws {
        let dir = try tempDir()
        var rng = LDRandom(seed: 3, stage: .weightInit)
        let fresh = try Model(.resnet18(channels: 3, imageSize: 32, classes: 7, stem: "imagenet"), rng: &rng)
        for bn in fresh.batchNorms {
            for (_, t) in bn.buffers { for i in 0..<t.count { t.data[i] = 0.5 + Float(i % 7) / 9 } }
        }
        let models: [ModelFile] = [
            try PyTorchFile.importModel(path: fixture("convnet_ckpt.pt"), settings: ImportSettings(preset: "fmnist")).file,
            try PyTorchFile.importModel(path: fixture("resnet18_small.pt"), settings: ImportSettings(preset: "cifar10")).file,
            ModelFile(model: fresh, mean: [0.1, 0.2, 0.3], std: [0.3, 0.2, 0.1], classNames: ["a", "b", "c", "d", "e", "f", "g \"quoted\""],
                      info: ["epochs": .int(3), "accuracy": .number(0.75)]),
        ]
        for (i, original) in models.enumerated() {
            let path = dir + "/m\(i).safetensors"
            try PyTorchFile.export(original, to: path, producer: "test")
            let back = try PyTorchFile.importModel(path: path, settings: ImportSettings()).file
            XCTAssertEqual(back.model.config, original.model.config)
            assertBitIdentical(original, back)
            XCTAssertEqual(try PyTorchFile.exportBytes(back, producer: "test"), try Files.readFile(path), "export is a fixed point")
            // and through an ld model file
            var saved = back
            try saved.save(path: dir + "/m\(i).ldm", producer: "test")
            assertBitIdentical(original, try ModelFile.load(path: dir + "/m\(i).ldm"))
        }
    }

    func testSafetensorsMetadataSaysWhatTheModelIs() throws {
        let file = try PyTorchFile.importModel(path: fixture("resnet18_small.pt"), settings: ImportSettings(preset: "cifar10")).file
        let bytes = try PyTorchFile.exportBytes(file, producer: "test")
        let (state, metadata) = try Safetensors.read(bytes, name: "x")
        XCTAssertEqual(state.count, 122)
        XCTAssertEqual(metadata["architecture"], "resnet18")
        XCTAssertEqual(metadata["stem"], "small")
        XCTAssertEqual(metadata["input_size"], "[3,32,32]")
        XCTAssertEqual(metadata["mean"], "[0.4914,0.4822,0.4465]")
        XCTAssertEqual(metadata["class_names"]?.hasPrefix("[\"airplane\",\"automobile\""), true)
        XCTAssertEqual(state["bn1.num_batches_tracked"], ForeignTensor(dtype: .i64, shape: [], values: [0]))
        let (_, n) = bytes.withUnsafeBytes { ($0, Int($0.loadUnaligned(as: UInt64.self))) }
        XCTAssertEqual((8 + n) % 8, 0, "the buffer starts aligned")
    }

    func testHalfPrecisionConversions() throws {
        let values: [Float] = [0, -0, 1, -2.5, 65504, 6.1035156e-05, 5.9604645e-08, .infinity, 0.333251953125]
        for dtype in [ForeignDType.f16, .bf16, .f32, .f64] {
            let t = ForeignTensor(dtype: dtype, shape: [values.count], values: values)
            let back = try Safetensors.read(Safetensors.encode(try StateDict([("t", t)]), metadata: [:]), name: "x").state["t"]!
            for (a, b) in zip(values, back.values) {
                let expected: Float = dtype == .f16 ? Float(Float16(a)) : dtype == .bf16 ? Float(bitPattern: (a.bitPattern &+ 0x7FFF &+ ((a.bitPattern >> 16) & 1)) & 0xFFFF_0000) : a
                XCTAssertEqual(b.bitPattern, expected.bitPattern, "\(dtype) \(a)")
            }
        }
    }

    /// Strides and storage offsets are honoured, overlapping ones included; a view past its storage is refused.
    func testStridedViewsAreHonouredOrRefused() throws {
        var storage = [UInt8]()
        for i in 0..<12 { withUnsafeBytes(of: Float(i).bitPattern.littleEndian) { storage += $0 } }
        let s = StorageRef(key: "0", dtype: .f32, count: 12)
        let transposed = try TorchCheckpoint.gather(TensorRef(storage: s, offset: 1, shape: [3, 2], stride: [1, 3]), from: storage, key: "t", name: "x")
        XCTAssertEqual(transposed.values, [1, 4, 2, 5, 3, 6])
        let overlapping = try TorchCheckpoint.gather(TensorRef(storage: s, offset: 2, shape: [2, 3], stride: [1, 2]), from: storage, key: "t", name: "x")
        XCTAssertEqual(overlapping.values, [2, 4, 6, 3, 5, 7])
        let broadcast = try TorchCheckpoint.gather(TensorRef(storage: s, offset: 11, shape: [2, 2], stride: [0, 0]), from: storage, key: "t", name: "x")
        XCTAssertEqual(broadcast.values, [11, 11, 11, 11])
        XCTAssertThrowsError(try TorchCheckpoint.gather(TensorRef(storage: s, offset: 3, shape: [3, 4], stride: [4, 1]), from: storage, key: "w", name: "x")) {
            XCTAssertTrue("\($0)".contains("'w'") && "\($0)".contains("reaches element 14 of a storage of 12"), "\($0)")
        }
        XCTAssertThrowsError(try TorchCheckpoint.gather(TensorRef(storage: s, offset: 0, shape: [2], stride: [-1]), from: storage, key: "w", name: "x"))
    }

    // MARK: - Bad input (each a one-line error, nothing run, nothing written)

    /// A zip archive `archive/data.pkl` = `pickle` plus `extra` entries.
    func torchArchive(pickle: [UInt8], extra: [String: [UInt8]] = [:]) throws -> [UInt8] {
        TestZip.make([("archive/data.pkl", pickle)] + extra.sorted(by: { $0.key < $1.key }).map { ($0.key, $0.value) })
    }

    func assertRefused(_ bytes: [UInt8], mentioning: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try tempDir()
        let input = dir + "/in.bin", output = dir + "/out.ldm"
        try Data(bytes).write(to: URL(fileURLWithPath: input))
        let job = { try PyTorchFile.importModel(path: input, settings: ImportSettings(mean: [0.5], std: [0.5])) }
        XCTAssertThrowsError(try job(), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(error is LDError, text, file: file, line: line)
            XCTAssertFalse(text.contains("\n"), "one line: \(text)", file: file, line: line)
            for m in mentioning { XCTAssertTrue(text.contains(m), "'\(text)' does not mention \(m)", file: file, line: line) }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: output), file: file, line: line)
    }

    func testAGlobalOutsideTheAllowListIsRefusedAndNothingRuns() throws {
        let marker = try tempDir() + "/pwned"
        // os.system('touch MARKER') as pickle protocol 2: GLOBAL, BINUNICODE, TUPLE1, REDUCE, STOP
        let command = Array("touch \(marker)".utf8)
        var system: [UInt8] = [0x80, 0x02] + Array("cos\nsystem\n".utf8) + [UInt8(ascii: "X")]
        withUnsafeBytes(of: UInt32(command.count).littleEndian) { system += $0 }
        system += command + [0x85, UInt8(ascii: "R"), UInt8(ascii: ".")]
        try assertRefused(try torchArchive(pickle: system), mentioning: ["'os.system'", "refused", "nothing was run"])
        // builtins.eval through STACK_GLOBAL (protocol 4), inside an otherwise ordinary state dict
        let eval: [UInt8] = [0x80, 0x04, UInt8(ascii: "}"), UInt8(ascii: "("), 0x8c, 1, UInt8(ascii: "a"),
                             0x8c, 8] + Array("builtins".utf8) + [0x8c, 4] + Array("eval".utf8) + [0x93, 0x8c, 1, UInt8(ascii: "1"),
                             0x85, UInt8(ascii: "R"), UInt8(ascii: "u"), UInt8(ascii: ".")]
        try assertRefused(try torchArchive(pickle: eval), mentioning: ["'builtins.eval'", "refused"])
        // an object built by NEWOBJ from an allowed-looking class is refused by opcode
        let newobj: [UInt8] = [0x80, 0x02] + Array("ccollections\nOrderedDict\n".utf8) + [UInt8(ascii: ")"), 0x81, UInt8(ascii: ".")]
        try assertRefused(try torchArchive(pickle: newobj), mentioning: ["NEWOBJ", "refused"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "the pickle ran")
    }

    func testTruncatedFilesAreRefused() throws {
        let pt = try Files.readFile(fixture("convnet.pt"))
        for cut in [pt.count - 10, pt.count / 2, 30] {
            try assertRefused(Array(pt[..<cut]), mentioning: ["truncated or damaged"])
        }
        let st = try Files.readFile(fixture("convnet.safetensors"))
        try assertRefused(Array(st[..<(st.count - 4)]), mentioning: ["outside the", "truncated?"])
        try assertRefused(Array(st[..<100]), mentioning: ["header of", "longer than the file"])
        try assertRefused(Array(st[..<5]), mentioning: ["too short"])
        // a storage shorter than its tensors, inside an intact archive
        let source = try ZipArchive(pt, name: "convnet.pt")
        let copy = try source.entries.map { entry -> (String, [UInt8]) in
            var bytes = try source.read(entry)
            if entry.path.hasSuffix("/data/0") { bytes.removeLast(4) }
            return (entry.path, bytes)
        }
        try assertRefused(TestZip.make(copy), mentioning: ["storage data/0 has", "bytes", "need"])
        // a damaged byte in a stored entry fails its CRC
        var flipped = pt
        let pkl = source["convnet_ckpt/data.pkl"] ?? source.entries.first { $0.path.hasSuffix("data.pkl") }!
        flipped[pkl.localHeader + 30 + pkl.path.utf8.count + 70] ^= 0x20
        try assertRefused(flipped, mentioning: ["fails its CRC-32 check"])
        // an archive cut short
        var damaged = try torchArchive(pickle: [0x80, 0x02, UInt8(ascii: "}"), UInt8(ascii: ".")])
        damaged.removeLast(3)
        try assertRefused(damaged, mentioning: ["truncated or damaged"])
    }

    /// Directory fields pointing anywhere (ZIP64 offsets above Int64.max included) are refused, not trusted.
    func testHostileZipDirectoriesAreRefused() throws {
        let good = TestZip.make([("archive/data.pkl", [0x80, 0x02, UInt8(ascii: "}"), UInt8(ascii: ".")])])
        func patched(_ at: Int, _ bytes: [UInt8]) -> [UInt8] {
            var b = good
            let base = at < 0 ? b.count + at : at
            for (i, v) in bytes.enumerated() { b[base + i] = v }
            return b
        }
        // the end record is the last 22 bytes: entries at +10, directory size at +12, offset at +16
        try assertRefused(patched(-22 + 16, [0xF0, 0xFF, 0xFF, 0x7F]), mentioning: ["central directory lies outside"])
        try assertRefused(patched(-22 + 10, [0x09, 0x00]), mentioning: ["central directory entry", "truncated or damaged"])
        // ZIP64: offset 0xFFFFFFFF with a locator whose record offset is 2^63 + 1
        var zip64 = patched(-22 + 16, [0xFF, 0xFF, 0xFF, 0xFF])
        let locator: [UInt8] = [0x50, 0x4B, 6, 7, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x80, 1, 0, 0, 0]
        zip64.insert(contentsOf: locator, at: zip64.count - 22)
        try assertRefused(zip64, mentioning: ["ZIP64 end record offset 9223372036854775809 is out of range"])
        // a local header offset past the end
        var local = good
        let cd = local.count - 22 - (46 + "archive/data.pkl".utf8.count)
        local[cd + 42] = 0xFF; local[cd + 43] = 0xFF
        try assertRefused(local, mentioning: ["offset of archive/data.pkl 65535 is out of range"])
    }

    func safetensors(header: String, buffer: Int) -> [UInt8] {
        var out = [UInt8]()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { out += $0 }
        return out + Array(header.utf8) + [UInt8](repeating: 0, count: buffer)
    }

    func testSafetensorsHeaderLongerThanTheFileOrOverlappingIsRefused() throws {
        var long = safetensors(header: "{}", buffer: 0)
        long[0] = 200
        try assertRefused(long, mentioning: ["header of 200 bytes is longer than the file (10 bytes"])
        let overlap = safetensors(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, buffer: 12)
        try assertRefused(overlap, mentioning: ["'a' and 'b' overlap"])
        let wrongSize = safetensors(header: #"{"a":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}}"#, buffer: 8)
        try assertRefused(wrongSize, mentioning: ["'a' has 8 bytes", "need 6"])
        let badType = safetensors(header: #"{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#, buffer: 8)
        try assertRefused(badType, mentioning: ["'a' has dtype C64"])
        try assertRefused(safetensors(header: "[1, 2]", buffer: 0), mentioning: ["not a JSON object"])
    }

    /// The convnet fixture's state dict changed by `edit`, as safetensors bytes.
    func editedConvnet(_ edit: (inout [(String, ForeignTensor)]) -> Void) throws -> [UInt8] {
        let state = try PyTorchFile.read(path: fixture("convnet.safetensors")).state
        var pairs = state.names.map { ($0, state[$0]!) }
        edit(&pairs)
        return Safetensors.encode(try StateDict(pairs), metadata: [:])
    }

    func testMissingExtraOrMisshapedKeysAreNamed() throws {
        try assertRefused(try editedConvnet { $0.removeAll { $0.0 == "features.5.running_var" } },
                          mentioning: ["lacks 'features.5.running_var'", "convnet w8 d2"])
        try assertRefused(try editedConvnet { $0.append(("features.1.extra", ForeignTensor(dtype: .f32, shape: [1], values: [0]))) },
                          mentioning: ["'features.1.extra'"])
        try assertRefused(try editedConvnet { p in
            let i = p.firstIndex { $0.0 == "features.4.weight" }!
            p[i].1 = ForeignTensor(dtype: .f32, shape: [8, 8, 3, 2], values: [Float](repeating: 0, count: 384))
        }, mentioning: ["'features.4.weight' has shape [8, 8, 3, 2]", "needs [8, 8, 3, 3]"])
        try assertRefused(try editedConvnet { p in
            let i = p.firstIndex { $0.0 == "features.0.bias" }!
            p[i].1.values[3] = .nan
        }, mentioning: ["'features.0.bias' holds a non-finite value"])
    }

    /// The DC code's other ConvNets: instance norm (its default) and the 1-channel 28-pixel variant.
    func testTheDCCodesOtherConvNetsAreNamed() throws {
        try assertRefused(try editedConvnet { $0.removeAll { $0.0.hasPrefix("features.1.running") || $0.0.hasPrefix("features.5.running") || $0.0.hasSuffix("num_batches_tracked") } },
                          mentioning: ["features.1 has no running statistics", "instance-norm"])
        let state = try PyTorchFile.read(path: fixture("convnet.safetensors")).state
        let pairs = state.names.map { n -> (String, ForeignTensor) in
            n == "classifier.weight" ? (n, ForeignTensor(dtype: .f32, shape: [10, 8 * 8 * 8], values: [Float](repeating: 0.01, count: 5120))) : (n, state[n]!)
        }
        let dir = try tempDir()
        try Data(Safetensors.encode(try StateDict(pairs), metadata: [:])).write(to: URL(fileURLWithPath: dir + "/dc28.safetensors"))
        XCTAssertThrowsError(try PyTorchFile.importModel(path: dir + "/dc28.safetensors", settings: ImportSettings(preset: "fmnist"))) {
            XCTAssertTrue("\($0)".contains("DC code's 28-pixel variant"), "\($0)")
        }
    }

    func testAnArchitectureLdDoesNotHaveIsNamedByItsKeys() throws {
        let vgg = try StateDict([("vgg.block1.conv.weight", ForeignTensor(dtype: .f32, shape: [4, 3, 3, 3], values: [Float](repeating: 0, count: 108))),
                                 ("vgg.head.weight", ForeignTensor(dtype: .f32, shape: [2, 4], values: [Float](repeating: 0, count: 8)))])
        try assertRefused(Safetensors.encode(vgg, metadata: [:]), mentioning: ["not an architecture ld has", "'vgg.block1.conv.weight'", "'vgg.head.weight'"])
        // a ResNet-50-like checkpoint of the wrong depth: named by its blocks per stage
        let small = try PyTorchFile.read(path: fixture("resnet18_small.pt")).state
        var pairs = small.names.map { ($0, small[$0]!) }
        pairs.append(("layer1.0.conv3.weight", ForeignTensor(dtype: .f32, shape: [256, 64, 1, 1], values: [Float](repeating: 0, count: 16384))))
        pairs.append(("layer1.2.conv1.weight", ForeignTensor(dtype: .f32, shape: [64, 64, 3, 3], values: [Float](repeating: 0, count: 36864))))
        try assertRefused(Safetensors.encode(try StateDict(pairs), metadata: [:]),
                          mentioning: ["a ResNet with bottleneck blocks 3-2-2-2 per stage", "resnet50 (bottleneck 3-4-6-3)"])
    }

    func testLegacyAndUnknownFormatsAreRefused() throws {
        try assertRefused([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e],
                          mentioning: ["pickle ends without STOP (truncated?)"])
        try assertRefused([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x18, 0x2e],
                          mentioning: ["not a torch.save checkpoint (no legacy magic number)"])
        let legacy = try Files.readFile(fixture("convnet_legacy.pt"))
        try assertRefused(Array(legacy[..<(legacy.count - 1)]), mentioning: ["runs past the end (truncated?)"])
        try assertRefused(Array("hello, this is not a checkpoint".utf8), mentioning: ["longer than the file"])
    }

    /// Mutated pickles, archives and safetensors files are read or refused with an LDError, never a crash or a
    /// hang (LD_INTEROP_FUZZ=N runs N mutations of each instead of 300).
    func testMutatedFilesAreReadOrRefusedNeverCrash() throws {
        let rounds = Int(ProcessInfo.processInfo.environment["LD_INTEROP_FUZZ"] ?? "") ?? 300
        let pt = try Files.readFile(fixture("convnet_ckpt.pt"))
        let archive = try ZipArchive(pt, name: "convnet_ckpt.pt")
        let pickle = try archive.read(archive.entries.first { $0.path.hasSuffix("data.pkl") }!)
        let st = try Files.readFile(fixture("convnet_f16.safetensors"))
        let deflated = try Files.readFile(fixture("convnet_deflated.pt"))
        let legacy = try Files.readFile(fixture("convnet_legacy.pt"))
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ n: Int) -> Int {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Int(state % UInt64(max(n, 1)))
        }
        func mutate(_ bytes: [UInt8], keep: Int = 0) -> [UInt8] {
            var b = bytes
            for _ in 0..<(1 + next(8)) {
                switch next(5) {
                case 0: b.removeLast(min(b.count - keep, next(64)))
                case 1: let i = next(b.count); b.insert(UInt8(next(256)), at: i)
                case 2: let i = next(b.count); b.remove(at: i)
                default:
                    // anywhere, or in the first or last 1.5 KB (pickle, zip directory, safetensors header)
                    let span = min(1536, b.count - keep)
                    let i = [keep + next(b.count - keep), keep + next(span), b.count - 1 - next(span)][next(3)]
                    b[i] = UInt8(next(256))
                }
            }
            return b
        }
        var outcomes = [0, 0]
        for _ in 0..<rounds {
            var u = RestrictedUnpickler(mutate(pickle), name: "p") { _ in .storage(StorageRef(key: "0", dtype: .f32, count: 4)) }
            do { _ = try u.load(); outcomes[0] += 1 } catch { XCTAssertTrue(error is LDError, "\(error)"); outcomes[1] += 1 }
            do { _ = try TorchCheckpoint.read(mutate(pt), name: "z"); outcomes[0] += 1 } catch { XCTAssertTrue(error is LDError, "\(error)"); outcomes[1] += 1 }
            do { _ = try TorchCheckpoint.read(mutate(legacy), name: "l"); outcomes[0] += 1 } catch { XCTAssertTrue(error is LDError, "\(error)"); outcomes[1] += 1 }
            do { _ = try TorchCheckpoint.read(mutate(deflated), name: "d"); outcomes[0] += 1 } catch { XCTAssertTrue(error is LDError, "\(error)"); outcomes[1] += 1 }
            do { _ = try Safetensors.read(mutate(st), name: "s"); outcomes[0] += 1 } catch { XCTAssertTrue(error is LDError, "\(error)"); outcomes[1] += 1 }
        }
        print("interop fuzz: \(rounds) rounds x 5 readers: \(outcomes[0]) read, \(outcomes[1]) refused")
        // nesting is bounded: 100000 TUPLE1s on None is refused, not a stack overflow when freed
        var deep: [UInt8] = [0x80, 0x02, UInt8(ascii: "N")] + [UInt8](repeating: 0x85, count: 100_000) + [UInt8(ascii: ".")]
        var u = RestrictedUnpickler(deep, name: "deep") { _ in .none }
        XCTAssertThrowsError(try u.load()) { XCTAssertTrue("\($0)".contains("nests deeper than 100"), "\($0)") }
        deep = []
    }
}
