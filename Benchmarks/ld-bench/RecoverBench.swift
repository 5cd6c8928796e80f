// `ld-bench recover`: throughput of ld-recover's synthesis loop (images x iterations per second) on ConvNet
// teachers of the Fashion-MNIST shape (1x28x28, 10 classes), next to the bare engine step of the same shape
// (forward, CE + BN-statistics loss, backward to the input, Adam on the input: the engine's "recover"
// workload), so the cost of the loop's own work (crop, flip, roll and their backwards, clamp, draws) shows as
// a ratio measured in one run.
import Foundation
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

/// `ld-bench recover [--secs S] [--threads T]`.
func recoverBench(_ args: [String]) throws {
    var secs = 4.0, threads = 2
    var i = 0
    while i < args.count {
        switch args[i] {
        case "--secs": i += 1; secs = Double(args[i]) ?? secs
        case "--threads": i += 1; threads = Int(args[i]) ?? threads
        default: throw LDError("ld-bench recover: unknown argument '\(args[i])'")
        }
        i += 1
    }
    Engine.threads = threads
    print("recover workload\timg-it/s (ld-recover loop)\timg-it/s (bare engine step)\tloop/bare")
    // width 128: the engine bench's convnet3-fmnist shape; width 64: ld-squeeze's default fmnist teacher.
    for (width, batch) in [(128, 100), (64, 100), (64, 10)] {
        var rng = LDRandom(seed: 1, stage: .weightInit)
        let model = try Model(.convnet(width: width, depth: 3, channels: 1, imageSize: 28, classes: 10), rng: &rng)
        model.training = false
        let teacher = ModelFile(model: model, mean: [0.286], std: [0.353], classNames: (0..<10).map { "\($0)" })
        var settings = RecoverSettings(method: .sre2l, batchSize: 10)
        let images = (0..<batch).map { RecoverImage(classIndex: $0 % 10, ipcIndex: $0 / 10) }
        let recoverBatch = RecoverBatch(images: images, keyMajor: 0, keyMinor: 0)

        // The loop: time whole batches of `iterations` steps.
        settings.iterations = 1
        var synth = try RecoverSynthesizer(teacher: teacher, settings: settings)
        _ = try synth.run(recoverBatch)
        let t0 = Progress.now()
        _ = try synth.run(recoverBatch)
        let one = max(Progress.now() - t0, 1e-4)
        settings.iterations = max(3, Int(secs / one))
        synth = try RecoverSynthesizer(teacher: teacher, settings: settings)
        let t1 = Progress.now()
        _ = try synth.run(recoverBatch)
        let loop = Double(batch * settings.iterations) / (Progress.now() - t1)

        // The bare step on the same model and batch.
        let x = Tensor(shape: [batch, 1, 28, 28])
        var noise = LDRandom(seed: 2, stage: .test)
        noise.fillNormal(x.data, count: x.count)
        let labels = images.map { Int32($0.classIndex) }
        let dLogits = Tensor(shape: [0])
        let adam = ImageAdam(count: x.count, learningRate: 0.25)
        model.captureBatchStatistics = true
        func step() throws {
            try CrossEntropy.loss(logits: model.forward(x), labels: labels, dLogits: dLogits)
            try BNStatisticsLoss.loss(model.batchNorms, scale: 0.01)
            let g = model.backward(dLogits, inputGrad: true, paramGrads: false)!
            adam.step(x, grad: g)
        }
        try step()
        var steps = 0
        let t2 = Progress.now()
        repeat { try step(); steps += 1 } while Progress.now() - t2 < secs || steps < 3
        let bare = Double(batch * steps) / (Progress.now() - t2)
        model.captureBatchStatistics = false
        print(String(format: "recover convnet3-fmnist w%d b%d\t%.1f\t%.1f\t%.2f", width, batch, loop, bare, loop / bare))
        fflush(stdout)
    }
}
