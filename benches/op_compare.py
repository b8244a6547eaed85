#!/usr/bin/env python3
"""Where resin loses to ONNX Runtime on ResNet-50 or DenseNet-121, operator group by operator group.

    flock /tmp/resin-cpu.lock python3 benches/op_compare.py --threads 2 --rounds 3
    flock /tmp/resin-cpu.lock python3 benches/op_compare.py --model densenet121
    flock /tmp/resin-cpu.lock python3 benches/op_compare.py --batch 8 --runs 5

Each round runs `resin run --profile N` (every step timed) and ONNX Runtime with its profiler on
(`SessionOptions.enable_profiling`, every node's kernel time), back to back, and sums each engine's step
times into the same groups: the stem convolution, the max pool, each stage's 1x1 reduce and 1x1 expand
convolutions, the stride-1 and stride-2 3x3 convolutions, the projection shortcuts and the classifier.
ONNX Runtime names a fused node after the output it writes, so its groups are read from those names
(`.../relu/Relu_output_0_nchwc` is a block's first 1x1 convolution, `relu_1` its 3x3, `bn3` its second 1x1,
`downsample` its shortcut). It prints, per group, the median ms of each engine and the median of the
rounds' paired ratios resin/ORT. Both profilers add a little time to every step; the ratios are what to
read, and the groups whose ratio stands out are where to work (this table found the max pool at 5.7x and
the classifier at 1.5x).

DenseNet-121's groups are per dense block: the bottleneck 1x1 convolutions (with their BatchNorm+ReLU, which
resin runs inside the convolution and ONNX Runtime partly as separate nodes, grouped as "pre"), the 3x3
growth convolutions, the transitions, the stem. resin's steps are grouped by kind and output shape (32
channels: growth; 128 channels with a Relu: bottleneck; the map size gives the block), ONNX Runtime's by
name. ONNX Runtime's profiler adds time to every node, and DenseNet-121 has over 400: one profiled run summed
to 82 ms against 49 unprofiled (2 threads), another to 40 ms. Compare ratios from the same run only.

Options: --model resnet50|densenet121 (default resnet50), --threads (default 2), --rounds (default 3),
--runs (profiled runs per round, default 20), --batch B (default 1: the reference input repeated B times), --models DIR (default $RESIN_MODELS or ../shared/models),
--resin PATH (default target/release/resin).
"""
import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from pinning import one_core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def group(name, ort_names):
    """The group of a resin step (its ONNX node name) or of an ORT node (its fused output name)."""
    if name.startswith("/conv1/" if not ort_names else "/relu/"):
        return "stem 7x7"
    if "maxpool" in name.lower():
        return "max pool"
    if "/fc/" in name:
        return "classifier"
    m = re.match(r"/layer(\d)/layer\d\.(\d)/(conv\d|downsample|relu_1|relu|bn3)/", name)
    if not m:
        return "other"
    stage, block, part = m.groups()
    if part == "downsample":
        return "shortcut 1x1"
    first = {"conv1", "relu"}
    second = {"conv3", "bn3"}
    if part in first:
        return f"1x1 reduce L{stage}"
    if part in second:
        return f"1x1 expand L{stage}"
    return "3x3 stride 2" if block == "0" and stage != "1" else f"3x3 stride 1 L{stage}"


# DenseNet-121's dense blocks by map size.
DENSE_BLOCK = {56: 1, 28: 2, 14: 3, 7: 4}


def group_densenet_resin(kind, shape):
    """The group of a resin step of DenseNet-121, from its kind and output shape [1, C, H, W]."""
    c, h = shape[1], shape[2] if len(shape) > 2 else 0
    if h == 112:
        return "stem"
    if "pool" in kind:
        return "pooling"
    if c == 32:
        return f"growth 3x3 B{DENSE_BLOCK.get(h)}"
    if c == 128 and kind.startswith("conv+relu"):
        return f"bottleneck 1x1 B{DENSE_BLOCK.get(h)}"
    if kind.startswith("conv"):
        return f"transition {DENSE_BLOCK.get(h)}"
    return "other"


def group_densenet_ort(name):
    """The group of an ONNX Runtime node of DenseNet-121, from its (fused output) name."""
    m = re.search(r"denseblock(\d)/denselayer\d+/(\w+)", name)
    if m:
        block, part = m.groups()
        if part == "conv2":
            return f"growth 3x3 B{block}"
        if part in ("relu2", "norm2", "conv1"):
            return f"bottleneck 1x1 B{block}"
        return f"pre (BN+ReLU) B{block}"
    m = re.search(r"transition(\d)", name)
    if m:
        return "pooling" if "pool" in name else f"transition {m.group(1)}"
    if any(k in name for k in ("conv0", "norm0", "relu0")):
        return "stem"
    return "pooling" if "pool" in name.lower() else "other"


def resin_groups(exe, model, npy, threads, runs, densenet):
    out = subprocess.run([exe, "run", model, "--input", npy, "--profile", str(runs), "--steps", "1000",
                          "--threads", str(threads), "--top", "0"], capture_output=True, text=True, check=True).stdout
    sums = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s+\d+ (\S+)\s+(\S+)\s+\[([\d, ]+)\].*?([0-9.]+) ms", line)
        if m:
            name, kind, shape, ms = m.groups()
            key = group_densenet_resin(kind, [int(d) for d in shape.split(",")]) if densenet else group(name, False)
            sums[key] += float(ms)
    return sums


def ort_groups(onnx_path, npy, threads, runs, tmp, densenet):
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tmp, "ort")
    s = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    x = np.load(npy)
    name = s.get_inputs()[0].name
    for _ in range(runs + 5):
        s.run(None, {name: x})
    events = json.load(open(s.end_profiling()))
    times = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            times[e["name"][: -len("_kernel_time")]].append(e["dur"] / 1e3)
    sums = collections.Counter()
    for node, t in times.items():
        # Several nodes may share a name (ORT's layout reorders): q events a run, summed per run.
        q = max(1, len(t) // (runs + 5))
        per_run = [sum(t[i * q:(i + 1) * q]) for i in range(len(t) // q)]
        sums[group_densenet_ort(node) if densenet else group(node, True)] += statistics.median(per_run[-runs:])
    return sums


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=["resnet50", "densenet121"], default="resnet50")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=1, help="images per run (the reference input repeated)")
    ap.add_argument("--models", default=os.environ.get("RESIN_MODELS", os.path.join(ROOT, "..", "shared", "models")))
    ap.add_argument("--resin", default=os.path.join(ROOT, "target", "release", "resin"))
    a = ap.parse_args()
    onnx_path = os.path.join(a.models, f"{a.model}.onnx")
    npy = os.path.join(a.models, f"{a.model}_input.npy")
    if not os.path.exists(onnx_path):
        sys.exit(f"op_compare: {onnx_path} not found (set --models or RESIN_MODELS to the directory of {a.model}.onnx)")
    densenet = a.model == "densenet121"
    res, ort_ = collections.defaultdict(list), collections.defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        if a.batch > 1:
            import numpy as np

            x = np.load(npy)
            npy = os.path.join(tmp, "input.npy")
            np.save(npy, np.repeat(x, a.batch, axis=0))
        model = os.path.join(tmp, f"{a.model}.resin")
        subprocess.run([a.resin, "compile", onnx_path, "-o", model], check=True, capture_output=True)
        for r in range(a.rounds):
            # 1 thread: both engines on the same core (ONNX Runtime in this process, resin as its child).
            with one_core(a.threads):
                for k, v in resin_groups(a.resin, model, npy, a.threads, a.runs, densenet).items():
                    res[k].append(v)
                for k, v in ort_groups(onnx_path, npy, a.threads, a.runs, tmp, densenet).items():
                    ort_[k].append(v)
            print(f"round {r + 1}/{a.rounds} done", file=sys.stderr, flush=True)
    title = "DenseNet-121" if densenet else "ResNet-50"
    print(f"{title}, batch {a.batch}, {a.threads} thread(s), {a.rounds} rounds ({time.strftime('%Y-%m-%d')})")
    print("| group | resin ms | ORT ms | resin / ORT |")
    print("|---|---|---|---|")
    total = [0.0, 0.0]
    for k in sorted(set(ort_) - set(res)):
        print(f"| {k} | - | {statistics.median(ort_[k]):.2f} | - |")
    for k in sorted(res, key=lambda k: -statistics.median(res[k])):
        if k not in ort_ or len(ort_[k]) != len(res[k]):
            print(f"| {k} | {statistics.median(res[k]):.2f} | - | - |")
            continue
        r, o = statistics.median(res[k]), statistics.median(ort_[k])
        total[0] += r
        total[1] += o
        ratio = statistics.median(x / y for x, y in zip(res[k], ort_[k]))
        print(f"| {k} | {r:.2f} | {o:.2f} | {ratio:.2f} |")
    print(f"| total | {total[0]:.2f} | {total[1]:.2f} | {total[0] / total[1]:.2f} |")


if __name__ == "__main__":
    main()
