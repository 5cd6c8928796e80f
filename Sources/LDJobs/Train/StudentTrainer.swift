import LDKernels
import LDRecords
import LDData
import LDNetworks
/// What a student batch is trained against.
public enum StudentTarget {
    /// Teacher logits (N, K), stored or computed online: KL(softmax(t/T) || softmax(s/T)), batchmean.
    case logits(Tensor)
    /// Class labels: cross-entropy.
    case labels([Int32])
    /// Class labels of a mixed batch: cross-entropy against lambda x onehot(y_i) + (1 - lambda) x
    /// onehot(y_perm[i]), lambda being Mixup's weight or, for CutMix, the share of pixels not pasted.
    case mixedLabels([Int32], perm: [Int32], lambda: Float)
}

/// Trains a student model one batch at a time with a `StudentRecipe`'s loss and optimiser.
///
/// `gradients(input:target:)` computes the loss and leaves the parameter gradients in `model.parameters`
/// (train mode, batch statistics) without updating anything; `step` adds the optimiser update. The split
/// lets tests compare the gradients of two label sources on the same batch.
public final class StudentTrainer {
    public let model: Model
    public let recipe: StudentRecipe
    public let optimizer: Optimizer
    public let schedule: LRSchedule
    private let dLogits = Tensor(shape: [0])
    private let softTargets = Tensor(shape: [0])

    public init(model: Model, recipe: StudentRecipe) {
        self.model = model
        self.recipe = recipe
        self.optimizer = recipe.makeOptimizer(model.parameters)
        self.schedule = recipe.lrSchedule
    }

    /// Sets the learning rate of epoch `epoch` (0-based); call before the epoch's first step.
    public func beginEpoch(_ epoch: Int) {
        optimizer.learningRate = schedule.lr(at: epoch)
    }

    /// Forward, loss and backward on one batch (N, C, H, W); returns the loss. Parameter gradients are
    /// overwritten (zeroed first). Throws on a target that does not fit the batch.
    @discardableResult
    public func gradients(input: Tensor, target: StudentTarget) throws -> Float {
        model.training = true
        model.zeroGrad()
        let logits = model.forward(input)
        let n = logits.shape[0], k = logits.shape[1]
        dLogits.ensureShape(n, k)
        let loss: Float
        switch target {
        case .logits(let t):
            guard t.count == n * k else {
                throw LDError("teacher logits \(t.shape) for a student batch of \(n) x \(k) classes")
            }
            // A NaN target would pass through the KL's q > 0 guard into NaN gradients; -inf (top-k) is fine.
            let tp = t.data
            for i in 0..<n * k where tp[i].isNaN {
                throw LDError("teacher logits are NaN (image \(i / k), class \(i % k)): the loss diverged or the labels are corrupt")
            }
            loss = try KLDivergence.loss(student: logits, teacher: t, temperature: recipe.temperature,
                                         scaleByTSquared: recipe.scaleByTSquared, dStudent: dLogits)
        case .labels(let y):
            loss = try CrossEntropy.loss(logits: logits, labels: y, dLogits: dLogits)
        case .mixedLabels(let y, let perm, let lambda):
            guard y.count == n, perm.count == n else {
                throw LDError("mixed labels: \(y.count) labels and a permutation of \(perm.count) for a batch of \(n)")
            }
            softTargets.ensureShape(n, k)
            softTargets.fill(0)
            let t = softTargets.data
            for i in 0..<n {
                let a = Int(y[i]), b = Int(y[Int(perm[i])])
                guard a >= 0 && a < k && b >= 0 && b < k else { throw LDError("mixed labels: label outside 0..<\(k)") }
                t[i * k + a] += lambda
                t[i * k + b] += 1 - lambda
            }
            loss = try CrossEntropy.loss(logits: logits, targets: softTargets, dLogits: dLogits)
        }
        model.backward(dLogits)
        return loss
    }

    /// One optimisation step: `gradients`, then the optimiser update. Throws when the loss is not finite
    /// (nothing is updated then).
    @discardableResult
    public func step(input: Tensor, target: StudentTarget) throws -> Float {
        let loss = try gradients(input: input, target: target)
        guard loss.isFinite else {
            throw LDError("the training loss is \(loss) (diverged): lower --lr or check the labels")
        }
        optimizer.step()
        return loss
    }
}

extension MixParams {
    /// The weight of each image's own label after mixing a H x W batch: Mixup's lambda, or for CutMix the
    /// share of pixels outside the pasted box (the area-corrected lambda).
    public func labelWeight(kind: MixKind, height: Int, width: Int) -> Float {
        switch kind {
        case .none: return 1
        case .mixup: return lam
        case .cutmix:
            guard let b = box else { return 1 }
            let area = b.area
            return 1 - Float(area) / Float(height * width)
        }
    }
}
