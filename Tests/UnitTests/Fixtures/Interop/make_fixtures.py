#!/usr/bin/env python3
"""Makes the PyTorch interchange fixtures of Tests/UnitTests (InteropTests). Documentation only: the tests
read the files this wrote and never run it.

Run once with PyTorch and torchvision installed (made with torch 2.13.0+cpu, torchvision 0.28.0):

    python3 make_fixtures.py OUT_DIR_FOR_LARGE_FILES

Writes, next to this script:
  convnet.safetensors            ConvNet-BN width 8 depth 2, 1x28x28, 10 classes, float32 (safetensors.torch)
  convnet.pt                     the same state dict, torch.save (zip archive, pickle protocol 2)
  convnet_ckpt.pt                {'epoch', 'arch', 'best_acc1', 'state_dict': {'module.' + key: tensor}}
  convnet_deflated.pt            convnet.pt with its zip entries deflated (torch.save stores them)
  convnet_legacy.pt              the state dict in the legacy format (PyTorch < 1.6: pickles, then raw storages)
  convnet_f16.safetensors        the weights in float16
  convnet_bf16.safetensors       the weights in bfloat16
  convnet_bf16.pt                {'model': state dict in bfloat16}, torch.save
  resnet18_small.pt              torchvision ResNet-18, CIFAR stem (conv1 3x3 stride 1, maxpool Identity), 10 classes
  resnet18_imagenet.pt           torchvision ResNet-18 as torchvision builds it (7x7 stride 2 + maxpool), 10 classes
  reference.json                 the eval-mode logits PyTorch gives for each file on the inputs below
and into OUT_DIR the ResNet-18 state dicts as .safetensors (45 MB each, too large to commit).

A ResNet-18 holds 11 M parameters (45 MB in float32), too much for the repository. Its .pt fixtures stay small
because every weight tensor is a strided view (torch.as_strided, overlapping, storage offset > 0) into one
shared storage (20000 floats for the weights, 8000 for the BN scales and for the shifts): torch.save writes the storage once and each tensor's offset and strides, and
the reader must honour them to get the weights (and the logits) right. The BN running statistics are measured
by running the model in train mode on random images (momentum None), then perturbed, so they are far from 0/1.

Inputs (no file): image i of a batch of N, flat index j over N*C*H*W in NCHW order, is
    x[j] = float32(1.5 * sin(0.013 * j + 0.5))       (computed in float64, rounded once)
"""
import json
import math
import os
import sys
import types
import zipfile
from collections import OrderedDict

# torchvision's compiled operators need a CUDA runtime in the PyPI wheel; the models are plain Python.
sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
import torch
import torch.nn as nn
import torchvision
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
LARGE = sys.argv[1] if len(sys.argv) > 1 else "/tmp/ld-interop-large"
os.makedirs(LARGE, exist_ok=True)
torch.manual_seed(20)


class ConvNet(nn.Module):
    """The seeds' ConvNet with BatchNorm (DC/DSA): [conv3x3 pad 1, BN, ReLU, avg-pool 2] x depth, linear."""

    def __init__(self, channel, num_classes, width, depth, im_size):
        super().__init__()
        layers, c, s = [], channel, im_size
        for _ in range(depth):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                       nn.AvgPool2d(2, 2)]
            c, s = width, s // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * s * s, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def inputs(n, c, h, w):
    count = n * c * h * w
    return torch.tensor([1.5 * math.sin(0.013 * j + 0.5) for j in range(count)], dtype=torch.float32).reshape(n, c, h, w)


def logits(model, state, x):
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    model.eval()
    with torch.no_grad():
        return model(x).tolist()


reference = {}

# --- ConvNet ------------------------------------------------------------------------------------------
convnet = ConvNet(1, 10, 8, 2, 28)
with torch.no_grad():
    for m in convnet.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.2)
            m.running_mean.normal_(0, 0.3)
            m.running_var.uniform_(0.3, 2.5)
            m.num_batches_tracked.fill_(17)
sd = convnet.state_dict()
x = inputs(4, 1, 28, 28)
ref = logits(ConvNet(1, 10, 8, 2, 28), sd, x)
save_file({k: v.contiguous() for k, v in sd.items()}, f"{HERE}/convnet.safetensors")
torch.save(sd, f"{HERE}/convnet.pt")
torch.save({"epoch": 7, "arch": "convnet", "best_acc1": 0.875,
            "state_dict": OrderedDict(("module." + k, v) for k, v in sd.items())}, f"{HERE}/convnet_ckpt.pt")
reference["convnet.safetensors"] = reference["convnet.pt"] = reference["convnet_ckpt.pt"] = ref


def deflate(src, dst):
    """torch.save stores its entries; a checkpoint re-zipped by other tools may deflate them (torch.load reads both)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    loaded = torch.load(dst, weights_only=True)
    assert all(torch.equal(loaded[k], v) for k, v in sd.items())


deflate(f"{HERE}/convnet.pt", f"{HERE}/convnet_deflated.pt")
reference["convnet_deflated.pt"] = ref
torch.save(sd, f"{HERE}/convnet_legacy.pt", _use_new_zipfile_serialization=False)   # PyTorch < 1.6's format
reference["convnet_legacy.pt"] = ref
half = OrderedDict((k, v.half() if v.is_floating_point() else v) for k, v in sd.items())
save_file(half, f"{HERE}/convnet_f16.safetensors")
reference["convnet_f16.safetensors"] = logits(ConvNet(1, 10, 8, 2, 28), half, x)
bf16 = OrderedDict((k, v.bfloat16() if v.is_floating_point() else v) for k, v in sd.items())
save_file(bf16, f"{HERE}/convnet_bf16.safetensors")
torch.save({"model": bf16}, f"{HERE}/convnet_bf16.pt")
reference["convnet_bf16.safetensors"] = reference["convnet_bf16.pt"] = logits(ConvNet(1, 10, 8, 2, 28), bf16, x)


# --- ResNet-18, both stems ----------------------------------------------------------------------------
def resnet18(stem):
    m = torchvision.models.resnet18(num_classes=10)
    if stem == "small":
        m.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        m.maxpool = nn.Identity()
    return m


PRIMES = [17, 7, 3, 1]


def strided(base, shape, offset):
    """A view of `base` with `shape`, strides (17, 7, 3, 1) for the last dims (2 for a vector), at `offset`."""
    stride = PRIMES[4 - len(shape):] if len(shape) > 1 else [2]
    return torch.as_strided(base, shape, stride, offset)


for stem, size in (("small", 32), ("imagenet", 64)):
    model = resnet18(stem)
    weights = torch.randn(20000) * 0.5
    gammas = torch.rand(8000) + 0.5
    betas = torch.randn(8000) * 0.2
    views, k = OrderedDict(), 0
    for name, p in model.named_parameters():
        base = gammas if (name.endswith(".weight") and p.dim() == 1) else betas if (name.endswith(".bias") and "fc" not in name) else weights
        views[name] = strided(base, tuple(p.shape), 97 * k + 5)
        k += 1
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(views[name])
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = None
                m.reset_running_stats()
        model.train()
        model(torch.randn(8, 3, size, size))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.add_(0.1 * torch.randn_like(m.running_mean) * m.running_var.sqrt())
                m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.8, 1.25))
                m.num_batches_tracked.fill_(391)
    state = OrderedDict()
    for name, t in model.state_dict().items():
        state[name] = views.get(name, t)
    x = inputs(2, 3, size, size)
    ref = logits(resnet18(stem), state, x)
    torch.save(state, f"{HERE}/resnet18_{stem}.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, f"{LARGE}/resnet18_{stem}.safetensors")
    reference[f"resnet18_{stem}.pt"] = reference[f"resnet18_{stem}.safetensors"] = ref

reference["_made_with"] = f"torch {torch.__version__}, torchvision {torchvision.__version__}"
with open(f"{HERE}/reference.json", "w") as f:
    json.dump(reference, f, indent=1)
print("wrote", sorted(os.listdir(HERE)))
