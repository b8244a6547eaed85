#!/usr/bin/env python3
"""Side-by-side timing of resin and ONNX Runtime on the same ONNX file, input and thread count.

For each model: ONNX Runtime (all graph optimizations on) median latency over N runs after warm-up, and
resin's median from `resin run --profile N` on the compiled .resin; the two alternate per model so both
see the same machine state. Also the cold start of each: wall time from process start to the first result
(`python -c` creating an ORT session and running once, against a standalone resin executable).

Usage: python3 benches/ort_time.py [--models DIR] [--threads 2] [--runs 10] [--batch 1] [names...]
Prints one table row per model: model, batch, threads, ort ms, resin ms, resin/ort.
"""
import argparse, os, statistics, subprocess, sys, tempfile, time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESIN = os.path.join(ROOT, "target", "release", "resin")


def ort_median(path, x, threads, runs):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    for _ in range(3):
        s.run(None, {name: x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, {name: x})
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def resin_median(resin_file, npy, threads, runs):
    out = subprocess.run([RESIN, "run", resin_file, "--input", npy, "--threads", str(threads), "--top", "0",
                          "--profile", str(runs)], capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("profile: median"))
    return float(line.split("median ")[1].split(" ms")[0])


def cold(cmd):
    times = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.environ.get("RESIN_MODELS", os.path.join(ROOT, "..", "shared", "models")))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--cold", action="store_true", help="also measure cold start (process start to first result)")
    ap.add_argument("names", nargs="*", default=["resnet18", "resnet50", "densenet121", "resnet20"])
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="resin-bench-")
    print(f"| model | batch | threads | ONNX Runtime ms | resin ms | resin / ORT |")
    print(f"|---|---|---|---|---|---|")
    for name in a.names:
        onnx_path = os.path.join(a.models, f"{name}.onnx")
        x = np.load(os.path.join(a.models, f"{name}_input.npy"))
        x = np.ascontiguousarray(np.repeat(x, a.batch, axis=0).astype(np.float32))
        npy = os.path.join(tmp, f"{name}_b{a.batch}.npy")
        np.save(npy, x)
        resin_file = os.path.join(tmp, f"{name}.resin")
        subprocess.run([RESIN, "compile", onnx_path, "-o", resin_file], capture_output=True, check=True)
        o = ort_median(onnx_path, x, a.threads, a.runs)
        r = resin_median(resin_file, npy, a.threads, a.runs)
        print(f"| {name} | {a.batch} | {a.threads} | {o:.1f} | {r:.1f} | {r / o:.2f} |", flush=True)
        if a.cold:
            exe = os.path.join(tmp, f"{name}-exe")
            subprocess.run([RESIN, "compile", onnx_path, "--exe", "-o", exe], capture_output=True, check=True)
            code = ("import numpy as np, onnxruntime as ort; so = ort.SessionOptions(); "
                    f"so.intra_op_num_threads = {a.threads}; "
                    f"s = ort.InferenceSession({onnx_path!r}, so, providers=['CPUExecutionProvider']); "
                    f"s.run(None, {{s.get_inputs()[0].name: np.load({npy!r})}})")
            co = cold([sys.executable, "-c", code])
            cr = cold([exe, "--input", npy, "--threads", str(a.threads), "--top", "0"])
            size = os.path.getsize(exe) / 2**20
            print(f"|   cold start: ORT (python, session, first run) {co:.0f} ms; resin executable ({size:.1f} MiB) {cr:.0f} ms |")


if __name__ == "__main__":
    main()
