#!/usr/bin/env python3
"""Checks ONNX files that resin exported against ONNX Runtime (used by tests/export.rs).

    python3 tests/export_check.py DIR [--ref REFDIR]

For every DIR/*.onnx, the model NAME is the file name up to its first dot (`resnet20.onnx` and
`resnet20.passes.onnx` are both `resnet20`). Each file must:

* pass `onnx.checker.check_model(full_check=True)`;
* run in ONNX Runtime (1 thread, graph optimizations off, as the references were made) on
  REFDIR/NAME_input.npy and match REFDIR/NAME_output.npy within 1e-4 + 1e-3*|ref| elementwise, with the
  same argmax per row for a 2-D output;
* when its first input dim is symbolic, give the same answer for each row of that input stacked 3 times.

REFDIR defaults to tests/models next to this script. One line per file; the exit status is 1 if any file
fails, 2 if there is nothing to check.
"""

import argparse
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort


def check(path: pathlib.Path, ref: pathlib.Path) -> float:
    name = path.name.split(".")[0]
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    x = np.load(ref / f"{name}_input.npy")
    want = np.load(ref / f"{name}_output.npy")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    got = sess.run(None, {inp.name: x})[0]
    diff = compare(got, want, "batch 1")
    if inp.shape and not isinstance(inp.shape[0], int):
        got3 = sess.run(None, {inp.name: np.concatenate([x] * 3)})[0]
        compare(got3, np.concatenate([want] * 3), "batch 3")
    return diff


def compare(got: np.ndarray, want: np.ndarray, what: str) -> float:
    if got.shape != want.shape:
        raise AssertionError(f"{what}: output shape {got.shape}, reference {want.shape}")
    d = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bad = d > 1e-4 + 1e-3 * np.abs(want)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, d, -1)), d.shape)
        raise AssertionError(f"{what}: element {i}: ort {got[i]} vs reference {want[i]} (diff {d[i]:.3g})")
    if want.ndim == 2 and (got.argmax(1) != want.argmax(1)).any():
        raise AssertionError(f"{what}: argmax differs")
    return float(d.max()) if d.size else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=pathlib.Path)
    ap.add_argument("--ref", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parent / "models")
    args = ap.parse_args()
    files = sorted(args.dir.glob("*.onnx"))
    if not files:
        print(f"no .onnx files in {args.dir}")
        return 2
    failed = 0
    for f in files:
        try:
            diff = check(f, args.ref)
            print(f"{f.name}: ok, checker passes, max abs diff {diff:.2e}")
        except Exception as e:  # one line per model, whatever went wrong
            failed += 1
            msg = " ".join(str(e).split())
            print(f"{f.name}: FAILED: {type(e).__name__}: {msg[:2000]}")
    print(f"{len(files) - failed}/{len(files)} passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
