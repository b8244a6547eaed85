#!/usr/bin/env python3
"""Counts the zoo's architectures as PyTorch builds them, for tests/zoo.rs (no large file is committed).

    python3 tests/zoo_reference.py            # writes tests/zoo_reference.json (~1 min on 2 cores)

For each architecture, built as torchvision (or tests/models/make_models.py, for the CIFAR ResNets and the
plain networks) builds it, with resin's default options for that zoo name (1000 classes and a 3x224x224 input
for the ImageNet models, 10 classes and 3x32x32 for CIFAR):

* `params`: sum(p.numel() for p in model.parameters()) (trainable parameters; BN running statistics are
  buffers and are not counted, as in resin's `Graph::param_count`);
* `macs`: multiply-accumulates for one sample, counted by forward hooks: Conv2d out_elems·(C_in/groups)·kh·kw,
  Linear out_features·in_features (resin's `Graph::macs` counts the same);
* `op_histogram`: the op types of `torch.onnx.export` (TorchScript exporter, opset 17,
  do_constant_folding=False, eval mode), as resin's importer sees them (an Identity of an initializer, which
  the exporter writes for a duplicated constant, is folded away).

Made with torch 2.15.0 and torchvision 0.29.2.
"""

import collections
import io
import json
import os
import sys

import onnx
import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import BasicBlock, ResNet

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "models"))
from make_models import PlainBlock, ResNet20  # noqa: E402  (the committed models' own definitions)


def plain(layers):
    """torchvision's ResNet with PlainBlock: the same layers, no addition, no downsample branch."""
    return ResNet(PlainBlock, layers)


def cifar(n, skips):
    m = ResNet20(n=n)
    if not skips:
        for blk in m.layers:
            blk.shortcut = None
            blk.forward = (lambda b: lambda x: torch.relu(b.bn2(b.conv2(torch.relu(b.bn1(b.conv1(x)))))))(blk)
    return m


ARCHS = {
    "resnet18": (lambda: torchvision.models.resnet18(weights=None), (3, 224, 224)),
    "resnet34": (lambda: torchvision.models.resnet34(weights=None), (3, 224, 224)),
    "resnet50": (lambda: torchvision.models.resnet50(weights=None), (3, 224, 224)),
    "resnet101": (lambda: torchvision.models.resnet101(weights=None), (3, 224, 224)),
    "resnet152": (lambda: torchvision.models.resnet152(weights=None), (3, 224, 224)),
    "plain18": (lambda: plain([2, 2, 2, 2]), (3, 224, 224)),
    "plain34": (lambda: plain([3, 4, 6, 3]), (3, 224, 224)),
    "densenet121": (lambda: torchvision.models.densenet121(weights=None), (3, 224, 224)),
    "resnet20": (lambda: cifar(3, True), (3, 32, 32)),
    "resnet56": (lambda: cifar(9, True), (3, 32, 32)),
    "plain20": (lambda: cifar(3, False), (3, 32, 32)),
    "plain56": (lambda: cifar(9, False), (3, 32, 32)),
}


def macs(model, shape):
    total = [0]

    def conv(m, inp, out):
        total[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m, inp, out):
        total[0] += m.in_features * m.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear))
    with torch.no_grad():
        model(torch.zeros((1,) + shape))
    for h in hooks:
        h.remove()
    return total[0]


def histogram(model, shape):
    buf = io.BytesIO()
    torch.onnx.export(model, (torch.zeros((1,) + shape),), buf, dynamo=False, opset_version=17,
                      do_constant_folding=False, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    m = onnx.load_from_string(buf.getvalue())
    # The exporter writes identical initializers (a fresh BatchNorm's ones and zeros) once, and the copies
    # as Identity nodes of that initializer; resin's importer folds those to constants, as any constant.
    inits = {t.name for t in m.graph.initializer}
    ops = [n.op_type for n in m.graph.node if not (n.op_type == "Identity" and n.input[0] in inits)]
    return dict(sorted(collections.Counter(ops).items()))


def main():
    torch.manual_seed(0)
    out = {}
    for name, (ctor, shape) in ARCHS.items():
        model = ctor().eval()
        out[name] = {
            "input": list(shape),
            "params": sum(p.numel() for p in model.parameters()),
            "macs": macs(model, shape),
            "op_histogram": histogram(model, shape),
        }
        print(name, out[name], flush=True)
    with open(os.path.join(HERE, "zoo_reference.json"), "w") as f:
        json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__, "models": out}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
