#!/usr/bin/env python3
"""Training throughput, resin against PyTorch, on the same models, batch and threads.

    cargo build --release --example train_bench
    python3 benches/train_torch.py [--threads 1] [--batch 128] [--steps 30]

Each model is built in PyTorch, exported to ONNX (the file resin trains), and timed in both: one SGD step
(forward, cross-entropy, backward, update) on a fixed random batch, median over --steps steps after warm-up.
Prints samples/s and resin/PyTorch. The MLPs are those of tests/fixtures/train/make_fixtures.py at a bigger
size (input 64, width 256, 8 layers); ResNet-20 is the CIFAR ResNet (3x32x32 input, batch --conv-batch).
Run it with nothing else busy (e.g. under `flock /tmp/resin-cpu.lock`).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "train"))
from make_fixtures import MLP, GatedMLP  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tests", "models"))


def resnet20():
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.proj = None
            if stride != 1 or cin != cout:
                self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            o = F.relu(self.b1(self.c1(x)))
            o = self.b2(self.c2(o))
            return F.relu(o + (x if self.proj is None else self.proj(x)))

    class ResNet20(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn = nn.BatchNorm2d(16)
            layers, cin = [], 16
            for w, s in [(16, 1), (32, 2), (64, 2)]:
                for i in range(3):
                    layers.append(Block(cin, w, s if i == 0 else 1))
                    cin = w
            self.layers = nn.Sequential(*layers)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = self.layers(F.relu(self.bn(self.conv(x))))
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    return ResNet20()


def torch_rate(model, shape, batch, steps):
    torch.manual_seed(0)
    x = torch.randn(batch, *shape)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train()
    times = []
    for i in range(steps + 3):
        t = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t)
    times.sort()
    return batch / times[len(times) // 2]


def resin_rate(path, batch, threads, steps, exe):
    out = subprocess.run([exe, path, "--batch", str(batch), "--threads", str(threads), "--steps", str(steps)],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"([0-9.]+) samples/s", out).group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--conv-batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--exe", default=os.environ.get("RESIN_TRAIN_BENCH", os.path.join(ROOT, "target", "release", "examples", "train_bench")))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    models = [(f"{k}-mlp", lambda k=k: MLP(k, din=64, width=256, layers=8), (64,), a.batch)
              for k in ["plain", "res", "highway", "dense"]]
    models.append(("gated-highway-mlp", lambda: GatedMLP(din=64, width=256, layers=8), (64,), a.batch))
    models.append(("resnet20", resnet20, (3, 32, 32), a.conv_batch))
    print(f"threads {a.threads}; torch {torch.__version__}")
    print(f"| model | batch | PyTorch samples/s | resin samples/s | resin / PyTorch |")
    print(f"|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for name, ctor, shape, batch in models:
            torch.manual_seed(0)
            m = ctor()
            path = os.path.join(d, f"{name}.onnx")
            m.eval()
            torch.onnx.export(m, (torch.zeros(2, *shape),), path, dynamo=False, opset_version=17,
                              do_constant_folding=False, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
            pt = torch_rate(m, shape, batch, a.steps)
            rs = resin_rate(path, batch, a.threads, a.steps, a.exe)
            print(f"| {name} | {batch} | {pt:.0f} | {rs:.0f} | {rs / pt:.2f} |", flush=True)


if __name__ == "__main__":
    main()
