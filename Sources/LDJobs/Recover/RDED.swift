import LDKernels
import LDRecords
import LDData
import LDNetworks
// RDED (Sun et al., "On the Diversity and Realism of Distilled Dataset", CVPR 2024): no optimisation; each
// distilled image is F x F real crops of its class that the teacher finds most confidently of that class.
//
// For class c, with IPC K (the paper's defaults: factor F = 2, num_crop 5, mipc 300; its CIFAR ConvNet
// scripts use F = 1):
//   1. candidates: `candidates` images of class c drawn without replacement (all of them if the class has
//      fewer), LDRandom(seed, rded, major c, minor 0, item 0);
//   2. `crops` RandomResizedCrop boxes per candidate (scale --crop-scale, default 0.08-1, aspect ratio 1),
//      LDRandom(seed, rded, major c, minor image index, item 1), each resampled to the full S x S (PIL's
//      antialiased bilinear, as torchvision's resized_crop);
//   3. score: the teacher's cross-entropy on class c (eval mode); each candidate keeps its lowest-scoring
//      crop (ties: the first drawn);
//   4. the F^2 K candidates with the lowest scores (ties: smaller image index), in that order, tiled by
//      `Combine.Tiler` exactly as `ld-prune --combine`: rank n -> image n mod K, cell n div K (the paper's
//      spread), each crop area-downsampled to its cell.
//
// Departures from the paper's code, by design: a crop is scored at the full input size S rather than as an
// S/F patch zero-padded to S (the teacher then sees a crop as the student does at F = 1, and at F > 1 scoring
// does not depend on padding); cells are area-downsampled (the paper: nearest neighbour); draws are keyed per
// class and image, so every shard, thread count and order gives the same images.

/// The picked crops of one class: for each stitched image, per cell (row-major) the source image and box.
public struct RDEDClass {
    /// K stitched images, uint8 planar (C, S, S) each, in IPC order.
    public var pixels: [UInt8]
    /// sources[k][cell] = (data set index, crop box in that image).
    public var sources: [[(index: Int, box: CropBox)]]
    /// The kept crops' cross-entropies, best first (F^2 K of them).
    public var scores: [Float]
}

/// RDED over a real data set for one teacher.
public struct RDED {
    public let data: Dataset
    public let teacher: ModelFile
    public let settings: RecoverSettings
    public let grid: ImageGrid

    /// Loads `spec` at the teacher's size and evaluation ratio, in its class order.
    public init(data spec: String, teacher: ModelFile, settings: RecoverSettings) throws {
        let config = teacher.model.config
        let loaded = try Dataset.load(spec, imageSize: config.imageSize, evalRatio: teacher.evalRatio)
        try self.init(data: try teacher.pair(loaded, role: "--data").data, teacher: teacher, settings: settings)
    }

    public init(data: Dataset, teacher: ModelFile, settings: RecoverSettings) throws {
        try settings.validate()
        try teacher.check(data, role: "--data")
        self.data = data
        self.teacher = teacher
        self.settings = settings
        grid = try ImageGrid(height: data.height, width: data.width, factor: settings.factor)
    }

    /// The candidate images of class c, in draw order.
    public func candidates(ofClass c: Int, members: [Int]) -> [Int] {
        guard members.count > settings.candidates else { return members }
        var rng = LDRandom(seed: settings.seed, stage: .rded, major: c, minor: 0, item: 0)
        return rng.sample(settings.candidates, from: members.count).map { members[$0] }
    }

    /// The crop boxes drawn for image `index` of class c.
    public func boxes(ofClass c: Int, image index: Int) -> [CropBox] {
        var rng = LDRandom(seed: settings.seed, stage: .rded, major: c, minor: index, item: 1)
        let crop = RandomResizedCrop(scale: (settings.cropScaleMin, settings.cropScaleMax), ratio: (1, 1))
        return (0..<settings.crops).map { _ in crop.sampleBox(height: data.height, width: data.width, using: &rng) }
    }

    /// Throws unless class c offers F^2 K candidates.
    public func check(class c: Int, members: Int, ipc k: Int) throws {
        let need = grid.cellCount * k, offered = min(members, settings.candidates)
        guard offered >= need else {
            throw LDError("\(data.source): class \(c) offers \(offered) candidate images (\(members) in the class, --candidates \(settings.candidates)); RDED needs --combine^2 x --ipc = \(need)")
        }
    }

    /// The box of an image resampled to the full size (PIL's antialiased bilinear, torchvision's resized_crop).
    func crop(_ src: UnsafePointer<UInt8>, _ b: CropBox, into dst: UnsafeMutablePointer<UInt8>) {
        Resample.resize(src, channels: data.channels, height: data.height, width: data.width,
                        box: (Double(b.left), Double(b.top), Double(b.left + b.width), Double(b.top + b.height)),
                        outH: data.height, outW: data.width, into: dst)
    }

    /// Builds class c's K stitched images.
    public func build(class c: Int, members: [Int], ipc k: Int) throws -> RDEDClass {
        let need = grid.cellCount * k
        try check(class: c, members: members.count, ipc: k)
        let cand = candidates(ofClass: c, members: members)
        let (ch, h, w) = (data.channels, data.height, data.width)
        let size = data.imageSize
        let model = teacher.model
        let norm = Normalization(of: teacher)
        // Score the crops in chunks of candidates (the evaluation batch bounds the activations).
        let chunk = max(1, model.evaluationBatch() / settings.crops)
        var best = [(score: Float, box: CropBox)](repeating: (.infinity, CropBox(top: 0, left: 0, height: h, width: w)), count: cand.count)
        var src = [UInt8](repeating: 0, count: min(chunk, cand.count) * size)
        var views = [UInt8](repeating: 0, count: min(chunk, cand.count) * settings.crops * size)
        let input = Tensor(shape: [0])
        let wasTraining = model.training
        model.training = false
        defer { model.training = wasTraining }
        var start = 0
        while start < cand.count {
            let ids = Array(cand[start..<min(start + chunk, cand.count)])
            try src.withUnsafeMutableBufferPointer { try data.images(ids, into: $0.baseAddress!) }
            var drawn: [[CropBox]] = []
            src.withUnsafeBufferPointer { s in
                views.withUnsafeMutableBufferPointer { v in
                    for (j, i) in ids.enumerated() {
                        let bs = boxes(ofClass: c, image: i)
                        drawn.append(bs)
                        for (m, b) in bs.enumerated() {
                            crop(s.baseAddress! + j * size, b, into: v.baseAddress! + (j * settings.crops + m) * size)
                        }
                    }
                }
            }
            let n = ids.count * settings.crops
            input.ensureShape(n, ch, h, w)
            views.withUnsafeBufferPointer { norm.apply($0.baseAddress!, count: n, plane: h * w, into: input.data) }
            let logits = model.predict(input)
            for j in 0..<ids.count {
                for m in 0..<settings.crops {
                    let score = Float(Model.crossEntropy(logits.data + (j * settings.crops + m) * model.config.classes,
                                                         label: c, classes: model.config.classes))
                    if score < best[start + j].score { best[start + j] = (score, drawn[j][m]) }
                }
            }
            start += ids.count
        }
        let ranked = cand.indices.sorted { a, b in
            best[a].score != best[b].score ? best[a].score < best[b].score : cand[a] < cand[b]
        }.prefix(need)

        // Tile: rank n -> image n mod K, cell n div K; each kept crop resampled to S x S, then to its cell.
        // The kept images are decoded once, in rank order.
        let kept = Array(ranked)
        var images = [UInt8](repeating: 0, count: need * size)
        try images.withUnsafeMutableBufferPointer { try data.images(kept.map { cand[$0] }, into: $0.baseAddress!) }
        let tiler = Combine.Tiler(grid: grid, channels: ch)
        var out = RDEDClass(pixels: [UInt8](repeating: 0, count: k * size),
                            sources: [[(index: Int, box: CropBox)]](repeating: [], count: k), scores: [])
        var view = [UInt8](repeating: 0, count: size)
        for (n, p) in kept.enumerated() {
            let (image, cell) = Combine.placement(rank: n, ipc: k)
            images.withUnsafeBufferPointer { s in
                view.withUnsafeMutableBufferPointer { v in crop(s.baseAddress! + n * size, best[p].box, into: v.baseAddress!) }
            }
            view.withUnsafeBufferPointer { v in
                out.pixels.withUnsafeMutableBufferPointer { o in tiler.place(v.baseAddress!, cell: cell, into: o.baseAddress! + image * size) }
            }
            out.sources[image].append((cand[p], best[p].box))
        }
        out.scores = ranked.map { best[$0].score }
        return out
    }
}
