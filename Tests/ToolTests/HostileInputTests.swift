import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs
import XCTest

/// Inputs that are well-formed outside and hostile inside (issue 22): each class of failure, with the
/// example that found it and the other fields and tools it stands for. Streams are forged with
/// `StreamForge`, so the framing is valid and only what the content says can refuse them.
final class HostileInputTests: ToolTestCase {
    /// 8 images of 4 classes (1x8x8) as an image stream, the tiny teacher, and a 2-epoch label stream.
    func fixtures(labels: Bool = true) throws {
        let data = ToolFixtures.tinyImages(classes: 4, perClass: 2)
        try data.writeStream(path: path("images.ldi"), producer: "test")
        try ToolFixtures.tinyTeacher(for: data, path: path("teacher.ldm"))
        if labels {
            let r = try run("ld-relabel", ["--teacher", "teacher.ldm", "--data", "images.ldi", "--epochs", "2", "--batch-size", "4",
                                           "--threads", "1", "-q", "-o", "labels.ldl"])
            XCTAssertEqual(r.status, 0, r.err)
        }
    }

    /// `input` rewritten to `output` with its header meta changed by `meta` and records by `record`.
    func forge(_ input: String, _ output: String, meta: (inout [String: JSONValue]) -> Void = { _ in },
               header: (inout StreamHeader) -> Void = { _ in },
               record: (Record) throws -> [UInt8]? = { $0.payload }) throws {
        try StreamForge.rewrite(path(input), to: path(output), header: { h in meta(&h.meta); header(&h) }, record: record)
    }

    /// A copy of the teacher with one tensor's values changed.
    func forgeTensor(_ output: String, _ name: String, _ change: @escaping (inout [Float]) -> Void) throws {
        try forge("teacher.ldm", output, record: { r in
            var t = try TensorRecord(r, header: StreamHeader(kind: .model, producer: "t", version: "0"))
            if t.name == name { change(&t.data) }
            return t.encode()
        })
    }

    func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: path(name)) }

    // MARK: 1. Forged sizes

    func testForgedLabelCountsAreRefusedBeforeAllocating() throws {
        try fixtures()
        for (key, value) in [("batches_per_epoch", JSONValue.double(4.611686018427388e18)), ("batches_per_epoch", .int(1_000_000_000)),
                             ("epochs", .int(1 << 40)), ("epochs", .int(1_000_000_000)), ("images", .int(1 << 30)),
                             ("batch_size", .int(1 << 40)), ("batch_size", .int(0)), ("epoch_start", .int(-5))] {
            try forge("labels.ldl", "forged.ldl", meta: { $0[key] = value })
            let r = try run("ld-train", ["--data", "images.ldi", "--labels", "forged.ldl", "--val", "images.ldi", "--width", "4",
                                         "--depth", "2", "--threads", "1", "-q"])
            XCTAssertTrue(r.status == 1 || r.status == 0, "\(key)=\(value): status \(r.status) \(r.err.prefix(300))")
            if r.status != 0 { assertOneLineError(r, mentioning: "forged.ldl") }
        }
        // The exact examples of the issue are refused, naming the field.
        try forge("labels.ldl", "forged.ldl", meta: { $0["batches_per_epoch"] = .int(1_000_000_000) })
        let r = try run("ld-train", ["--data", "images.ldi", "--labels", "forged.ldl", "--val", "images.ldi", "--width", "4", "-q"])
        assertOneLineError(r, mentioning: "batches_per_epoch")
    }

    func testForgedModelConfigsAreRefusedByEveryTool() throws {
        try fixtures(labels: false)
        let edits: [(String, JSONValue)] = [("classes", .int(1 << 24)), ("width", .int(1_000_000)), ("imageSize", .int(1 << 20)),
                                            ("depth", .int(1000)), ("channels", .int(-3)), ("classes", .int(1))]
        for (field, value) in edits {
            try forge("teacher.ldm", "forged.ldm", meta: { m in
                guard case .object(var c)? = m["config"] else { return XCTFail("no config") }
                c[field] = value
                m["config"] = .object(c)
            })
            for (tool, args) in [("ld-squeeze", ["--eval-only", "forged.ldm", "--val", "images.ldi"]),
                                 ("ld-recover", ["--teacher", "forged.ldm", "--ipc", "1", "--iterations", "1", "-o", "out.ldi"]),
                                 ("ld-relabel", ["--teacher", "forged.ldm", "--data", "images.ldi", "--batch-size", "4", "--epochs", "1", "-o", "out.ldl"]),
                                 ("ld-train", ["--data", "images.ldi", "--teacher", "forged.ldm", "--val", "images.ldi", "--epochs", "1"])] {
                let r = try run(tool, args + ["-q", "--threads", "1"])
                assertOneLineError(r, mentioning: "model config")
                XCTAssertFalse(exists("out.ldi") || exists("out.ldl"), "\(tool) wrote an output for \(field) \(value)")
            }
        }
    }

    // MARK: 2. Non-finite numbers

    func testNonFiniteWeightsAndZeroStdAreRefusedWhenLoaded() throws {
        try fixtures(labels: false)
        try forgeTensor("nan.ldm", "fc.weight") { $0[0] = .nan }
        try forgeTensor("inf.ldm", "blocks.0.bn.running_var") { $0[1] = .infinity }
        try forge("teacher.ldm", "std0.ldm", meta: { $0["std"] = .array([.int(0)]) })
        for (file, mention) in [("nan.ldm", "fc.weight"), ("inf.ldm", "running_var"), ("std0.ldm", "std")] {
            let eval = try run("ld-squeeze", ["--eval-only", file, "--val", "images.ldi", "-q"])
            assertOneLineError(eval, mentioning: mention)
            let relabel = try run("ld-relabel", ["--teacher", file, "--data", "images.ldi", "--batch-size", "4", "--epochs", "1", "-o", "x.ldl", "-q"])
            assertOneLineError(relabel, mentioning: mention)
            XCTAssertFalse(exists("x.ldl"))
        }
    }

    func testNaNLogitsAreNeverCorrect() {
        // A row of NaN logits, and one NaN among finite ones, are not top-1 for any label.
        let nan = [Float](repeating: .nan, count: 4), mixed: [Float] = [0, 1, .nan, 0.5]
        for y in 0..<4 { XCTAssertFalse(nan.withUnsafeBufferPointer { Predictions.isTop1(y, in: $0.baseAddress!, classes: 4) }) }
        XCTAssertFalse(mixed.withUnsafeBufferPointer { Predictions.isTop1(2, in: $0.baseAddress!, classes: 4) })
    }

    func testNonFiniteRecordsAreNeitherWrittenNorRead() throws {
        try fixtures()
        // A writer refuses NaN logits, scores and weights.
        let sink = MemorySink()
        let w = try StreamWriter(sink: sink, header: StreamHeader(kind: .scores, producer: "t", version: "0"))
        XCTAssertThrowsError(try w.write(ScoreRecord(index: 0, values: [.nan])))
        XCTAssertThrowsError(try w.write(TensorRecord(name: "w", shape: [1], data: [.infinity])))
        // A reader refuses a forged record with NaN logits: ld-train and ld-prune name it.
        try forge("labels.ldl", "nan.ldl", record: { r in
            var b = try LabelBatchRecord(r, header: StreamHeader(kind: .labels, producer: "t", version: "0", classes: 4))
            b.logits = .single([Float](repeating: .nan, count: b.count * b.classes))
            return b.encode()
        })
        let train = try run("ld-train", ["--data", "images.ldi", "--labels", "nan.ldl", "--val", "images.ldi", "--width", "4", "-q"])
        assertOneLineError(train, mentioning: "logit")
        let prune = try run("ld-prune", ["nan.ldl", "--ratio", "2", "-o", "p.ldl"])
        assertOneLineError(prune, mentioning: "logit")
        XCTAssertFalse(exists("p.ldl"))
    }

    func testDivergedTrainingStopsAndWritesNoModel() throws {
        try fixtures(labels: false)
        let r = try run("ld-train", ["--data", "images.ldi", "--hard", "--val", "images.ldi", "--width", "4", "--epochs", "3",
                                     "--lr", "1e30", "-o", "student.ldm", "-q", "--threads", "1"])
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssertTrue(r.err.contains("diverged") || r.err.contains("not finite"), r.err)
        XCTAssertFalse(exists("student.ldm"))
    }

    // MARK: 3. A closed stdout

    func testClosedStdoutStillWritesTheModel() throws {
        try fixtures(labels: false)
        let squeeze = try shell("ld-squeeze --data images.ldi --width 4 --depth 2 --epochs 3 -o m.ldm -q --threads 1 | head -c 10 > /dev/null")
        XCTAssertEqual(squeeze.status, 0, squeeze.err)
        XCTAssertTrue(exists("m.ldm"), "ld-squeeze lost its model to a closed stdout")
        let train = try shell("ld-train --data images.ldi --hard --val images.ldi --width 4 --epochs 3 --eval-every 1 -o s.ldm -q --threads 1 | head -c 10 > /dev/null")
        XCTAssertEqual(train.status, 0, train.err)
        XCTAssertTrue(exists("s.ldm"), "ld-train lost its model to a closed stdout")
    }

    // MARK: 4. An output that is an input

    func testOutputThatIsAnInputIsRefused() throws {
        try fixtures()
        try FileManager.default.createSymbolicLink(atPath: path("link.ldm"), withDestinationPath: path("teacher.ldm"))
        try FileManager.default.linkItem(atPath: path("labels.ldl"), toPath: path("hard.ldl"))
        let teacherBytes = try Data(contentsOf: URL(fileURLWithPath: path("teacher.ldm")))
        let labelBytes = try Data(contentsOf: URL(fileURLWithPath: path("labels.ldl")))
        let cases: [(String, [String])] = [
            ("ld-relabel", ["--teacher", "teacher.ldm", "--data", "images.ldi", "--batch-size", "4", "-o", "teacher.ldm"]),
            ("ld-relabel", ["--teacher", "link.ldm", "--data", "images.ldi", "--batch-size", "4", "-o", "./teacher.ldm"]),
            ("ld-recover", ["--teacher", "teacher.ldm", "--ipc", "1", "--iterations", "1", "-o", "link.ldm"]),
            ("ld-prune", ["labels.ldl", "--ratio", "2", "-o", "labels.ldl"]),
            ("ld-prune", ["labels.ldl", "--ratio", "2", "-o", "hard.ldl"]),
            ("ld-prune", ["--data", "images.ldi", "--ipc", "1", "-o", "images.ldi"]),
            ("ld-train", ["--data", "images.ldi", "--labels", "labels.ldl", "--val", "images.ldi", "-o", "labels.ldl"]),
            ("ld-squeeze", ["--data", "images.ldi", "-o", "images.ldi"]),
            ("ld-squeeze", ["--data", "images.ldi", "-o", "m.ldm", "--scores", "m.ldm"]),
        ]
        for (tool, args) in cases {
            let r = try run(tool, args + ["-q"])
            XCTAssertEqual(r.status, 1, "\(tool) \(args): \(r.err)")
            XCTAssertTrue(r.err.contains("is also the input") || r.err.contains("name the same output"), "\(tool): \(r.err)")
        }
        // stdout appended onto an input (`>>`): refused before anything is read or written.
        let appended = try shell("ld-prune --dump labels.ldl >> labels.ldl")
        XCTAssertEqual(appended.status, 1, appended.err)
        XCTAssertTrue(appended.err.contains("standard output is the input"), appended.err)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("teacher.ldm"))), teacherBytes)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("labels.ldl"))), labelBytes)
    }

    // MARK: 5. Outputs checked first; a failed run writes nothing

    func testUnwritableOutputsFailBeforeTheWork() throws {
        try fixtures()
        let prune = try run("ld-prune", ["labels.ldl", "--ratio", "2", "-o", "out.ldl", "--report-file", "no/such/dir/r.ndjson"])
        assertOneLineError(prune, mentioning: "--report-file")
        XCTAssertFalse(exists("out.ldl"), "a failed ld-prune left its output")
        let train = try run("ld-train", ["--data", "images.ldi", "--hard", "--val", "images.ldi", "--width", "4", "--epochs", "2",
                                         "-o", "no/such/dir/s.ldm", "-q"])
        assertOneLineError(train, mentioning: "-o")
        let squeeze = try run("ld-squeeze", ["--data", "images.ldi", "--width", "4", "--epochs", "1", "-o", "m.ldm",
                                             "--metrics", "no/such/dir/m.ndjson", "-q"])
        assertOneLineError(squeeze, mentioning: "--metrics")
        XCTAssertFalse(exists("m.ldm"))
    }

    // MARK: 6. Leftovers of a killed run

    func testTemporariesOfKilledWritersAreRemoved() throws {
        try fixtures(labels: false)
        // A pid that is surely gone: a process that has exited and been reaped.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/true")
        try p.run()
        p.waitUntilExit()
        let host = StaleTemps.owner.split(separator: "-").dropLast().joined(separator: "-")
        let dead = ".out.ldi.tmp-\(host)-\(p.processIdentifier)", legacy = ".out.ldi.tmp-\(p.processIdentifier)"
        let alive = ".out.ldi.tmp-\(host)-1", elsewhere = ".out.ldi.tmp-otherhost-\(p.processIdentifier)"
        for name in [dead, legacy, alive, elsewhere] { FileManager.default.createFile(atPath: path(name), contents: Data([1])) }
        let r = try run("ld-recover", ["--teacher", "teacher.ldm", "--ipc", "1", "--iterations", "2", "-o", "out.ldi", "-q", "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertFalse(exists(dead) || exists(legacy), "a dead writer's temporary survived")
        XCTAssertTrue(exists(alive) && exists(elsewhere), "a live or remote writer's temporary was removed")
    }

    // MARK: 7. Silent reinterpretation

    func testReversedShardsAreRefused() throws {
        try fixtures(labels: false)
        for (range, name) in [("0:2", "a.ldl"), ("2:4", "b.ldl")] {
            let r = try run("ld-relabel", ["--teacher", "teacher.ldm", "--data", "images.ldi", "--epochs", range, "--epochs-total", "4",
                                           "--batch-size", "4", "-q", "--threads", "1", "-o", name])
            XCTAssertEqual(r.status, 0, r.err)
        }
        _ = try shell("cat b.ldl a.ldl > reversed.ldl && cat a.ldl a.ldl > twice.ldl && cat a.ldl > first.ldl")
        for (file, mention) in [("reversed.ldl", "out of order"), ("twice.ldl", "batch 0 comes after batch 3")] {
            let r = try run("ld-train", ["--data", "images.ldi", "--labels", file, "--val", "images.ldi", "--width", "4", "--epochs", "4", "-q"])
            assertOneLineError(r, mentioning: mention)
        }
        // A stream missing a record in the middle names the batch that is missing.
        var n = 0
        try forge("a.ldl", "gap.ldl", record: { r in n += 1; return n == 2 ? nil : r.payload })
        let gap = try run("ld-train", ["--data", "images.ldi", "--labels", "gap.ldl", "--val", "images.ldi", "--width", "4", "--epochs", "2", "-q"])
        assertOneLineError(gap, mentioning: "missing")
        // The first shard alone is not the whole run: refused, naming what is missing...
        let alone = try run("ld-train", ["--data", "images.ldi", "--labels", "first.ldl", "--val", "images.ldi", "--width", "4", "--epochs", "4", "-q"])
        assertOneLineError(alone, mentioning: "a shard missing?")
        // ...unless asked to draw from it as a pool, which ld-train says it does.
        let pool = try run("ld-train", ["--data", "images.ldi", "--labels", "first.ldl", "--val", "images.ldi", "--width", "4", "--epochs", "4",
                                        "--pool-sampling", "with-replacement", "--threads", "1"])
        XCTAssertEqual(pool.status, 0, pool.err)
        XCTAssertTrue(pool.err.contains("label pool"), pool.err)
    }

    func testEmptyCropsAndBadMixWeightsAreRefused() throws {
        try fixtures()
        let header = StreamHeader(kind: .labels, producer: "t", version: "0", classes: 4)
        for (name, change) in [("crop.ldl", { (b: inout LabelBatchRecord) in b.crops[0] = CropBox(top: 0, left: 0, height: 0, width: 0) }),
                               ("lambda.ldl", { (b: inout LabelBatchRecord) in b.lambda = 7 })] {
            try forge("labels.ldl", name, record: { r in
                var b = try LabelBatchRecord(r, header: header)
                change(&b)
                return b.encode()
            })
            let r = try run("ld-train", ["--data", "images.ldi", "--labels", name, "--val", "images.ldi", "--width", "4", "-q"])
            assertOneLineError(r, mentioning: name == "crop.ldl" ? "crop" : "lambda")
        }
    }

    func testWrongClassNamesAndNormalisationAreRefused() throws {
        try fixtures(labels: false)
        try forge("images.ldi", "names.ldi", meta: { $0["class_names"] = .array((0..<5).map { .string("c\($0)") }) })
        try forge("images.ldi", "std.ldi", meta: { $0["std"] = .array([.int(0)]) })
        try forge("teacher.ldm", "names.ldm", meta: { $0["class_names"] = .array([.string("a")]) })
        for (args, mention) in [(["--data", "names.ldi", "--ipc", "1"], "class_names"), (["--data", "std.ldi", "--ipc", "1"], "std")] {
            assertOneLineError(try run("ld-prune", args + ["-o", "x.ldi"]), mentioning: mention)
        }
        assertOneLineError(try run("ld-squeeze", ["--eval-only", "names.ldm", "--val", "images.ldi"]), mentioning: "class_names")
    }

    func testUnfinishedRecoverFolderIsNotAnImageSet() throws {
        try fixtures(labels: false)
        let r = try run("ld-recover", ["--teacher", "teacher.ldm", "--ipc", "1", "--iterations", "1", "--batch-size", "2", "--classes", "0:2", "--png", "syn", "-q", "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.err)
        let train = try run("ld-train", ["--data", "syn", "--hard", "--val", "images.ldi", "--width", "4", "--epochs", "1", "-q"])
        assertOneLineError(train, mentioning: "a class shard")
        // A run killed before its manifest: refused too.
        try FileManager.default.removeItem(atPath: path("syn/manifest.json"))
        assertOneLineError(try run("ld-train", ["--data", "syn", "--hard", "--val", "images.ldi", "--width", "4", "--epochs", "1", "-q"]),
                           mentioning: "unfinished ld-recover run")
        let whole = try run("ld-recover", ["--teacher", "teacher.ldm", "--ipc", "1", "--iterations", "1", "--batch-size", "2", "--png", "syn", "-q", "--threads", "1"])
        XCTAssertEqual(whole.status, 0, whole.err)
        let again = try run("ld-train", ["--data", "syn", "--hard", "--val", "images.ldi", "--width", "4", "--epochs", "1", "-q"])
        XCTAssertEqual(again.status, 0, again.err)
    }

    func testOptionsAModeIgnoresAreRefused() throws {
        try fixtures()
        let cases: [(String, [String], String)] = [
            ("ld-prune", ["--dump", "labels.ldl", "-o", "x.ldl"], "-o"),
            ("ld-prune", ["--dump", "labels.ldl", "--ratio", "2"], "one mode"),
            ("ld-squeeze", ["--eval-only", "teacher.ldm", "--val", "images.ldi", "-o", "m.ldm"], "-o"),
            ("ld-squeeze", ["--eval-only", "teacher.ldm", "--val", "images.ldi", "--epochs", "3"], "--epochs"),
            ("ld-relabel", ["--teacher", "teacher.ldm", "--data", "images.ldi", "--batch-size", "4", "--mix", "none", "--cutmix-alpha", "2"], "--cutmix-alpha"),
            ("ld-relabel", ["--teacher", "teacher.ldm", "--data", "images.ldi", "--batch-size", "4", "--mix", "cutmix", "--mixup-alpha", "2"], "--mixup-alpha"),
        ]
        for (tool, args, mention) in cases {
            let r = try run(tool, args)
            XCTAssertEqual(r.status, 64, "\(tool) \(args): \(r.err)")
            assertOneLineError(r, mentioning: mention)
        }
    }

    func testOneClassDataIsRefused() throws {
        let data = ToolFixtures.tinyImages(classes: 1, perClass: 4)
        try data.writeStream(path: path("one.ldi"), producer: "test")
        assertOneLineError(try run("ld-squeeze", ["--data", "one.ldi", "--epochs", "1", "-o", "m.ldm", "-q"]), mentioning: "at least 2")
        assertOneLineError(try run("ld-train", ["--data", "one.ldi", "--hard", "--val", "one.ldi", "--epochs", "1", "-q"]), mentioning: "at least 2")
        XCTAssertFalse(exists("m.ldm"))
    }

    // MARK: 8. Messages

    func testMessagesAreOneBoundedLineNamingTheFlag() throws {
        try fixtures()
        let negative = try run("ld-recover", ["--teacher", "teacher.ldm", "--ipc", "-1", "-o", "x.ldi"])
        XCTAssertEqual(negative.status, 64)
        assertOneLineError(negative, mentioning: "--ipc")
        XCTAssertFalse(negative.err.contains("Missing value"), negative.err)
        let rule = try run("ld-prune", ["labels.ldl", "--ratio", "2", "--rule", "foo"])
        assertOneLineError(rule, mentioning: "random")
        let unknown = try run("ld-train", ["--data", "images.ldi", "--hard", "--val", "images.ldi", "--bogus"])
        assertOneLineError(unknown, mentioning: "--bogus")
        // A forged header with a 100,000-entry field that an error quotes: the line stays short.
        try forge("images.ldi", "wide.ldi", meta: { $0["class_names"] = .array((0..<100_000).map { .string("class-\($0)") }) })
        let wide = try run("ld-prune", ["--data", "wide.ldi", "--ipc", "1", "-o", "x.ldi"])
        assertOneLineError(wide, mentioning: "class_names")
        XCTAssertLessThan(wide.err.count, 600)
        // A refused resume names the flag, not the field.
        let args = ["--data", "images.ldi", "--width", "4", "--depth", "2", "--epochs", "2", "-o", "m.ldm", "-q", "--threads", "1",
                    "--scores", "s.lds"]
        _ = try run("ld-squeeze", args, env: ["LD_SQUEEZE_STOP_AFTER_STEPS": "1"])
        XCTAssertTrue(exists("m.ldm.ckpt"))
        let resume = try run("ld-squeeze", args + ["--resume", "--el2n-epochs", "1"])
        assertOneLineError(resume, mentioning: "--el2n-epochs")
    }

    // MARK: 9. Upper limits

    func testCountsThatCannotBeMeantAreCapped() throws {
        try fixtures(labels: false)
        for (tool, args, flag) in [("ld-relabel", ["--teacher", "teacher.ldm", "--data", "images.ldi", "--batch-size", "4", "--epochs", "1000000000", "-o", "x.ldl"], "--epochs"),
                                   ("ld-recover", ["--teacher", "teacher.ldm", "--ipc", "1", "--iterations", "1000000000", "-o", "x.ldi"], "--iterations"),
                                   ("ld-train", ["--data", "images.ldi", "--hard", "--val", "images.ldi", "--epochs", "1000000000"], "--epochs"),
                                   ("ld-squeeze", ["--data", "images.ldi", "--epochs", "1000000000", "-o", "x.ldm"], "--epochs")] {
            let r = try run(tool, args + ["-q"])
            assertOneLineError(r, mentioning: flag)
        }
        XCTAssertFalse(exists("x.ldl") || exists("x.ldi") || exists("x.ldm"))
        // Within the cap, but larger than the disk: refused before writing (a 1 MB RAM disk is not assumed;
        // the estimate is checked against the free space the file system reports).
        let free = Disk.freeBytes(near: path("x.ldl")) ?? 0
        let settings = RelabelSettings(seed: 0, epochs: 100_000, epochRange: 0..<100_000, batchSize: 65_536, dropLast: false,
                                       mix: .cutmix, cutmixAlpha: 1, mixupAlpha: 1, crop: RandomResizedCrop(scale: (0.08, 1)),
                                       logits: .fp32)
        let estimate = Double(100_000) * settings.recordBytes(classes: 100_000)
        XCTAssertGreaterThan(estimate, free)
        XCTAssertThrowsError(try Disk.require(estimate, at: path("x.ldl"), flag: "-o")) { e in
            XCTAssertTrue((e as? LDError)?.message.contains("free") == true, "\(e)")
        }
    }
}
