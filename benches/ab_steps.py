#!/usr/bin/env python3
"""Before/after a change: two or more resin builds on one model, step by step, in alternating rounds.

    cp target/release/resin /tmp/resin-old            # before the change
    cargo build --release                             # after it
    cp /tmp/resin-old /tmp/resin-old2                 # an identical build as a control
    flock /tmp/resin-cpu.lock python3 benches/ab_steps.py resnet50 /tmp/resin-old target/release/resin \
        /tmp/resin-old2 --threads 2 --rounds 8

Each round runs every build once, the order rotated from round to round (round r starts with build
r mod n; give a multiple of n rounds), as `resin run MODEL --profile N --steps 1000` (every
step timed, the mean over N runs), on the model compiled by that build. Steps are grouped by kind and
output size ("conv+relu 14px", "conv3x3(winograd4)+relu 56px", ...), and each group's time in each build
is divided by the first build's in the same round: the table shows, per group, each build's median ms and
the median of those paired ratios. A change shows as a ratio away from 1 in the groups it touches; the
control (a copy of the first build, under another file name) shows what this machine's noise does to
the same binary in the same rotation, and steps a change cannot reach (the max pool, the stem) show
whether the change's effect is real (the rotation cancels a luckier position in the round).

Why per-step rounds: this 2-core VM drifts by 25-40% within minutes, for whole processes at a time; a
round's builds run back to back, so their ratio sees the same phase, and a group's ratio is not diluted
by the steps the change did not touch.

Options: --threads (default 2), --rounds (default 6), --profile N (runs per profile, default 10),
--input PATH (a .npy; default the model's reference input in --models, e.g. a batch-8 input),
--models DIR (default $RESIN_MODELS or ../shared/models), --min-ms (groups under this in the first build
are not listed, default 0.2).
"""
import argparse
import collections
import os
import re
import statistics
import subprocess
import sys
import tempfile

from pinning import one_core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEP = re.compile(r"\s*\d+ (\S+)\s+(\S+)\s+\[(.*?)\]\s+[\d.]+ \S*MACs\s+([\d.]+) ms")


def groups(text):
    """Per-group ms (and the total) from `resin run --profile N --steps K` output."""
    out = collections.Counter()
    for line in text.splitlines():
        m = STEP.match(line)
        if not m:
            continue
        shape = [int(x) for x in m[3].split(",")]
        size = f"{shape[2]}px" if len(shape) > 2 else "-"
        out[f"{m[2]} {size}"] += float(m[4])
        out["TOTAL"] += float(m[4])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a model name in --models (resnet50) or a path to an .onnx file")
    ap.add_argument("builds", nargs="+", help="resin binaries; the first is the reference")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--profile", type=int, default=10)
    ap.add_argument("--input")
    ap.add_argument("--models", default=os.environ.get("RESIN_MODELS", os.path.join(ROOT, "..", "shared", "models")))
    ap.add_argument("--min-ms", type=float, default=0.2)
    a = ap.parse_args()
    onnx = a.model if a.model.endswith(".onnx") else os.path.join(a.models, a.model + ".onnx")
    name = os.path.basename(onnx)[: -len(".onnx")]
    inp = a.input or os.path.join(os.path.dirname(onnx), name + "_input.npy")
    for f in [onnx, inp] + a.builds:
        if not os.path.exists(f):
            sys.exit(f"{f} is missing")
    tmp = tempfile.mkdtemp(prefix="ab_steps-")
    compiled = []
    for i, b in enumerate(a.builds):
        path = os.path.join(tmp, f"{i}.resin")
        subprocess.run([b, "compile", onnx, "-o", path], check=True, capture_output=True)
        compiled.append(path)
    runs = [[] for _ in a.builds]
    for r in range(a.rounds):
        # Round r starts with build r mod n: a position in the rotation can be luckier than another
        # (measured: the build run second in each round ~5% faster, whichever it was), and rotating
        # over a multiple of n rounds cancels that.
        for i in [(r + j) % len(a.builds) for j in range(len(a.builds))]:
            b, c = a.builds[i], compiled[i]
            # 1 thread: pinned to one core, the same for every build (`pinning.py`).
            with one_core(a.threads):
                out = subprocess.run([b, "run", c, "--input", inp, "--profile", str(a.profile), "--steps", "1000",
                                      "--threads", str(a.threads)], capture_output=True, text=True, check=True)
            runs[i].append(groups(out.stdout))
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    first = runs[0]
    keys = sorted({k for rr in runs for g in rr for k in g}, key=lambda k: -statistics.median(g[k] for g in first))
    names = [f"{i}:{os.path.basename(b)}"[-16:] for i, b in enumerate(a.builds)]
    print(f"{name}, {a.threads} thread(s), {a.rounds} rounds; ms (median) and paired ratio to build 0")
    print("| group | " + " | ".join(names) + " | " + " | ".join(f"{n} / 0" for n in names[1:]) + " |")
    print("|---" * (1 + 2 * len(names) - 1) + "|")
    for k in keys:
        meds = [statistics.median(g[k] for g in rr) for rr in runs]
        if meds[0] < a.min_ms and k != "TOTAL":
            continue
        ratios = [statistics.median(y[k] / x[k] for x, y in zip(first, rr) if x[k] > 0) for rr in runs[1:]]
        print(f"| {k} | " + " | ".join(f"{m:.2f}" for m in meds) + " | " + " | ".join(f"{r:.3f}" for r in ratios) + " |")


if __name__ == "__main__":
    main()
