"""PyTorch rows that ../shared/peer/torch_bench.py --suite seeds lacks, timed with its own step definitions
(train: SGD momentum; relabel: eval forward without gradients; recover: CE + 0.01 x BN-statistics loss, Adam
on the input), so `ld-bench engine --suite seeds --peer FILE` can put every row beside PyTorch's in one run.
Not part of ld (no Python in the product or its tests); `make bench-seeds` runs it when PEER_PYTHON is set.

Rows, 32 px CIFAR variants (first layer at stride 1, as torch_bench's mobilenetv2_cifar), batch 64:
relabel/recover resnet50-cifar, efficientnet-b0-cifar (no stochastic depth, as ld's), vgg11-cifar
(vgg11_bn's features and one linear layer, as ld's `vgg11 --stem small`), vit-tiny-cifar (DeiT-Tiny's
width and depth with patch 4, pre-norm encoder layers; no BatchNorm, so no recover row)."""
import argparse, os, runpy, sys, types
# torchvision 0.28 with a CPU-only torch 2.13 fails to register its C++ operators' fake kernels at import;
# the models used here need none of them.
sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
import torch, torch.nn as nn, torchvision  # noqa: E402
PEER_DIR = os.environ.get("PEER_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "peer"))
sys.path.insert(0, PEER_DIR)
from torch_bench import timeit, train_step, relabel_step, recover_step, resnet_cifar  # noqa: E402


def efficientnet_b0_cifar(n=10):
    m = torchvision.models.efficientnet_b0(num_classes=n, stochastic_depth_prob=0.0)
    m.features[0][0].stride = (1, 1)
    return m


def vgg11_cifar(n=10):
    return nn.Sequential(torchvision.models.vgg11_bn().features, nn.Flatten(), nn.Linear(512, n))


class ViTTiny(nn.Module):
    def __init__(self, n=10, size=32, patch=4, dim=192, depth=12, heads=3):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, (size // patch) ** 2 + 1, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, n)

    def forward(self, x):
        t = self.proj(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(x.shape[0], -1, -1), t], 1) + self.pos
        return self.head(self.norm(self.blocks(t))[:, 0])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2); ap.add_argument("--secs", type=float, default=3.0)
    ap.add_argument("--only", default="")
    ap.add_argument("--with-torch-bench", action="store_true", help="first run torch_bench.py --suite seeds (same import fix)")
    a = ap.parse_args()
    if a.with_torch_bench:
        argv = sys.argv
        sys.argv = ["torch_bench.py", "--suite", "seeds", "--threads", str(a.threads), "--secs", str(a.secs)] + (["--only", a.only] if a.only else [])
        runpy.run_path(os.path.join(PEER_DIR, "torch_bench.py"), run_name="__main__")
        sys.argv = argv
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    x = torch.randn(64, 3, 32, 32); y = torch.randint(0, 10, (64,))
    cases = [("relabel resnet50-cifar b64", lambda: relabel_step(resnet_cifar("resnet50"), x)),
             ("recover resnet50-cifar b64", lambda: recover_step(resnet_cifar("resnet50"), x, y))]
    for name, mk in [("efficientnet-b0-cifar", efficientnet_b0_cifar), ("vgg11-cifar", vgg11_cifar), ("vit-tiny-cifar", ViTTiny)]:
        cases += [(f"train {name} b64", lambda mk=mk: train_step(mk(), x, y)), (f"relabel {name} b64", lambda mk=mk: relabel_step(mk(), x))]
        if name != "vit-tiny-cifar":
            cases.append((f"recover {name} b64", lambda mk=mk: recover_step(mk(), x, y)))
    for name, make in cases:
        if a.only and a.only not in name: continue
        dt = timeit(make(), a.secs); print(f"{name}\t{64/dt:.1f} img/s\t{dt*1000:.1f} ms/step", flush=True)
