import Foundation
import LDKernels
import LDData
import LDNetworks
import LDJobs

/// `ld-bench ondisk DIR [--size 224] [--model resnet18] [--stem imagenet] [--batch 32] [--steps 8]
/// [--data-memory 1G] [--threads T]`: teacher training (ld-squeeze's trainer, RandomResizedCrop + flip) from
/// an image folder kept on disk, next to the same steps over the same images decoded beforehand: images/s of
/// both, the share of the run the steps waited for pixels, and the peak RSS of the on-disk run next to the
/// budget, the model's activations and what the whole folder would take decoded.
func onDiskBench(_ args: [String]) throws {
    var dir: String? = nil, size = 224, model = "resnet18", stem = "imagenet", batch = 32, steps = 8
    var budget = 1e9, threads = Engine.threads
    var i = 0
    while i < args.count {
        switch args[i] {
        case "--size": i += 1; size = Int(args[i]) ?? size
        case "--model": i += 1; model = args[i]
        case "--stem": i += 1; stem = args[i]
        case "--batch": i += 1; batch = Int(args[i]) ?? batch
        case "--steps": i += 1; steps = Int(args[i]) ?? steps
        case "--data-memory": i += 1; budget = Memory.parseSize(args[i]) ?? budget
        case "--threads": i += 1; threads = Int(args[i]) ?? threads
        default: dir = args[i]
        }
        i += 1
    }
    guard let dir else { throw LDError("ld-bench ondisk DIR [--size S] [--model M] [--stem S] [--batch B] [--steps N] [--data-memory SIZE]") }
    Engine.threads = threads
    Memory.dataBudget = budget
    let t0 = now()
    let all = try Dataset.load("folder:\(dir)", imageSize: size)
    let listed = now() - t0
    let decodedBytes = Double(all.count) * Double(all.imageSize)
    print(String(format: "%@: %d images, %d classes, %.1f GB decoded at %d px; listed (headers, normalisation from 1,000 images) in %.1f s; %@ (--data-memory %@)",
                 dir, all.count, all.classes, decodedBytes / 1e9, size, listed, all.isResident ? "in memory" : "kept on disk",
                 Memory.describe(budget)))
    let rssListed = currentRSS()
    let config = ModelConfig(arch: model, channels: all.channels, imageSize: size, classes: all.classes, stem: stem)
    // The same images for both runs: the first (steps + 2) batches of a fixed spread over the set.
    let n = min(all.count, (steps + 2) * batch)
    let picked = try all.subset((0..<n).map { $0 * all.count / n })
    func train(_ data: Dataset) throws -> (ips: Double, wait: Double, activations: Int) {
        let settings = TeacherSettings(model: config, epochs: 1, batchSize: batch, learningRate: 0.1, momentum: 0.9,
                                       weightDecay: 1e-4, warmupEpochs: 0, optimizer: .sgd, augment: .rrc, seed: 0,
                                       scores: false, el2nEpochs: 1, trainSetHash: "")
        let trainer = try TeacherTrainer(settings: settings, data: data, normalization: Normalization(of: all))
        for _ in 0..<2 { try trainer.trainStep() }
        let wait0 = trainer.loader.waitSeconds, a = now()
        for _ in 0..<min(steps, trainer.stepsPerEpoch - 2) { try trainer.trainStep() }
        let dt = now() - a
        return (Double(min(steps, trainer.stepsPerEpoch - 2) * batch) / dt, (trainer.loader.waitSeconds - wait0) / dt,
                activationBytes(trainer.model))
    }
    let disk = try train(picked)
    let peakDisk = peakRSS()
    let mem = try train(try picked.resident())
    print("run\timg/s\tdata wait\tpeak RSS MB")
    print(String(format: "on disk (%@ budget)\t%.2f\t%.1f%%\t%.0f", Memory.describe(budget), disk.ips, 100 * disk.wait, Double(peakDisk) / 1e6))
    print(String(format: "decoded beforehand\t%.2f\t-\t%.0f", mem.ips, Double(peakRSS()) / 1e6))
    print(String(format: "on disk / decoded beforehand: %.3f; RSS after listing %.0f MB; the model's activations %.0f MB (batch %d); the whole set decoded would take %.0f MB",
                 disk.ips / mem.ips, Double(rssListed) / 1e6, Double(disk.activations) / 1e6, batch, decodedBytes / 1e6))
}
