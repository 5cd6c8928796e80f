#!/usr/bin/env python3
"""The outside check of ld-squeeze --export (documentation only; the tests never run it): PyTorch loads ld's
safetensors with load_state_dict(strict=True) and measures what ld measured.

    python3 check_export.py student.safetensors [resnet18_small_export.safetensors resnet18_imagenet_export.safetensors]

student.safetensors: an ld ConvNet for Fashion-MNIST exported by `ld-squeeze --export`; loaded into the DC/DSA
ConvNet-BN (make_fixtures.py's ConvNet) with the width and depth of its metadata, evaluated on fmnist:test
(/usr/share/datasets/fashion-mnist, normalised with the metadata's mean and std): top-1 and mean cross-entropy.
The ResNet files: the fixtures' ResNet-18s imported by ld and exported again; loaded into torchvision's
resnet18 (strict=True) and run on make_fixtures.py's inputs; printed: the largest difference to reference.json.
"""
import gzip
import json
import math
import os
import sys
import types

sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
import torch
import torch.nn as nn
import torchvision
from safetensors import safe_open
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.argv += [] if len(sys.argv) > 1 else ["student.safetensors"]


class ConvNet(nn.Module):
    def __init__(self, channel, num_classes, width, depth, im_size):
        super().__init__()
        layers, c, s = [], channel, im_size
        for _ in range(depth):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2)]
            c, s = width, s // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * s * s, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def find(name):
    for ext in ("", ".gz"):
        p = f"/usr/share/datasets/fashion-mnist/{name}{ext}"
        if os.path.exists(p):
            return p
    raise SystemExit(f"no {name} in /usr/share/datasets/fashion-mnist")


def metadata(path):
    with safe_open(path, "pt") as f:
        return f.metadata()


student = sys.argv[1]
meta = metadata(student)
C, H, W = json.loads(meta["input_size"])
model = ConvNet(C, len(json.loads(meta["class_names"])), int(meta["width"]), int(meta["depth"]), H)
print("load_state_dict(strict=True):", model.load_state_dict(load_file(student), strict=True))
model.eval()
images = idx(find("t10k-images-idx3-ubyte")).float().div(255).unsqueeze(1)
labels = idx(find("t10k-labels-idx1-ubyte")).long()
mean = torch.tensor(json.loads(meta["mean"])).view(1, -1, 1, 1)
std = torch.tensor(json.loads(meta["std"])).view(1, -1, 1, 1)
with torch.no_grad():
    logits = torch.cat([model((images[i:i + 1000] - mean) / std) for i in range(0, len(images), 1000)])
top1 = (logits.argmax(1) == labels).float().mean().item() * 100
loss = nn.functional.cross_entropy(logits, labels).item()
print(f"PyTorch on fmnist:test: top1 {top1:.2f}% loss {loss:.5f} ({len(labels)} images)")

reference = json.load(open(f"{HERE}/reference.json"))
for path in sys.argv[2:]:
    meta = metadata(path)
    stem, (C, H, W) = meta["stem"], json.loads(meta["input_size"])
    m = torchvision.models.resnet18(num_classes=len(json.loads(meta["class_names"])))
    if stem == "small":
        m.conv1 = nn.Conv2d(C, 64, kernel_size=3, stride=1, padding=1, bias=False)
        m.maxpool = nn.Identity()
    print(path, "load_state_dict(strict=True):", m.load_state_dict(load_file(path), strict=True))
    m.eval()
    size = 32 if stem == "small" else 64
    n = 2
    x = torch.tensor([1.5 * math.sin(0.013 * j + 0.5) for j in range(n * 3 * size * size)], dtype=torch.float32).reshape(n, 3, size, size)
    with torch.no_grad():
        out = m(x)
    ref = torch.tensor(reference[f"resnet18_{stem}.pt"])
    print(f"  logits vs reference.json: max |diff| / max |ref| = {((out - ref).abs().max() / ref.abs().max()).item():.2e}")
