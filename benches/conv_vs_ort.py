#!/usr/bin/env python3
"""One convolution at a time, resin against ONNX Runtime: where the per-layer gap is, without profilers.

    flock /tmp/resin-cpu.lock python3 benches/conv_vs_ort.py --threads 1 2
    flock /tmp/resin-cpu.lock python3 benches/conv_vs_ort.py --shapes 1024,256,1,1,14 128,128,3,2,56

Each shape (cin, cout, kernel, stride, input size; "same" padding) becomes a one-Conv-plus-Relu ONNX model
with random weights, written to a temporary folder; then, in --rounds alternating rounds, `resin bench
MODEL --json` and an ONNX Runtime session (all graph optimizations, the same thread count) each time
--runs runs (1 thread: both pinned to one core, see pinning.py), and the table shows each engine's
median of its rounds' medians and the ratio. Both engines find the layer's weights and input in cache,
unlike inside a network: the ratio measures the kernels.
The default shapes are ResNet-50's 1x1 convolutions and its stride-2 3x3s at batch 1.

Options: --threads (default 1 2), --rounds (default 3), --runs (default 200), --shapes (default above),
--resin PATH (default target/release/resin).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from pinning import one_core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = ["256,64,1,1,56", "64,256,1,1,56", "512,128,1,1,28", "128,512,1,1,28", "1024,256,1,1,14",
          "256,1024,1,1,14", "2048,512,1,1,7", "512,2048,1,1,7", "128,128,3,2,56", "256,256,3,2,28",
          "512,512,3,2,14"]


def model(folder, cin, cout, k, s, h, rng):
    import onnx
    import onnx.helper as oh
    import numpy as np
    w = rng.standard_normal((cout, cin, k, k)).astype(np.float32) * 0.05
    b = rng.standard_normal(cout).astype(np.float32)
    g = oh.make_graph(
        [oh.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4),
         oh.make_node("Relu", ["c"], ["y"])], "conv",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, cin, h, h])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(b, "b")])
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)])
    m.ir_version = 8
    path = os.path.join(folder, f"conv_{cin}_{cout}_{k}_{s}_{h}.onnx")
    onnx.save(m, path)
    return path


def ort_ms(path, cin, h, threads, runs, rng):
    import numpy as np
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    x = rng.standard_normal((1, cin, h, h)).astype(np.float32)
    for _ in range(20):
        sess.run(None, {"x": x})
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, {"x": x})
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def resin_ms(exe, path, threads, runs):
    out = subprocess.run([exe, "bench", path, "--threads", str(threads), "--runs", str(runs), "--warmup", "20",
                          "--json", "--no-peak"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["median_ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--shapes", nargs="*", default=SHAPES)
    ap.add_argument("--resin", default=os.path.join(ROOT, "target", "release", "resin"))
    a = ap.parse_args()
    if not os.path.exists(a.resin):
        sys.exit(f"{a.resin} is missing: run `cargo build --release` first")
    import numpy as np
    rng = np.random.default_rng(0)
    print(f"Measured {time.strftime('%Y-%m-%d')}; `python3 benches/conv_vs_ort.py`: median of {a.rounds} alternating "
          f"rounds of {a.runs} runs each\n")
    print("| convolution | threads | resin ms | ORT ms | resin / ORT |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for shape in a.shapes:
            cin, cout, k, s, h = (int(v) for v in shape.split(","))
            path = model(folder, cin, cout, k, s, h, rng)
            for t in a.threads:
                ours, theirs = [], []
                for _ in range(a.rounds):
                    # 1 thread: both on the same core (see pinning.py).
                    with one_core(t):
                        ours.append(resin_ms(a.resin, path, t, a.runs))
                        theirs.append(ort_ms(path, cin, h, t, a.runs, rng))
                r, o = statistics.median(ours), statistics.median(theirs)
                print(f"| {cin}->{cout} {k}x{k}/{s} {h}px | {t} | {r:.3f} | {o:.3f} | {r / o:.2f} |", flush=True)


if __name__ == "__main__":
    main()
