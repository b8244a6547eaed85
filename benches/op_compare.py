#!/usr/bin/env python3
"""Where resin loses to ONNX Runtime on ResNet-50, operator group by operator group.

    flock /tmp/resin-cpu.lock python3 benches/op_compare.py --threads 2 --rounds 3

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

Options: --threads (default 2), --rounds (default 3), --runs (profiled runs per round, default 20),
--models DIR (default $RESIN_MODELS or ../shared/models), --resin PATH (default target/release/resin).
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
    return "3x3 stride 2" if block == "0" and stage != "1" else "3x3 stride 1"


def resin_groups(exe, model, npy, threads, runs):
    out = subprocess.run([exe, "run", model, "--input", npy, "--profile", str(runs), "--steps", "1000",
                          "--threads", str(threads), "--top", "0"], capture_output=True, text=True, check=True).stdout
    sums = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s+\d+ (\S+)\s.*?([0-9.]+) ms", line)
        if m:
            sums[group(m.group(1), False)] += float(m.group(2))
    return sums


def ort_groups(onnx_path, npy, threads, runs, tmp):
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
        sums[group(node, True)] += statistics.median(per_run[-runs:])
    return sums


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--models", default=os.environ.get("RESIN_MODELS", os.path.join(ROOT, "..", "shared", "models")))
    ap.add_argument("--resin", default=os.path.join(ROOT, "target", "release", "resin"))
    a = ap.parse_args()
    onnx_path = os.path.join(a.models, "resnet50.onnx")
    npy = os.path.join(a.models, "resnet50_input.npy")
    if not os.path.exists(onnx_path):
        sys.exit(f"op_compare: {onnx_path} not found (set --models or RESIN_MODELS to the directory of resnet50.onnx)")
    res, ort_ = collections.defaultdict(list), collections.defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "resnet50.resin")
        subprocess.run([a.resin, "compile", onnx_path, "-o", model], check=True, capture_output=True)
        for r in range(a.rounds):
            for k, v in resin_groups(a.resin, model, npy, a.threads, a.runs).items():
                res[k].append(v)
            for k, v in ort_groups(onnx_path, npy, a.threads, a.runs, tmp).items():
                ort_[k].append(v)
            print(f"round {r + 1}/{a.rounds} done", file=sys.stderr, flush=True)
    print(f"ResNet-50, batch 1, {a.threads} thread(s), {a.rounds} rounds ({time.strftime('%Y-%m-%d')})")
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
