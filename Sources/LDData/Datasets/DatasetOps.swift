import LDKernels
import LDRecords
extension Dataset {
    /// The images at `indices`, in that order (repeats allowed), with everything else unchanged.
    public func subset(_ indices: [Int]) throws -> Dataset {
        let n = count, size = imageSize
        if let files {   // a set on disk: the same files, picked
            for i in indices where i < 0 || i >= n { throw LDError("\(source): image index \(i) out of range 0..<\(n)") }
            var picked = self
            picked.labels = indices.map { labels[$0] }
            picked.files = files.subset(indices)
            return picked
        }
        var newLabels = [Int32](repeating: 0, count: indices.count)
        var newPixels = [UInt8](repeating: 0, count: indices.count * size)
        try labels.withUnsafeBufferPointer { lab in
            try pixels.withUnsafeBufferPointer { pix in
                try newPixels.withUnsafeMutableBufferPointer { out in
                    for (k, i) in indices.enumerated() {
                        guard i >= 0 && i < n else {
                            throw LDError("\(source): image index \(i) out of range 0..<\(n)")
                        }
                        newLabels[k] = lab[i]
                        (out.baseAddress! + k * size).update(from: pix.baseAddress! + i * size, count: size)
                    }
                }
            }
        }
        var picked = Dataset(pixels: newPixels, labels: newLabels, classes: classes, channels: channels, height: height,
                             width: width, mean: mean, std: std, classNames: classNames, source: source)
        picked.grid = grid
        return picked
    }

    /// Number of images of each class.
    public func classCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: classes)
        for l in labels { counts[Int(l)] += 1 }
        return counts
    }

    /// The image indices of each class, ascending.
    public func classIndices() -> [[Int]] {
        var lists = [[Int]](repeating: [], count: classes)
        for (c, k) in classCounts().enumerated() { lists[c].reserveCapacity(k) }
        for (i, l) in labels.enumerated() { lists[Int(l)].append(i) }
        return lists
    }

    /// `ipc` random images of each class, class by class (ascending class, random order within a class).
    /// Class `c` draws from `LDRandom(seed:, stage: .subset, major: c)`, so a class's pick does not depend
    /// on the other classes. Throws if a class has fewer than `ipc` images.
    public func classBalancedIndices(ipc: Int, seed: UInt64) throws -> [Int] {
        let base = LDRandom(seed: seed, stage: .subset)
        var out: [Int] = []
        out.reserveCapacity(ipc * classes)
        for (c, list) in classIndices().enumerated() {
            var rng = base.stream(major: c)
            out += try pick(ipc, from: list, class: c, rng: &rng)
        }
        return out
    }

    /// `ipc` random images of each class drawn from one generator, class by class.
    public func classBalancedIndices<G: RandomNumberGenerator>(ipc: Int, rng: inout G) throws -> [Int] {
        var out: [Int] = []
        for (c, list) in classIndices().enumerated() { out += try pick(ipc, from: list, class: c, rng: &rng) }
        return out
    }

    /// The class-balanced random subset (the evaluation baseline at a given IPC), see
    /// `classBalancedIndices(ipc:seed:)`.
    public func classBalancedSubset(ipc: Int, seed: UInt64) throws -> Dataset {
        try subset(classBalancedIndices(ipc: ipc, seed: seed))
    }

    /// The class-balanced random subset drawn from `rng`.
    public func classBalancedSubset<G: RandomNumberGenerator>(ipc: Int, rng: inout G) throws -> Dataset {
        try subset(classBalancedIndices(ipc: ipc, rng: &rng))
    }

    private func pick<G: RandomNumberGenerator>(_ ipc: Int, from list: [Int], class c: Int, rng: inout G) throws -> [Int] {
        guard ipc >= 0 else { throw LDError("images per class must be >= 0, got \(ipc)") }
        guard list.count >= ipc else {
            throw LDError("\(source): class \(c) has \(list.count) images, fewer than \(ipc) per class")
        }
        return rng.sample(ipc, from: list.count).map { list[$0] }
    }

    /// Per-channel `scale` and `bias` such that `x * scale + bias == (x/255 - mean) / std` (to float rounding).
    public func normalizationCoefficients() -> (scale: [Float], bias: [Float]) {
        Normalization(of: self).coefficients
    }

    /// Writes image `i` as `channels * height * width` normalised floats, `(x/255 - mean) / std`.
    public func normalize(image i: Int, into out: UnsafeMutablePointer<Float>) {
        normalize(images: [i], into: out)
    }

    /// Writes the images at `indices` as an NCHW float batch `(x/255 - mean) / std` to `out`
    /// (`indices.count * imageSize` floats). Indices must be in range (checked).
    public func normalize(images indices: [Int], into out: UnsafeMutablePointer<Float>) {
        let plane = height * width, size = imageSize, ch = channels, n = count
        let (scale, bias) = normalizationCoefficients()
        precondition(isResident, "Dataset.normalize: \(source) is not in memory (resident() first)")
        pixels.withUnsafeBufferPointer { pix in
            let src = pix.baseAddress!
            for (k, i) in indices.enumerated() {
                precondition(i >= 0 && i < n, "image index \(i) out of range 0..<\(n)")
                for c in 0..<ch {
                    let s = src + i * size + c * plane
                    let d = out + k * size + c * plane
                    let a = scale[c], b = bias[c]
                    for j in 0..<plane { d[j] = Float(s[j]) * a + b }
                }
            }
        }
    }

    /// The images at `indices` as a normalised NCHW batch in `tensor`, reshaped to `[n, C, H, W]`.
    public func normalize(images indices: [Int], into tensor: Tensor) {
        tensor.reshape([indices.count, channels, height, width])
        normalize(images: indices, into: tensor.data)
    }

    /// Labels at `indices` (for a batch).
    public func labels(at indices: [Int]) -> [Int32] {
        indices.map { labels[$0] }
    }
}
