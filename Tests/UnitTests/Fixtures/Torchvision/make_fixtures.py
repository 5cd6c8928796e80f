"""Writes torchvision's parameter and buffer names and shapes of mobilenet_v2 and efficientnet_b0 (10 classes) and
their eval-mode logits (computed in float64) for the small stem (first convolution at stride 1) on 2 x 3 x 32 x 32 inputs, with every
weight set by a formula the Swift test repeats (no stored weights). u(i, k) = 2·((i·2654435761 + k·97531 + 12345)
mod 2^32)/2^32 − 1, uniform in [−1, 1) and exact in integers:
  parameter k (named_parameters order), element i: conv and linear weights sqrt(6/fan_in)·u(i, k),
  BN weights 1 + 0.1·u(i, k), every bias 0.1·u(i, k);
  BN b (module order): running_mean 0.1·u(i, 1000 + b), running_var 0.3 + 0.3·u(i, 2000 + b)² (small, so that the
  activations keep their spread);
  input element i (NCHW): u(i, 777).
Run: python make_fixtures.py (writes mobilenetv2.txt, efficientnet-b0.txt here)."""
import math, os, sys, types
import numpy as np, torch
# The torchvision build here lacks its C ops; the models do not need them.
sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
import torchvision

def u(n, k):
    i = np.arange(n, dtype=np.int64)
    return 2 * ((i * 2654435761 + k * 97531 + 12345) % 4294967296).astype(np.float64) / 4294967296.0 - 1

def fill(model):
    with torch.no_grad():
        for k, (name, p) in enumerate(model.named_parameters()):
            s = u(p.numel(), k)
            if name.endswith("bias"): v = 0.1 * s
            elif p.dim() == 1: v = 1 + 0.1 * s
            else: v = math.sqrt(6.0 / (p.numel() // p.shape[0])) * s
            p.copy_(torch.tensor(v, dtype=torch.float32).reshape(p.shape))
        bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for b, m in enumerate(bns):
            m.running_mean.copy_(torch.tensor(0.1 * u(m.num_features, 1000 + b), dtype=torch.float32))
            m.running_var.copy_(torch.tensor(0.3 + 0.3 * u(m.num_features, 2000 + b) ** 2, dtype=torch.float32))

here = os.path.dirname(os.path.abspath(__file__))
for name, make in [("mobilenetv2", lambda: torchvision.models.mobilenet_v2(num_classes=10)),
                   ("efficientnet-b0", lambda: torchvision.models.efficientnet_b0(num_classes=10))]:
    m = make()
    m.features[0][0].stride = (1, 1)
    fill(m)
    m.eval()
    x = torch.tensor(u(2 * 3 * 32 * 32, 777), dtype=torch.float32).reshape(2, 3, 32, 32)
    # float64 logits: the network is deep enough that float32's rounding shows (about 2e-4 of the largest logit)
    with torch.no_grad(): y = m.double()(x.double()).flatten().tolist()
    m.float()
    lines = [f"param {n} {','.join(map(str, p.shape))}" for n, p in m.named_parameters()]
    lines += [f"buffer {n} {','.join(map(str, b.shape))}" for n, b in m.named_buffers() if not n.endswith("num_batches_tracked")]
    lines.append("logits " + ",".join(repr(v) for v in y))
    open(os.path.join(here, name + ".txt"), "w").write("\n".join(lines) + "\n")
