#!/usr/bin/env python3
"""Training throughput, resin against PyTorch, on the same models, batch and threads.

    cargo build --release --example train_bench
    flock /tmp/resin-cpu.lock python3 benches/train_torch.py [--threads 1,2] [--rounds 3] [--models resnet20]

Each model is built in PyTorch, exported to ONNX (the file resin trains), and timed in both: one SGD step
(forward, cross-entropy, backward, update) on a fixed random batch, the median over --steps steps after
warm-up; resin and PyTorch runs alternate --rounds times per row. Prints a Markdown table: model, batch,
threads, the median resin and PyTorch samples/s, and resin/PyTorch as the median of the rounds' paired
ratios (each round's two runs back to back, so the machine's drift between rounds cancels). The MLPs are those of tests/fixtures/train/make_fixtures.py at a bigger
size (input 64, width 256, 8 layers); ResNet-20 is the CIFAR ResNet (3x32x32 input, batch --conv-batch).
Run it with nothing else busy (e.g. under `flock /tmp/resin-cpu.lock`). 1-thread rows run both engines pinned
to the same core (this VM's two cores differ in speed; since session 10).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
from pinning import one_core  # noqa: E402

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
    return batch / statistics.median(times)


def resin_rate(path, batch, threads, steps, exe):
    out = subprocess.run([exe, path, "--batch", str(batch), "--threads", str(threads), "--steps", str(steps)],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"([0-9.]+) samples/s", out).group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--conv-batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per run (median taken)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating resin/PyTorch runs per row (median taken)")
    ap.add_argument("--models", default="", help="comma-separated subset of the model names")
    ap.add_argument("--keep", default="", help="directory to keep the exported ONNX files in")
    ap.add_argument("--merge", action="store_true",
                    help="also time each layer's matrices merged into one product against one product per matrix")
    ap.add_argument("--exe", default=os.environ.get("RESIN_TRAIN_BENCH", os.path.join(ROOT, "target", "release", "examples", "train_bench")))
    a = ap.parse_args()
    models = [(f"{k}-mlp", lambda k=k: MLP(k, din=64, width=256, layers=8), (64,), a.batch)
              for k in ["plain", "res", "highway", "dense"]]
    models.append(("gated-highway-mlp", lambda: GatedMLP(din=64, width=256, layers=8), (64,), a.batch))
    models.append(("resnet20", resnet20, (3, 32, 32), a.conv_batch))
    if a.models:
        keep = a.models.split(",")
        models = [m for m in models if m[0] in keep]
    threads = [int(t) for t in a.threads.split(",")]
    print(f"torch {torch.__version__}; medians of {a.rounds} alternating runs of {a.steps} steps each")
    print("| model | batch | threads | resin samples/s | PyTorch samples/s | resin / PyTorch |")
    print("|---|---|---|---|---|---|")
    merged = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = a.keep or tmp
        os.makedirs(d, exist_ok=True)
        for name, ctor, shape, batch in models:
            torch.manual_seed(0)
            m = ctor()
            path = os.path.join(d, f"{name}.onnx")
            m.eval()
            torch.onnx.export(m, (torch.zeros(2, *shape),), path, dynamo=False, opset_version=17,
                              do_constant_folding=False, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
            init = {k: v.clone() for k, v in m.state_dict().items()}
            for t in threads:
                torch.set_num_threads(t)
                pts, rss = [], []
                for _ in range(a.rounds):
                    m.load_state_dict(init)
                    # 1 thread: PyTorch (in this process) and resin (its child) on the same core.
                    with one_core(t):
                        pts.append(torch_rate(m, shape, batch, a.steps))
                        rss.append(resin_rate(path, batch, t, a.steps, a.exe))
                pt, rs = statistics.median(pts), statistics.median(rss)
                # The ratio is the median of each round's resin/PyTorch pair, run back to back: on a shared
                # machine whose speed drifts between rounds, pairs cancel the drift that a ratio of the two
                # medians would keep.
                ratio = statistics.median(r / p for r, p in zip(rss, pts))
                print(f"| {name} | {batch} | {t} | {rs:.0f} | {pt:.0f} | {ratio:.2f} |", flush=True)
            if a.merge and name in ("highway-mlp", "dense-mlp"):
                merged[name] = (batch, path)
        if merged:
            print()
            print("| model | batch | threads | merged ms/step | separate ms/step | separate / merged |")
            print("|---|---|---|---|---|---|")
            for name, (batch, path) in merged.items():
                for t in threads:
                    ms, ss = [], []
                    for _ in range(a.rounds):
                        out = subprocess.run([a.exe, path, "--batch", str(batch), "--threads", str(t), "--steps",
                                              str(a.steps), "--compare-merge"], capture_output=True, text=True,
                                             check=True).stdout
                        m = re.search(r"merged .*?: ([0-9.]+) ms/step; separate: ([0-9.]+) ms/step", out)
                        ms.append(float(m.group(1)))
                        ss.append(float(m.group(2)))
                    mm, sm = statistics.median(ms), statistics.median(ss)
                    print(f"| {name} | {batch} | {t} | {mm:.2f} | {sm:.2f} | {sm / mm:.2f} |", flush=True)


if __name__ == "__main__":
    main()
