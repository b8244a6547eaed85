#!/usr/bin/env python3
"""Run the ONNX backend node tests that use only ops resin claims, through `resin run`.

    python3 conformance/run.py [--resin PATH] [--data DIR] [--jobs N] [-v]

The data are the node tests shipped in the onnx 1.22.0 wheel (`onnx/backend/test/data/node/`), fetched once
with `pip download onnx==1.22.0 --no-deps` and unpacked into `~/.cache/resin-conformance/1.22.0` (or
`$RESIN_CONFORMANCE_DATA`, or --data). The installed onnx is only used to read the models and the .pb tensors.
See conformance/README.md for what is counted. Exit status: 0 when every failure is listed in
conformance/expected_failures.txt, 1 when one is not, 77 (after a line `SKIPPED: ...`) when the data or
python's onnx are not available.
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
import tarfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ONNX_VERSION = "1.22.0"
NODE_PREFIX = "onnx/backend/test/data/node/"
SKIP_EXIT = 77
RTOL, ATOL = 1e-3, 1e-4
TIMEOUT = 60


def skip(msg):
    print(f"SKIPPED: {msg}")
    sys.exit(SKIP_EXIT)


try:
    import numpy as np
    import onnx
    import onnx.defs
    from onnx import numpy_helper
except ImportError as e:  # pragma: no cover
    skip(f"python3 cannot import onnx/numpy ({e})")


# ---------------------------------------------------------------------------------------------- the claim


def resin_claim():
    """SUPPORTED_OPS and OPSETS, parsed from compiler/onnx/import.rs (the one source of the claim)."""
    src = (ROOT / "compiler" / "onnx" / "import.rs").read_text()
    m = re.search(r"pub const SUPPORTED_OPS\s*:[^=]*=\s*&\[(.*?)\];", src, re.S)
    if not m:
        sys.exit("error: cannot find SUPPORTED_OPS in compiler/onnx/import.rs")
    ops = set(re.findall(r'"([A-Za-z0-9_]+)"', m.group(1)))
    m = re.search(r"pub const OPSETS\s*:[^=]*=\s*(\d+)\s*\.\.=\s*(\d+)\s*;", src)
    if not m:
        sys.exit("error: cannot find OPSETS in compiler/onnx/import.rs")
    return ops, (int(m.group(1)), int(m.group(2)))


# ----------------------------------------------------------------------------------------------- the data


def data_dir(arg):
    if arg:
        return Path(arg).expanduser()
    if os.environ.get("RESIN_CONFORMANCE_DATA"):
        return Path(os.environ["RESIN_CONFORMANCE_DATA"]).expanduser()
    return Path.home() / ".cache" / "resin-conformance" / ONNX_VERSION


def node_root(d):
    """The folder holding test_* directories, or None."""
    for cand in (d / "node", d):
        if cand.is_dir() and any(p.name.startswith("test_") for p in cand.iterdir()):
            return cand
    return None


def fetch(d):
    """Download the onnx wheel (or sdist) and unpack only the node tests into d/node."""
    d.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=d) as tmp:
        tmp = Path(tmp)
        cmd = [sys.executable, "-m", "pip", "download", f"onnx=={ONNX_VERSION}", "--no-deps", "-q", "-d", str(tmp / "dl")]
        r = subprocess.run(cmd, capture_output=True, text=True)
        files = list((tmp / "dl").glob("onnx-*")) if (tmp / "dl").is_dir() else []
        if r.returncode != 0 or not files:
            last = (r.stderr.strip().splitlines() or ["no file downloaded"])[-1]
            skip(f"cannot fetch the ONNX node tests (`pip download onnx=={ONNX_VERSION}` failed: {last})")
        arch, out = files[0], tmp / "out"
        n = 0
        if arch.suffix == ".whl" or arch.suffix == ".zip":
            with zipfile.ZipFile(arch) as z:
                for name in z.namelist():
                    i = name.find(NODE_PREFIX)
                    if i < 0 or name.endswith("/"):
                        continue
                    target = out / "node" / name[i + len(NODE_PREFIX) :]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(z.read(name))
                    n += 1
        else:
            with tarfile.open(arch) as t:
                for m in t.getmembers():
                    i = m.name.find(NODE_PREFIX)
                    if i < 0 or not m.isfile():
                        continue
                    target = out / "node" / m.name[i + len(NODE_PREFIX) :]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(t.extractfile(m).read())
                    n += 1
        if n == 0:
            skip(f"{arch.name} holds no {NODE_PREFIX}")
        if (d / "node").exists():
            shutil.rmtree(d / "node")
        os.replace(out / "node", d / "node")  # atomic: a half-unpacked folder is never seen as the data


def ensure_data(arg):
    d = data_dir(arg)
    root = node_root(d)
    if root is None:
        print(f"fetching the onnx {ONNX_VERSION} node tests into {d} ...", flush=True)
        fetch(d)
        root = node_root(d)
        if root is None:
            skip(f"no node tests under {d}")
    return root


# ---------------------------------------------------------------------------------------------- selection


def graph_ops(g, acc):
    for n in g.node:
        acc.add((n.domain, n.op_type))
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                graph_ops(a.g, acc)
            for sg in a.graphs:
                graph_ops(sg, acc)
    return acc


def schema_sig(s):
    attrs = {a.name: (a.type, a.default_value.SerializeToString(), a.required) for a in s.attributes.values()}
    ios = (
        [(i.name, i.option, i.is_homogeneous) for i in s.inputs],
        [(o.name, o.option, o.is_homogeneous) for o in s.outputs],
        s.min_input,
        s.max_input,
        s.min_output,
        s.max_output,
    )
    return attrs, ios


def same_semantics(node, new, old):
    """Whether `node` means the same at opset `old` as at `new`: the two schemas differ at most in their type
    lists and in attributes the node does not set (new ones default to the old behaviour)."""
    try:
        a = onnx.defs.get_schema(node.op_type, new, node.domain)
        b = onnx.defs.get_schema(node.op_type, old, node.domain)
    except Exception:
        return False
    if a.since_version == b.since_version:
        return True
    (aa, aio), (ba, bio) = schema_sig(a), schema_sig(b)
    if aio != bio:
        return False
    used = {x.name for x in node.attribute}
    for name in set(aa) | set(ba):
        if aa.get(name) != ba.get(name) and (name in used or name in ba):
            return False
    return True


def all_nodes(g):
    for n in g.node:
        yield n
        for at in n.attribute:
            if at.type == onnx.AttributeProto.GRAPH:
                yield from all_nodes(at.g)
            for sg in at.graphs:
                yield from all_nodes(sg)


class Test:
    def __init__(self, name, path, model):
        self.name, self.path, self.model = name, path, model
        ops = sorted({o for _, o in graph_ops(model.graph, set())})
        self.op = "+".join(ops) if ops else "(none)"
        self.retarget = None  # (from, to) when the opset import was moved into resin's range


def select(root, claimed, opsets):
    """-> (selected tests, {test: why it is not selected})"""
    selected, unclaimed = [], {}
    lo, hi = opsets
    for p in sorted(root.iterdir()):
        if not (p / "model.onnx").is_file():
            continue
        model = onnx.load(str(p / "model.onnx"), load_external_data=False)
        used = graph_ops(model.graph, set())
        bad = sorted({f"{d}:{o}" if d not in ("", "ai.onnx") else o for d, o in used if d not in ("", "ai.onnx") or o not in claimed})
        if bad:
            unclaimed[p.name] = "op not claimed: " + ", ".join(bad)
            continue
        t = Test(p.name, p, model)
        ver = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        if ver is not None and not lo <= ver <= hi:
            to = min(max(ver, lo), hi)
            changed = sorted({n.op_type for n in all_nodes(model.graph) if not same_semantics(n, ver, to)})
            if changed:
                unclaimed[p.name] = f"opset {ver} outside {lo}..{hi}, and {', '.join(changed)} changed since opset {to}"
                continue
            t.retarget = (ver, to)
        selected.append(t)
    return selected, unclaimed


# ---------------------------------------------------------------------------------------------------- runs

FLOATS = (np.float16, np.float32, np.float64)


def read_pb(path):
    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(t)


def compare(ours, ref):
    """None when equal within tolerance, else the reason."""
    if tuple(ours.shape) != tuple(ref.shape):
        return f"shape {list(ours.shape)} vs expected {list(ref.shape)}"
    o, r = ours.astype(np.float64), ref.astype(np.float64)
    nan = np.isnan(r)
    if np.any(np.isnan(o) != nan):
        return f"NaN mismatch at {int(np.sum(np.isnan(o) != nan))} element(s)"
    o, r = o[~nan], r[~nan]
    if o.size == 0:
        return None
    inf = np.isinf(r)
    if np.any(o[inf] != r[inf]):
        return "infinity mismatch"
    o, r = o[~inf], r[~inf]
    with np.errstate(invalid="ignore"):
        diff = np.abs(o - r)
    bad = ~(diff <= ATOL + RTOL * np.abs(r))
    if np.any(bad):
        i = int(np.argmax(np.where(bad, diff, -1)))
        return f"max diff {diff[i]:.6g} (ours {o[i]:.7g} vs expected {r[i]:.7g}; {int(bad.sum())}/{bad.size} elements off)"
    return None


def run_test(t, resin, verbose):
    """-> (status, reason): status in passed / failed / skip-input / skip-output"""
    g = t.model.graph
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    for i in inputs:
        tt = i.type.tensor_type if i.type.HasField("tensor_type") else None
        if tt is None or tt.elem_type != onnx.TensorProto.FLOAT:
            kind = onnx.TensorProto.DataType.Name(tt.elem_type) if tt is not None else i.type.WhichOneof("value")
            return "skip-input", f"input '{i.name}' is {kind}"
    sets = sorted(t.path.glob("test_data_set_*"))
    if not sets:
        return "skip-input", "no test_data_set"
    compared = 0
    with tempfile.TemporaryDirectory(prefix="resin-conf-") as tmp:
        tmp = Path(tmp)
        model_path = t.path / "model.onnx"
        if t.retarget:
            m = onnx.ModelProto()
            m.CopyFrom(t.model)
            for o in m.opset_import:
                if o.domain in ("", "ai.onnx"):
                    o.version = t.retarget[1]
            model_path = tmp / "model.onnx"
            onnx.save(m, str(model_path))
        for ds in sets:
            args = [str(resin), "run", str(model_path)]
            for k, i in enumerate(inputs):
                a = read_pb(ds / f"input_{k}.pb")
                if a.dtype != np.float32:
                    return "skip-input", f"input '{i.name}' is {a.dtype}"
                p = tmp / f"{ds.name}_in{k}.npy"
                np.save(p, a)
                args += ["--input", f"{i.name}={p}"]
            refs = []
            for k, o in enumerate(g.output):
                pb = ds / f"output_{k}.pb"
                if not pb.exists():
                    continue
                ref = read_pb(pb)
                if ref.dtype.type not in FLOATS:
                    continue  # non-float outputs are not compared
                p = tmp / f"{ds.name}_out{k}.npy"
                refs.append((o.name, p, ref))
                args += ["--output", f"{o.name}={p}"]
            try:
                r = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                return "failed", f"{ds.name}: timed out after {TIMEOUT} s"
            if verbose:
                print(f"  $ {' '.join(args)}\n    -> exit {r.returncode}", flush=True)
            if r.returncode != 0:
                msg = (r.stderr.strip() or r.stdout.strip() or f"exit {r.returncode}").splitlines()
                err = next((l for l in msg if l.startswith("error")), msg[-1])
                err = err.replace(f"cannot import '{model_path}': ", "")
                return "failed", f"resin: {err}"
            for name, p, ref in refs:
                if not p.exists():
                    return "failed", f"{ds.name}: resin wrote no output '{name}'"
                why = compare(np.load(p), ref)
                if why:
                    return "failed", f"{ds.name} output '{name}': {why}"
                compared += 1
    if compared == 0:
        return "skip-output", "no float output to compare"
    return "passed", ""


def read_expected(path):
    exp = {}
    if path.exists():
        for line in path.read_text().splitlines():
            body, _, why = line.partition("#")
            if body.strip():
                exp[body.strip()] = why.strip()
    return exp


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resin", default=str(ROOT / "target" / "release" / "resin"), help="the resin binary")
    ap.add_argument("--data", help="node-test data folder (default $RESIN_CONFORMANCE_DATA or ~/.cache/resin-conformance/1.22.0)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    start = time.time()
    resin = Path(a.resin)
    if not resin.is_file():
        sys.exit(f"error: no resin binary at {resin} (cargo build --release)")
    claimed, opsets = resin_claim()
    root = ensure_data(a.data)
    tests, unclaimed = select(root, claimed, opsets)
    expected = read_expected(ROOT / "conformance" / "expected_failures.txt")

    print(f"{len(tests)} node tests use only claimed ops (of {len(tests) + len(unclaimed)} in {root})")
    retargeted = [t for t in tests if t.retarget]
    if retargeted:
        print(f"{len(retargeted)} of them declare an opset outside {opsets[0]}..{opsets[1]} whose ops have not changed "
              f"since: run with the opset import moved to {opsets[1]}")
    if a.verbose:
        for name, why in sorted(unclaimed.items()):
            print(f"not selected: {name} ({why})")
    else:
        by_reason = defaultdict(int)
        for why in unclaimed.values():
            by_reason["opset" if why.startswith("opset") else "op"] += 1
        print(f"not selected (not counted): {by_reason['op']} with an unclaimed op or domain, "
              f"{by_reason['opset']} at an opset whose op changed; -v lists them")
        for name, why in sorted(unclaimed.items()):
            if why.startswith("opset"):
                print(f"not selected: {name} ({why})")

    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        futs = {ex.submit(run_test, t, resin, a.verbose): t for t in tests}
        for f in concurrent.futures.as_completed(futs):
            t = futs[f]
            try:
                results[t.name] = f.result()
            except Exception as e:  # a broken .pb or the like: a failure of the runner, reported as such
                results[t.name] = ("failed", f"runner error: {type(e).__name__}: {e}")

    per_op = defaultdict(lambda: defaultdict(int))
    unexpected, stale = [], []
    n = defaultdict(int)
    for t in tests:
        status, why = results[t.name]
        if status == "failed" and t.name in expected:
            status = "expected"
        n[status] += 1
        per_op[t.op][status] += 1
        if status in ("failed", "expected"):
            tag = " [expected]" if status == "expected" else ""
            if t.retarget:
                tag += f" [opset {t.retarget[0]} run as {t.retarget[1]}]"
            print(f"FAIL {t.name} ({t.op}){tag}: {why}")
            if status == "failed":
                unexpected.append(t.name)
        elif status.startswith("skip") and a.verbose:
            print(f"skip {t.name} ({t.op}): {why}")
        if status == "passed" and t.name in expected:
            stale.append(t.name)
        if status == "passed" and a.verbose:
            print(f"ok   {t.name} ({t.op})")
    for name in stale:
        print(f"note: {name} is listed in expected_failures.txt but passes; remove it")
    for name in sorted(set(expected) - set(results)):
        print(f"note: {name} is listed in expected_failures.txt but was not run")

    print("\nper op (passed / failed / expected failure / skipped: non-float input, non-float output):")
    for op in sorted(per_op):
        c = per_op[op]
        print(f"  {op:<20} passed {c['passed']:3}  failed {c['failed']:3}  refused {c['expected']:3}  "
              f"skipped {c['skip-input'] + c['skip-output']:3}")
    print(f"skipped: {n['skip-input']} (non-float input), {n['skip-output']} (no float output to compare); "
          f"{n['expected']} of the failures are expected; {time.time() - start:.1f} s")
    # The closing line counts real failures only (CI reads it); deliberate refusals are reported above it.
    print(f"refused on purpose: {n['expected']} (each a clear error for a documented limit: conformance/expected_failures.txt)")
    print(f"conformance: {n['passed']} passed, {n['failed']} failed, {n['skip-input'] + n['skip-output']} skipped")
    sys.exit(1 if unexpected else 0)


if __name__ == "__main__":
    main()
