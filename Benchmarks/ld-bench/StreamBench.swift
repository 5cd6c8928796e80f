// Record-stream throughput through a pipe: a writer thread produces label-batch records into pipe(2), the main
// thread reads and CRC-checks them, as `ld-relabel | ld-prune` would. Reported: payload MB/s, plain and zstd.
import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

/// Measures stream write+read throughput through an in-process pipe, with and without zstd.
func streamBench(megabytes: Int = 192) {
    // 256 distinct label batches (B = 100, K = 100, fp16 logits), about 21 KB each: more than zstd's window,
    // so compression sees realistic data rather than one repeated payload.
    var rng: UInt64 = 0x9E37_79B9_7F4A_7C15
    func next() -> UInt64 { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng }
    let b = 100, k = 100
    let payloads: [[UInt8]] = (0..<256).map { i in
        let logits = (0..<(b * k)).map { _ -> Float16 in
            let u = Float(next() % 10_000) / 10_000
            return Float16((u * u * 12 - 3).rounded(.toNearestOrEven))
        }
        return LabelBatchRecord(
            batch: UInt64(i), epoch: 0, classes: k, indices: (0..<b).map { _ in UInt32(next() % 50_000) },
            crops: (0..<b).map { _ in CropBox(top: Int(next() % 8), left: Int(next() % 8), height: 24, width: 24) },
            flips: (0..<b).map { _ in next() & 1 == 1 }, mix: .cutmix, permutation: (0..<b).map { UInt32(($0 + 1) % b) },
            lambda: 0.4, box: CropBox(top: 3, left: 4, height: 10, width: 12), logits: .half(logits)).encode()
    }
    let perRecord = payloads[0].count
    let records = megabytes * 1_000_000 / perRecord
    let header = StreamHeader(kind: .labels, producer: "ld-bench", version: LD.version, classes: k)

    for compression in [StreamCompression.none, .zstd(level: 3), .zstd(level: 1)] {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { print("stream: pipe failed"); return }
        let done = DispatchSemaphore(value: 0)
        let result = WriterResult()
        var failure: Error?
        let writerFD = fds[1]
        let t0 = DispatchTime.now().uptimeNanoseconds
        let writer = Thread {
            do {
                let out = OutputFile(fd: writerFD, name: "pipe")
                let counting = CountingSink(out)
                let w = try StreamWriter(sink: counting, header: header, compression: compression)
                for i in 0..<records { try w.write(kind: .labels, payload: payloads[i & 255]) }
                try w.finish()
                result.bytes = counting.bytes
            } catch { result.error = error }
            close(writerFD)
            done.signal()
        }
        writer.stackSize = 1 << 22
        writer.start()
        var got = 0
        var count = 0
        do {
            let r = try StreamReader(source: InputFile(fd: fds[0], name: "pipe"))
            while let rec = try r.next() { got += rec.payload.count; count += 1 }
        } catch { failure = failure ?? error }
        done.wait()
        failure = result.error ?? failure
        let wireBytes = result.bytes
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        if let f = failure { print("stream: failed: \(f)"); return }
        let name: String
        switch compression {
        case .none: name = "plain"
        case .zstd(let level): name = "zstd-\(level)"
        }
        let mb = Double(got) / 1e6
        print(String(format: "stream pipe %@: %.0f MB/s payload (%d records of %d B, %.0f MB in %.2f s, %.2fx on the wire)",
                     name, mb / seconds, count, perRecord, mb, seconds, Double(got) / Double(max(wireBytes, 1))))
    }
}

/// What the writer thread reports back.
private final class WriterResult: @unchecked Sendable {
    var bytes = 0
    var error: Error?
}

/// Counts the bytes a writer produces (to report the compression ratio).
private final class CountingSink: ByteSink {
    let inner: ByteSink
    var bytes = 0
    init(_ inner: ByteSink) { self.inner = inner }
    var name: String { inner.name }
    func write(_ p: UnsafeRawPointer, count: Int) throws { bytes += count; try inner.write(p, count: count) }
    func flush() throws { try inner.flush() }
    func commit() throws { try inner.commit() }
}
