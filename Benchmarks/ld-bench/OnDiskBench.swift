import Foundation
import LDKernels
import LDData
import LDNetworks
import LDJobs

/// `ld-bench ondisk DIR [--size 224] [--model resnet18] [--stem imagenet] [--batch 32] [--steps 8]
/// [--data-memory 1G] [--threads T] [--rounds R] [--augment rrc|crop]`: teacher training (ld-squeeze's trainer) from
/// an image folder kept on disk, next to the same steps over the same images decoded beforehand: images/s of
/// both, the share of the run the steps waited for pixels, and the peak RSS of the on-disk run next to the
/// budget, the model's activations and what the whole folder would take decoded. The two runs alternate R
/// times (this machine is shared and noisy); the medians are compared. With `rrc` (the default) the run from
/// disk crops its views from the whole images (more decoding) where the other crops the 224 px view; `crop`
/// gives both the same views.
func onDiskBench(_ args: [String]) throws {
    var dir: String? = nil, size = 224, model = "resnet18", stem = "imagenet", batch = 32, steps = 8
    var budget = 1e9, threads = Engine.threads, rounds = 3, augment = AugmentKind.rrc
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
        case "--rounds": i += 1; rounds = max(1, Int(args[i]) ?? rounds)
        case "--augment": i += 1; augment = AugmentKind(rawValue: args[i]) ?? augment
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
                                       weightDecay: 1e-4, warmupEpochs: 0, optimizer: .sgd, augment: augment, seed: 0,
                                       scores: false, el2nEpochs: 1, trainSetHash: "")
        let trainer = try TeacherTrainer(settings: settings, data: data, normalization: Normalization(of: all))
        for _ in 0..<2 { try trainer.trainStep() }
        let wait0 = trainer.loader.waitSeconds, a = now()
        for _ in 0..<min(steps, trainer.stepsPerEpoch - 2) { try trainer.trainStep() }
        let dt = now() - a
        return (Double(min(steps, trainer.stepsPerEpoch - 2) * batch) / dt, (trainer.loader.waitSeconds - wait0) / dt,
                activationBytes(trainer.model))
    }
    let decoded = try picked.resident()
    var diskRates: [Double] = [], memRates: [Double] = [], waits: [Double] = [], activations = 0, peakDisk = 0
    for _ in 0..<rounds {
        let d = try train(picked)
        if peakDisk == 0 { peakDisk = peakRSS() }   // before anything else but the picked images' decoded copy
        let m = try train(decoded)
        diskRates.append(d.ips); waits.append(d.wait); memRates.append(m.ips); activations = d.activations
    }
    func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
    print("run\timg/s (median of \(rounds))\tper round\tdata wait")
    print(String(format: "on disk (%@ budget)\t%.2f\t%@\t%.1f%%", Memory.describe(budget), median(diskRates),
                 diskRates.map { String(format: "%.2f", $0) }.joined(separator: " "), 100 * median(waits)))
    print(String(format: "decoded beforehand\t%.2f\t%@\t-", median(memRates), memRates.map { String(format: "%.2f", $0) }.joined(separator: " ")))
    print(String(format: "on disk / decoded beforehand: %.3f (per round: %@)", median(diskRates) / median(memRates),
                 zip(diskRates, memRates).map { String(format: "%.3f", $0 / $1) }.joined(separator: " ")))
    print(String(format: "peak RSS of the first on-disk run %.0f MB (RSS after listing %.0f MB, the images decoded for the other run %.0f MB); budget %@; the model's activations %.0f MB (batch %d); the whole set decoded would take %.0f MB",
                 Double(peakDisk) / 1e6, Double(rssListed) / 1e6, Double(decoded.count * decoded.imageSize) / 1e6, Memory.describe(budget),
                 Double(activations) / 1e6, batch, decodedBytes / 1e6))
}
