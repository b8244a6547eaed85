#!/usr/bin/env python3
"""resin against ONNX Runtime and tract: the same ONNX file, input shape, batch and thread count, one table.

Every measurement is a fresh process (so each engine's peak RSS is its own): `resin bench --json` on the
model compiled to .resin (as deployed),
ONNX Runtime through this script's `--ort-worker` mode (CPU provider, all graph optimizations on,
intra-op threads = T, inter-op 1), and tract through benches/tract-bench (tract-onnx's optimized plan,
tract-linalg's multithreaded executor). The engines alternate, ROUNDS times; the table shows each
engine's median of its rounds' medians, and the ratios resin/ORT and resin/tract as the median of the
rounds' paired ratios (each round's runs back to back), so that the machine's drift between rounds,
25-40% over minutes on a shared VM, cancels instead of landing on one engine. Each measurement times at
least --runs runs, and more for a fast configuration: enough that resin's runs last --min-ms (300 ms by
default; ResNet-20 at batch 1 gets ~300 runs instead of --runs, which is 3 in the README's command), with a
quarter as many warm-up runs; every engine gets the same counts. 1-thread measurements run pinned to one
core, the same for every engine (`benches/pinning.py`): this VM's two cores differ in speed, and by how much changes.

Usage:
  cargo build --release                       # resin
  python3 benches/compare.py                  # all models, batch 1 and 8, 1 and 2 threads
  python3 benches/compare.py --models resnet50 --batch 1 --threads 2 --rounds 5
Models come from $RESIN_MODELS (default ../shared/models). The table goes to stdout and, as Markdown,
to benches/results.md; a plot of the ratios to benches/results.svg.
"""
import argparse, json, math, os, statistics, subprocess, sys, tempfile, time

from pinning import one_core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESIN = os.environ.get("RESIN_BIN", os.path.join(ROOT, "target", "release", "resin"))
TRACT_DIR = os.path.join(ROOT, "benches", "tract-bench")
TRACT = os.path.join(ROOT, "target", "tract-bench", "release", "tract-bench")
INPUT_SHAPES = {"resnet18": [3, 224, 224], "resnet50": [3, 224, 224], "densenet121": [3, 224, 224],
                "resnet20": [3, 32, 32]}


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def ort_worker(path, batch, threads, runs, warmup):
    import numpy as np
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    inp = s.get_inputs()[0]
    shape = [batch] + [d for d in inp.shape[1:]]
    x = np.random.default_rng(0).uniform(-1, 1, size=shape).astype(np.float32)
    for _ in range(warmup):
        s.run(None, {inp.name: x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, {inp.name: x})
        times.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({"engine": "ort", "batch": batch, "threads": threads, "runs": runs,
                      "median_ms": statistics.median(times), "peak_rss_mib": peak_rss_mib()}))


def run_json(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip().splitlines()[-1:] }")
    return json.loads(out.stdout.strip().splitlines()[-1])


def compiled(path):
    """The model compiled to .resin once (resin is timed and its RSS measured as deployed: loading a .resin)."""
    out = os.path.join(tempfile.gettempdir(), "resin-compare-" + os.path.basename(path) + ".resin")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(RESIN):
        subprocess.run([RESIN, "compile", path, "-o", out], check=True, capture_output=True)
    return out


def measure(engine, path, name, batch, threads, runs, warmup):
    if engine == "resin":
        return run_json([RESIN, "bench", compiled(path), "--batch", str(batch), "--threads", str(threads),
                         "--runs", str(runs), "--warmup", str(warmup), "--json", "--no-peak"])
    if engine == "ort":
        return run_json([sys.executable, os.path.abspath(__file__), "--ort-worker", path, str(batch), str(threads),
                         str(runs), str(warmup)])
    shape = ",".join(str(d) for d in [batch] + INPUT_SHAPES[name])
    return run_json([TRACT, path, "--shape", shape, "--threads", str(threads), "--runs", str(runs),
                     "--warmup", str(warmup)])


def runs_for(path, batch, threads, runs, min_ms):
    """Timed and warm-up runs for one configuration: at least `runs`, and enough that resin's timed runs
    last about `min_ms` (a 1 ms ResNet-20 timed 3 times measured the VM's hiccups, not the engines);
    warm-up a quarter of that, at least 3. Every engine gets the same counts."""
    est = measure("resin", path, None, batch, threads, 3, 2)["median_ms"]
    n = max(runs, math.ceil(min_ms / max(est, 1e-3)))
    return n, max(3, n // 4)


def build_tract():
    if not os.path.exists(TRACT):
        print("building benches/tract-bench (first run only) ...", file=sys.stderr)
        env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "target", "tract-bench"))
        subprocess.run(["cargo", "build", "--release", "--manifest-path", os.path.join(TRACT_DIR, "Cargo.toml")],
                       check=True, env=env)



def svg_plot(rows, path):
    """Bars of resin/ORT and resin/tract latency ratios per configuration (below 1 = resin faster)."""
    w, bar, gap, h = 900, 12, 10, 40 + len(rows) * (2 * 12 + 10) + 40
    xmax = max([2.0] + [r[k] for r in rows for k in ("vs_ort", "vs_tract") if r.get(k)])
    sx = lambda v: 260 + v / xmax * (w - 300)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           '<text x="10" y="20" font-size="14">resin latency / peer latency (below 1: resin is faster)</text>',
           f'<line x1="{sx(1)}" y1="30" x2="{sx(1)}" y2="{h - 30}" stroke="#444" stroke-dasharray="4 3"/>',
           f'<text x="{sx(1) - 4}" y="{h - 15}">1.0</text>',
           '<rect x="620" y="8" width="10" height="10" fill="#1f77b4"/><text x="634" y="17">vs ONNX Runtime</text>',
           '<rect x="760" y="8" width="10" height="10" fill="#ff7f0e"/><text x="774" y="17">vs tract</text>']
    y = 40
    for r in rows:
        out.append(f'<text x="10" y="{y + 16}">{r["model"]} b{r["batch"]} t{r["threads"]}</text>')
        for k, color in (("vs_ort", "#1f77b4"), ("vs_tract", "#ff7f0e")):
            v = r.get(k)
            if v:
                out.append(f'<rect x="260" y="{y}" width="{sx(v) - 260:.1f}" height="{bar}" fill="{color}"/>')
                out.append(f'<text x="{sx(v) + 4:.1f}" y="{y + 10}">{v:.2f}</text>')
            y += bar
        y += gap
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--ort-worker":
        p, b, t, n, w = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
        ort_worker(p, b, t, n, warmup=w)
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=["resnet18", "resnet50", "densenet121", "resnet20"])
    ap.add_argument("--dir", default=os.environ.get("RESIN_MODELS", os.path.join(ROOT, "..", "shared", "models")))
    ap.add_argument("--batch", nargs="*", type=int, default=[1, 8])
    ap.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10, help="timed runs per measurement (median taken)")
    ap.add_argument("--min-ms", type=float, default=300,
                    help="more timed runs for fast configurations, so that resin's last about this long")
    ap.add_argument("--engines", nargs="*", default=["resin", "ort", "tract"])
    ap.add_argument("--out", default=os.path.join(ROOT, "benches", "results"))
    a = ap.parse_args()
    if not os.path.exists(RESIN):
        sys.exit("target/release/resin is missing: run `cargo build --release` first")
    if "tract" in a.engines:
        build_tract()
    peak = {t: run_json([RESIN, "bench", os.path.join(a.dir, "resnet20.onnx"), "--threads", str(t), "--runs", "1",
                         "--json"])["peak_gflops"] for t in a.threads}
    rows = []
    for name in a.models:
        path = os.path.join(a.dir, name + ".onnx")
        if not os.path.exists(path):
            sys.exit(f"{path} is missing (set RESIN_MODELS to the folder of ../shared/models)")
        for batch in a.batch:
            for threads in a.threads:
                res = {e: [] for e in a.engines}
                rss = {e: 0.0 for e in a.engines}
                macs = None
                runs, warmup = runs_for(path, batch, threads, a.runs, a.min_ms)
                for _ in range(a.rounds):
                    for e in a.engines:
                        with one_core(threads):
                            r = measure(e, path, name, batch, threads, runs, warmup)
                        res[e].append(r["median_ms"])
                        rss[e] = max(rss[e], r["peak_rss_mib"])
                        macs = r.get("macs", macs)
                med = {e: statistics.median(v) for e, v in res.items()}
                row = {"model": name, "batch": batch, "threads": threads, **{e + "_ms": med[e] for e in med},
                       **{e + "_rss": rss[e] for e in rss}}
                # Paired: round i's resin time over round i's peer time, then the median over rounds.
                paired = lambda peer: statistics.median(x / y for x, y in zip(res["resin"], res[peer]))
                if "ort" in med:
                    row["vs_ort"] = paired("ort")
                if "tract" in med:
                    row["vs_tract"] = paired("tract")
                if macs:
                    row["gflops"] = 2 * macs / (med["resin"] / 1e3) / 1e9
                    row["pct_peak"] = 100 * row["gflops"] / peak[threads] if peak.get(threads) else None
                rows.append(row)
                print(fmt_row(row, a.engines), flush=True)
    lines = [header(a.engines)] + [fmt_row(r, a.engines) for r in rows]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    with open(a.out + ".md", "w") as f:
        f.write(f"Measured {time.strftime('%Y-%m-%d')} on {cpu}, {os.cpu_count()} cores; FMA peak (resin bench): "
                + ", ".join(f"{t} thread(s) {p:.0f} GFLOP/s" for t, p in peak.items() if p) + "\n\n")
        f.write(f"`python3 benches/compare.py --rounds {a.rounds} --runs {a.runs} --min-ms {a.min_ms:g}` — engines: median of {a.rounds} alternating rounds, ms; ratios: median of the rounds' paired ratios\n\n")
        f.write("| " + " | ".join(header(a.engines).split()) + " |\n")
        f.write("|" + "---|" * len(header(a.engines).split()) + "\n")
        for r in rows:
            f.write("| " + " | ".join(fmt_row(r, a.engines).split()) + " |\n")
    svg_plot(rows, a.out + ".svg")
    print(header(a.engines))
    print("\n".join(lines[1:]))
    print(f"wrote {a.out}.md and {a.out}.svg")


def header(engines):
    cols = ["model", "batch", "thr"] + [e + "_ms" for e in engines]
    cols += [c for c, e in (("resin/ort", "ort"), ("resin/tract", "tract")) if e in engines]
    cols += [e + "_rssMiB" for e in engines] + ["GFLOP/s", "%peak"]
    return " ".join(f"{c:>12}" for c in cols)


def fmt_row(r, engines):
    cells = [r["model"], r["batch"], r["threads"]] + [f'{r[e + "_ms"]:.2f}' for e in engines]
    cells += [f'{r[k]:.2f}' for k, e in (("vs_ort", "ort"), ("vs_tract", "tract")) if e in engines]
    cells += [f'{r[e + "_rss"]:.0f}' for e in engines]
    cells += [f'{r.get("gflops", 0):.1f}', f'{r["pct_peak"]:.0f}' if r.get("pct_peak") else "-"]
    return " ".join(f"{str(c):>12}" for c in cells)


if __name__ == "__main__":
    main()
