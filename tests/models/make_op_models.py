#!/usr/bin/env python3
"""Generate one small ONNX model per op and attribute variant, with ONNX Runtime reference outputs.

Run from the repository root:

    python3 tests/models/make_op_models.py

Requires onnx, onnxruntime, numpy and torch (torch only for independent cross-checks of some references).
Models are built directly with onnx.helper, not exported. Everything is seeded, so a rerun with the same
package versions reproduces the same files. For every case CASE this writes into tests/models/ops/:

    CASE.onnx            the model
    CASE_input_K.npy     graph input K (0-based, graph-input order), float32, seeded standard normal, batch 2
    CASE_output_K.npy    ONNX Runtime's output K (1 thread, ORT_DISABLE_ALL)

plus cases.json: CASE -> {"ops": [op types in the graph], "opset": n, "inputs": k, "outputs": k}.

Every model passes onnx.checker.check_model(full_check=True). Every case is chosen so that resin's importer
(compiler/onnx/ops.rs) claims to accept it; the script checks that every op in SUPPORTED_OPS
(compiler/onnx/import.rs) appears in at least one case and prints the op -> cases table.
"""

import json
import os
import re
import shutil
import sys
import zlib

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "ops")
REPO = os.path.dirname(os.path.dirname(HERE))
BATCH = 2  # batch size of the saved inputs
INT64_MIN_PLUS_1 = -(2**63) + 1  # torch's "to the start" end for a reversed Slice

CASES = {}  # name -> cases.json entry, in creation order
XCHECK = {}  # name -> max |independent reference - ORT|


# ----------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------


def seed_of(name):
    return zlib.crc32(name.encode())


def f32(arr):
    return np.asarray(arr, dtype=np.float32)


def raw(name, arr):
    """Initializer stored as raw_data."""
    t = numpy_helper.from_array(np.asarray(arr), name)
    assert t.raw_data
    return t


def typed(name, arr):
    """Initializer stored in the typed field (float_data / int64_data), not raw_data."""
    arr = np.asarray(arr)
    if arr.dtype == np.float32:
        t = helper.make_tensor(name, TensorProto.FLOAT, arr.shape, arr.flatten().tolist(), raw=False)
        assert not t.raw_data and len(t.float_data) == arr.size
    elif arr.dtype == np.int64:
        t = helper.make_tensor(name, TensorProto.INT64, arr.shape, arr.flatten().tolist(), raw=False)
        assert not t.raw_data and len(t.int64_data) == arr.size
    else:
        raise TypeError(arr.dtype)
    return t


def i64(*v):
    return np.array(v, dtype=np.int64)


def node(op, ins, outs, **attrs):
    outs = [outs] if isinstance(outs, str) else outs
    return helper.make_node(op, ins, outs, name=f"{op.lower()}_{outs[0]}", **attrs)


def const_node(out, arr=None, **value_attr):
    """A Constant node: with `arr`, a `value` tensor; else the given value_float(s)/value_int(s) attribute."""
    if arr is not None:
        value_attr = {"value": numpy_helper.from_array(np.asarray(arr), out)}
    return helper.make_node("Constant", [], [out], name=f"constant_{out}", **value_attr)


def ort_session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def case(name, opset, nodes, inputs, outputs, inits=(), scale=None, ref=None, legacy_init_inputs=False):
    """Build, check, save and run one case.

    inputs:  [(name, shape)], shape entries int or "batch" (symbolic; saved data uses BATCH).
    outputs: [name] (shapes come from ONNX shape inference) or [(name, shape)] where inference cannot tell.
    scale:   optional {input index: factor} applied to the saved standard-normal data.
    ref:     optional f(*inputs) -> [outputs] computed independently (numpy/torch) to cross-check ORT.
    legacy_init_inputs: also list the initializers as graph inputs (IR < 4 style, after the real inputs).
    """
    assert name not in CASES, name
    in_vis = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs]
    if legacy_init_inputs:
        in_vis += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits]
    out_shapes = {o[0]: o[1] for o in outputs if isinstance(o, tuple)}
    outputs = [o[0] if isinstance(o, tuple) else o for o in outputs]
    out_vis = [helper.make_tensor_value_info(n, TensorProto.FLOAT, out_shapes.get(n)) for n in outputs]
    graph = helper.make_graph(nodes, name, in_vis, out_vis, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="resin-tests")
    model.ir_version = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    if legacy_init_inputs:
        model.ir_version = 3
    # Fill in the output shapes from shape inference (symbolic `batch` propagates).
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    for o, io in zip(model.graph.output, inferred.graph.output):
        assert o.name == io.name
        if o.name not in out_shapes:
            assert io.type.tensor_type.HasField("shape"), (name, o.name, "give this output's shape explicitly")
            o.CopyFrom(io)
            for d in o.type.tensor_type.shape.dim:  # inference's made-up names (unk__N): leave the dim unnamed
                if d.dim_param.startswith("unk__"):
                    d.Clear()
    onnx.checker.check_model(model, full_check=True)
    for vi in model.graph.input[: len(inputs)]:
        dims = vi.type.tensor_type.shape.dim
        assert vi.type.tensor_type.elem_type == TensorProto.FLOAT
        assert all(d.dim_param in ("", "batch") for d in dims)

    path = os.path.join(OUT, f"{name}.onnx")
    onnx.save(model, path)

    rng = np.random.default_rng(seed_of(name))
    xs = []
    for k, (_, shape) in enumerate(inputs):
        s = tuple(BATCH if d == "batch" else d for d in shape)
        x = rng.standard_normal(s).astype(np.float32)
        if scale and k in scale:
            x = (x * scale[k]).astype(np.float32)
        xs.append(x)
    sess = ort_session(path)
    assert [i.name for i in sess.get_inputs()][: len(inputs)] == [n for n, _ in inputs]
    ys = sess.run(outputs, {n: x for (n, _), x in zip(inputs, xs)})
    for k, x in enumerate(xs):
        np.save(os.path.join(OUT, f"{name}_input_{k}.npy"), x)
    for k, y in enumerate(ys):
        assert y.dtype == np.float32, (name, k, y.dtype)
        assert np.isfinite(y).all(), (name, k)
        np.save(os.path.join(OUT, f"{name}_output_{k}.npy"), y)

    # Output shapes declared in the model must agree with what ORT produced.
    for o, y in zip(model.graph.output, ys):
        dims = o.type.tensor_type.shape.dim
        if o.type.tensor_type.HasField("shape"):
            assert len(dims) == y.ndim, (name, o.name, dims, y.shape)
            for d, n in zip(dims, y.shape):
                assert not d.HasField("dim_value") or d.dim_value == n, (name, o.name, dims, y.shape)

    if ref is not None:
        want = ref(*[x.astype(np.float64) for x in xs])
        want = want if isinstance(want, (list, tuple)) else [want]
        d = max(float(np.abs(np.asarray(w, dtype=np.float64) - y).max()) for w, y in zip(want, ys))
        assert all(np.shape(w) == y.shape for w, y in zip(want, ys)), (name, [np.shape(w) for w in want])
        XCHECK[name] = d
        if d > 1e-4:
            raise SystemExit(f"{name}: |independent reference - ORT| = {d:.3g}")

    ops = sorted({n.op_type for n in model.graph.node})
    CASES[name] = {"ops": ops, "opset": opset, "inputs": len(inputs), "outputs": len(outputs)}
    shapes = ", ".join("x".join(map(str, x.shape)) for x in xs)
    oshapes = ", ".join("x".join(map(str, y.shape)) for y in ys)
    print(f"{name:36s} opset {opset:2d}  in [{shapes}] -> out [{oshapes}]  ops {' '.join(ops)}")


# ----------------------------------------------------------------------------------------------------------
# independent references (float64, torch / numpy) for the cases where ORT itself could plausibly be wrong
# ----------------------------------------------------------------------------------------------------------


def t64(x):
    return torch.from_numpy(np.asarray(x, dtype=np.float64))


def conv_ref(w, b, pads, strides, dilations, group):
    """pads = [top, left, bottom, right] (ONNX order)."""

    def f(x):
        xp = F.pad(t64(x), (pads[1], pads[3], pads[0], pads[2]))
        y = F.conv2d(xp, t64(w), None if b is None else t64(b), stride=strides, dilation=dilations, groups=group)
        return y.numpy()

    return f


def softmax_np(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ----------------------------------------------------------------------------------------------------------
# the cases
# ----------------------------------------------------------------------------------------------------------


def conv_cases():
    rng = np.random.default_rng(1)
    w = lambda *s: f32(rng.standard_normal(s) * 0.3)  # noqa: E731

    # group 2, dilations [2,1], strides [2,1], asymmetric pads [top, left, bottom, right] = [1, 0, 2, 1]
    W, B = w(6, 2, 3, 3), w(6)
    case("conv_groups_dilation_strides", 17,
         [node("Conv", ["x", "W", "B"], "y", group=2, dilations=[2, 1], strides=[2, 1], pads=[1, 0, 2, 1],
               kernel_shape=[3, 3])],
         [("x", ["batch", 4, 9, 8])], ["y"], [raw("W", W), typed("B", B)],
         ref=conv_ref(W, B, [1, 0, 2, 1], [2, 1], [2, 1], 2))

    # SAME_UPPER with stride 2: padding is asymmetric (the extra row/column at the end). (ORT refuses
    # dilations together with SAME_*, so there is no dilated variant.)
    # H=7, k=2, s=2: out 4, need 1 -> (0, 1).  W=6, k=3, s=2: out 3, need 1 -> (0, 1).
    W, B = w(4, 3, 2, 3), w(4)
    case("conv_auto_pad_same_upper", 17,
         [node("Conv", ["x", "W", "B"], "y", auto_pad="SAME_UPPER", strides=[2, 2])],
         [("x", ["batch", 3, 7, 6])], ["y"], [raw("W", W), raw("B", B)],
         ref=conv_ref(W, B, [0, 0, 1, 1], [2, 2], [1, 1], 1))

    # SAME_LOWER: the extra padding goes to the beginning.
    # H=7, k=3, s=2: out 4, need 2 -> (1, 1).  W=6, k=2, s=1: out 6, need 1 -> (1, 0).
    W, B = w(5, 3, 3, 2), w(5)
    case("conv_auto_pad_same_lower", 17,
         [node("Conv", ["x", "W", "B"], "y", auto_pad="SAME_LOWER", strides=[2, 1])],
         [("x", ["batch", 3, 7, 6])], ["y"], [raw("W", W), typed("B", B)],
         ref=conv_ref(W, B, [1, 1, 1, 0], [2, 1], [1, 1], 1))

    W, B = w(4, 3, 3, 3), w(4)
    case("conv_auto_pad_valid", 17,
         [node("Conv", ["x", "W", "B"], "y", auto_pad="VALID", strides=[2, 2])],
         [("x", ["batch", 3, 8, 7])], ["y"], [raw("W", W), raw("B", B)],
         ref=conv_ref(W, B, [0, 0, 0, 0], [2, 2], [1, 1], 1))

    W = w(5, 3, 3, 3)
    case("conv_no_bias", 17,
         [node("Conv", ["x", "W"], "y", pads=[1, 1, 1, 1], kernel_shape=[3, 3])],
         [("x", ["batch", 3, 6, 5])], ["y"], [typed("W", W)],
         ref=conv_ref(W, None, [1, 1, 1, 1], [1, 1], [1, 1], 1))

    W, B = w(4, 1, 3, 3), w(4)
    case("conv_depthwise", 17,
         [node("Conv", ["x", "W", "B"], "y", group=4, pads=[1, 1, 1, 1])],
         [("x", ["batch", 4, 6, 6])], ["y"], [raw("W", W), raw("B", B)],
         ref=conv_ref(W, B, [1, 1, 1, 1], [1, 1], [1, 1], 4))

    W, B = w(8, 1, 3, 3), w(8)
    case("conv_depthwise_multiplier2", 17,
         [node("Conv", ["x", "W", "B"], "y", group=4, pads=[0, 1, 2, 1], strides=[2, 2])],
         [("x", ["batch", 4, 7, 6])], ["y"], [raw("W", W), raw("B", B)],
         ref=conv_ref(W, B, [0, 1, 2, 1], [2, 2], [1, 1], 4))

    # Opset 7 / IR 3: initializers are also listed as graph inputs (old exporters); they are constants.
    W, B = w(3, 2, 3, 3), w(3)
    case("conv_opset7_initializer_inputs", 7,
         [node("Conv", ["x", "W", "B"], "y", pads=[1, 1, 1, 1], strides=[1, 2])],
         [("x", ["batch", 2, 5, 6])], ["y"], [raw("W", W), typed("B", B)], legacy_init_inputs=True,
         ref=conv_ref(W, B, [1, 1, 1, 1], [1, 2], [1, 1], 1))


def batchnorm_cases():
    rng = np.random.default_rng(2)

    def stats(c):
        return (f32(rng.uniform(0.5, 1.5, c)), f32(rng.uniform(-0.3, 0.3, c)), f32(rng.standard_normal(c) * 0.2),
                f32(rng.uniform(0.3, 1.5, c)))

    def ref(s, b, m, v, eps):
        sh = lambda a: np.asarray(a, np.float64).reshape(-1, 1, 1)  # noqa: E731
        return lambda x: (x - sh(m)) / np.sqrt(sh(v) + eps) * sh(s) + sh(b)

    s, b, m, v = stats(4)
    case("batchnorm", 17,
         [node("BatchNormalization", ["x", "s", "b", "m", "v"], "y", epsilon=1e-3)],
         [("x", ["batch", 4, 3, 5])], ["y"], [raw("s", s), typed("b", b), raw("m", m), typed("v", v)],
         ref=ref(s, b, m, v, 1e-3))
    s, b, m, v = stats(3)
    case("batchnorm_opset9", 9,
         [node("BatchNormalization", ["x", "s", "b", "m", "v"], "y")],
         [("x", ["batch", 3, 4, 4])], ["y"], [raw("s", s), raw("b", b), raw("m", m), raw("v", v)],
         ref=ref(s, b, m, v, 1e-5))


def activation_cases():
    case("relu", 17, [node("Relu", ["x"], "y")], [("x", ["batch", 3, 4, 5])], ["y"],
         ref=lambda x: np.maximum(x, 0))
    case("sigmoid", 17, [node("Sigmoid", ["x"], "y")], [("x", ["batch", 3, 4, 5])], ["y"], scale={0: 10.0},
         ref=lambda x: 1 / (1 + np.exp(-x)))
    # Clip-6: min/max attributes (opset 6..10; resin reads opsets from 7, so this is opset 10)
    case("clip_opset6", 10, [node("Clip", ["x"], "y", min=-0.5, max=0.8)], [("x", ["batch", 3, 4])], ["y"],
         ref=lambda x: np.clip(x, -0.5, 0.8))
    case("clip_opset13_min_only", 13, [node("Clip", ["x", "lo"], "y")], [("x", ["batch", 3, 4])], ["y"],
         [raw("lo", f32(-0.3))], ref=lambda x: np.maximum(x, -0.3))
    case("clip_opset11_max_only", 11, [node("Clip", ["x", "", "hi"], "y")], [("x", ["batch", 3, 4])], ["y"],
         [typed("hi", f32([0.4]).reshape(()))], ref=lambda x: np.minimum(x, 0.4))
    case("clip_opset13_no_bounds", 13, [node("Clip", ["x"], "y")], [("x", ["batch", 3, 4])], ["y"],
         ref=lambda x: x)


def binary_cases():
    rng = np.random.default_rng(3)
    c41 = f32(rng.standard_normal((4, 1)))
    case("add_broadcast", 17, [node("Add", ["x", "c"], "y")], [("x", ["batch", 3, 4, 5])], ["y"],
         [raw("c", c41)], ref=lambda x: x + c41)

    # x - 0-D scalar, then 1-element vector - that (constant on the left, to catch operand-order bugs)
    case("sub_broadcast_scalar", 17,
         [node("Sub", ["x", "s0"], "t"), node("Sub", ["s1", "t"], "y")],
         [("x", ["batch", 3, 4])], ["y"], [raw("s0", f32(0.75)), typed("s1", f32([2.0]))],
         ref=lambda x: 2.0 - (x - 0.75))

    c = f32(rng.standard_normal((3, 1, 1)))
    case("mul_channel", 17, [node("Mul", ["x", "c"], "y")], [("x", ["batch", 3, 4, 5])], ["y"], [raw("c", c)],
         ref=lambda x: x * c)

    # divisor = 1 + b^2 >= 1, computed in the graph from a second (batch-free) input [3, 1]
    case("div_broadcast", 17,
         [node("Mul", ["b", "b"], "b2"), node("Add", ["b2", "one"], "d"), node("Div", ["x", "d"], "y")],
         [("x", ["batch", 2, 3, 4]), ("b", [3, 1])], ["y"], [raw("one", f32(1.0))],
         ref=lambda x, b: x / (1 + b * b))

    case("sum_three_broadcast", 17, [node("Sum", ["a", "b", "c"], "y")],
         [("a", ["batch", 3, 4]), ("b", [3, 1]), ("c", [4])], ["y"], ref=lambda a, b, c: a + b + c)
    case("sum_single", 17, [node("Sum", ["x"], "y")], [("x", ["batch", 3, 4])], ["y"], ref=lambda x: x)
    d = f32(rng.standard_normal((1, 4)))
    case("sum_input_and_const", 13, [node("Sum", ["x", "d", "x"], "y")], [("x", ["batch", 3, 4])], ["y"],
         [typed("d", d)], ref=lambda x: 2 * x + d)


def pool_ref(kind, k, s, p, ceil=False, include_pad=False, dil=1):
    """torch pooling, symmetric pads only."""

    def f(x):
        if kind == "max":
            return F.max_pool2d(t64(x), k, s, p, dilation=dil, ceil_mode=ceil).numpy()
        return F.avg_pool2d(t64(x), k, s, p, ceil_mode=ceil, count_include_pad=include_pad).numpy()

    return f


def pool_cases():
    case("maxpool_ceil_pads", 17,
         [node("MaxPool", ["x"], "y", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)],
         [("x", ["batch", 3, 8, 10])], ["y"], ref=pool_ref("max", 3, 2, 1, ceil=True))
    case("maxpool_dilations", 17,
         [node("MaxPool", ["x"], "y", kernel_shape=[2, 2], strides=[1, 1], pads=[1, 1, 1, 1], dilations=[2, 2])],
         [("x", ["batch", 2, 7, 7])], ["y"], ref=pool_ref("max", 2, 1, 1, dil=2))
    # SAME_UPPER: H=7: out 4, need 2 -> (1,1); W=8: out 4, need 1 -> (0,1).
    case("maxpool_auto_pad_same_upper", 17,
         [node("MaxPool", ["x"], "y", kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")],
         [("x", ["batch", 3, 7, 8])], ["y"],
         ref=lambda x: F.max_pool2d(F.pad(t64(x), (0, 1, 1, 1), value=-np.inf), 3, 2).numpy())
    case("avgpool_count_include_pad", 17,
         [node("AveragePool", ["x"], "y", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
               count_include_pad=1)],
         [("x", ["batch", 3, 7, 8])], ["y"], ref=pool_ref("avg", 3, 2, 1, include_pad=True))
    case("avgpool_count_include_pad_asym", 17,
         [node("AveragePool", ["x"], "y", kernel_shape=[3, 2], strides=[1, 2], pads=[0, 1, 2, 1],
               count_include_pad=1)],
         [("x", ["batch", 2, 5, 6])], ["y"],
         ref=lambda x: F.avg_pool2d(F.pad(t64(x), (1, 1, 0, 2)), (3, 2), (1, 2)).numpy())
    case("avgpool_exclude_pad_ceil", 17,
         [node("AveragePool", ["x"], "y", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1,
               count_include_pad=0)],
         [("x", ["batch", 3, 8, 10])], ["y"], ref=pool_ref("avg", 3, 2, 1, ceil=True, include_pad=False))
    # ceil_mode with count_include_pad=1: the last window runs past the padded input; the divisor counts the
    # padding but not the part beyond it (PyTorch's rule).
    case("avgpool_include_pad_ceil", 19,
         [node("AveragePool", ["x"], "y", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1,
               count_include_pad=1)],
         [("x", ["batch", 2, 8, 10])], ["y"], ref=pool_ref("avg", 3, 2, 1, ceil=True, include_pad=True))
    case("avgpool_opset7", 7,
         [node("AveragePool", ["x"], "y", kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1])],
         [("x", ["batch", 3, 6, 7])], ["y"], ref=pool_ref("avg", 2, 2, 1, include_pad=False))
    case("globalavgpool", 17, [node("GlobalAveragePool", ["x"], "y")], [("x", ["batch", 3, 5, 7])], ["y"],
         ref=lambda x: x.mean(axis=(2, 3), keepdims=True))


def flatten_cases():
    case("flatten_axis0", 17, [node("Flatten", ["x"], "y", axis=0)], [("x", ["batch", 3, 4, 5])], ["y"],
         ref=lambda x: x.reshape(1, -1))
    case("flatten_axis2", 17, [node("Flatten", ["x"], "y", axis=2)], [("x", ["batch", 3, 4, 5])], ["y"],
         ref=lambda x: x.reshape(x.shape[0] * 3, 20))
    case("flatten_negative_axis", 17, [node("Flatten", ["x"], "y", axis=-1)], [("x", ["batch", 3, 4, 5])], ["y"],
         ref=lambda x: x.reshape(-1, 5))
    case("flatten_axis_rank", 13, [node("Flatten", ["x"], "y", axis=3)], [("x", ["batch", 3, 4])], ["y"],
         ref=lambda x: x.reshape(-1, 1))
    case("flatten_opset9_default", 9, [node("Flatten", ["x"], "y")], [("x", ["batch", 3, 2, 2])], ["y"],
         ref=lambda x: x.reshape(x.shape[0], -1))


def reshape_cases():
    case("reshape_minus1_zero", 17,
         [node("Reshape", ["x", "s1"], "t"),
          const_node("s2", value_ints=[0, 2, -1]),
          node("Reshape", ["t", "s2"], "y")],
         [("x", ["batch", 4, 6])], ["y"], [typed("s1", i64(0, -1))],
         ref=lambda x: x.reshape(x.shape[0], 2, 12))

    # x.view(x.size(0), -1) as the TorchScript exporter writes it (opset 13+: Unsqueeze axes is an input)
    case("reshape_from_shape_chain", 17,
         [node("Shape", ["x"], "shp"),
          const_node("idx0", i64(0).reshape(())),
          node("Gather", ["shp", "idx0"], "n"),
          const_node("ax0", i64(0)),
          node("Unsqueeze", ["n", "ax0"], "n1"),
          const_node("m1", i64(-1)),
          node("Concat", ["n1", "m1"], "target", axis=0),
          node("Reshape", ["x", "target"], "y")],
         [("x", ["batch", 3, 4, 5])], ["y"], ref=lambda x: x.reshape(x.shape[0], -1))

    # Opset 11 (Unsqueeze/Squeeze axes are attributes): [batch, 3, 4, 5] -> [batch, 3, 20] from
    # Shape -> Gather(scalar 0) -> Unsqueeze, Shape -> Gather([1]) -> Squeeze -> Unsqueeze, Concat(..., [-1]).
    case("shape_gather_unsqueeze_concat", 11,
         [node("Shape", ["x"], "shp"),
          node("Gather", ["shp", "i0"], "d0", axis=0),
          node("Unsqueeze", ["d0"], "d0u", axes=[0]),
          node("Gather", ["shp", "i1"], "d1"),
          node("Squeeze", ["d1"], "d1s", axes=[0]),
          node("Unsqueeze", ["d1s"], "d1u", axes=[0]),
          node("Concat", ["d0u", "d1u", "m1"], "target", axis=0),
          node("Reshape", ["x", "target"], "y")],
         [("x", ["batch", 3, 4, 5])], [("y", ["batch", 3, 20])],
         [raw("i0", i64(0).reshape(())), typed("i1", i64(1)), raw("m1", i64(-1))],
         ref=lambda x: x.reshape(x.shape[0], 3, 20))

    # Opset 15+ Shape with start/end: [batch, 3, 4, 5] -> [batch, 12, 5] via Concat(Shape(x)[0:1], [12], Shape(x)[-1:])
    case("shape_start_end", 17,
         [node("Shape", ["x"], "lead", end=1),
          node("Shape", ["x"], "tail", start=-1),
          node("Concat", ["lead", "mid", "tail"], "target", axis=0),
          node("Reshape", ["x", "target"], "y")],
         [("x", ["batch", 3, 4, 5])], ["y"], [typed("mid", i64(12))],
         ref=lambda x: x.reshape(x.shape[0], 12, 5))


def gemm_cases():
    rng = np.random.default_rng(4)
    w = lambda *s: f32(rng.standard_normal(s) * 0.4)  # noqa: E731

    B, C = w(6, 5), w(5)
    case("gemm_transA", 17, [node("Gemm", ["a", "B", "C"], "y", transA=1)], [("a", [6, 4])], ["y"],
         [raw("B", B), raw("C", C)], ref=lambda a: a.T @ B + C)
    B, C = w(5, 7), w(1, 5)
    case("gemm_transB_alpha_beta_C_row", 17,
         [node("Gemm", ["a", "B", "C"], "y", transB=1, alpha=0.7, beta=-1.5)],
         [("a", ["batch", 7])], ["y"], [typed("B", B), raw("C", C)], ref=lambda a: 0.7 * (a @ B.T) - 1.5 * C)
    B = w(7, 4)
    case("gemm_C_scalar", 17, [node("Gemm", ["a", "B", "C"], "y", beta=0.5)], [("a", ["batch", 7])], ["y"],
         [raw("B", B), raw("C", f32(1.25))], ref=lambda a: a @ B + 0.625)
    B, C = w(4, 6), w(3, 4)  # B stored [N, K] (transB=1); C is the full [M, N]
    case("gemm_C_full", 17, [node("Gemm", ["a", "B", "C"], "y", transB=1, alpha=2.0)],
         [("a", [3, 6])], ["y"], [raw("B", B), typed("C", C)], ref=lambda a: 2.0 * (a @ B.T) + C)
    B = w(5, 3)
    case("gemm_no_C", 13, [node("Gemm", ["a", "B"], "y", transB=0)], [("a", ["batch", 5])], ["y"], [typed("B", B)],
         ref=lambda a: a @ B)


def matmul_cases():
    rng = np.random.default_rng(5)
    Wm = f32(rng.standard_normal((5, 3)))
    case("matmul_const_weight", 17, [node("MatMul", ["x", "W"], "y")], [("x", ["batch", 5])], ["y"],
         [raw("W", Wm)], ref=lambda x: x @ Wm)
    Wb = f32(rng.standard_normal((4, 5)))
    case("matmul_batched_broadcast", 17, [node("MatMul", ["x", "W"], "y")], [("x", ["batch", 2, 3, 4])], ["y"],
         [typed("W", Wb)], ref=lambda x: x @ Wb)
    case("matmul_two_inputs", 17, [node("MatMul", ["a", "b"], "y")], [("a", ["batch", 3, 4]), ("b", ["batch", 4, 2])],
         ["y"], ref=lambda a, b: a @ b)
    Wl = f32(rng.standard_normal((3, 4)))
    case("matmul_const_left", 17, [node("MatMul", ["W", "x"], "y")], [("x", ["batch", 4, 5])], ["y"],
         [raw("W", Wl)], ref=lambda x: Wl @ x)
    v = f32(rng.standard_normal(4))
    case("matmul_vector_rhs", 17, [node("MatMul", ["x", "v"], "y")], [("x", ["batch", 3, 4])], ["y"],
         [raw("v", v)], ref=lambda x: x @ v)


def concat_cases():
    case("concat_axis1", 17, [node("Concat", ["a", "b"], "y", axis=1)],
         [("a", ["batch", 2, 3]), ("b", ["batch", 4, 3])], ["y"], ref=lambda a, b: np.concatenate([a, b], 1))
    case("concat_negative_axis", 17, [node("Concat", ["a", "b", "c"], "y", axis=-1)],
         [("a", ["batch", 3, 2]), ("b", ["batch", 3, 4]), ("c", ["batch", 3, 1])], ["y"],
         ref=lambda a, b, c: np.concatenate([a, b, c], -1))
    case("concat_single", 13, [node("Concat", ["a"], "y", axis=1)], [("a", ["batch", 3, 2])], ["y"],
         ref=lambda a: a)


def identity_dropout_cases():
    rng = np.random.default_rng(6)
    c = f32(rng.standard_normal(4))
    # two outputs: the input itself through Identity, and input + Identity(constant)
    case("identity", 17,
         [node("Identity", ["x"], "y0"), node("Identity", ["c"], "ci"), node("Add", ["x", "ci"], "y1")],
         [("x", ["batch", 3, 4])], ["y0", "y1"], [raw("c", c)], ref=lambda x: [x, x + c])
    case("dropout_opset12", 12,
         [node("Dropout", ["x", "ratio", "train"], "y")],
         [("x", ["batch", 3, 4])], ["y"],
         [raw("ratio", f32(0.3)), numpy_helper.from_array(np.array(False), "train")], ref=lambda x: x)
    case("dropout_opset13_ratio_only", 13, [node("Dropout", ["x", "ratio"], "t"), node("Relu", ["t"], "y")],
         [("x", ["batch", 5])], ["y"], [typed("ratio", f32([0.5]).reshape(()))], ref=lambda x: np.maximum(x, 0))
    case("dropout_opset7", 7, [node("Dropout", ["x"], "y", ratio=0.25)], [("x", ["batch", 3, 4])], ["y"],
         ref=lambda x: x)


def softmax_cases():
    def coerced(axis):
        def f(x):
            s = x.shape
            return softmax_np(x.reshape(int(np.prod(s[:axis])), -1), 1).reshape(s)

        return f

    case("softmax_opset11_axis1_4d", 11, [node("Softmax", ["x"], "y", axis=1)], [("x", ["batch", 3, 2, 2])], ["y"],
         scale={0: 2.0}, ref=coerced(1))
    case("softmax_opset11_default_axis", 11, [node("Softmax", ["x"], "y")], [("x", ["batch", 3, 4])], ["y"],
         ref=coerced(1))
    case("softmax_opset13_axis1_4d", 13, [node("Softmax", ["x"], "y", axis=1)], [("x", ["batch", 3, 2, 2])], ["y"],
         scale={0: 2.0}, ref=lambda x: softmax_np(x, 1))
    case("softmax_negative_axis", 13, [node("Softmax", ["x"], "y", axis=-2)], [("x", ["batch", 3, 4, 5])], ["y"],
         scale={0: 2.0}, ref=lambda x: softmax_np(x, 2))
    case("softmax_opset13_default_axis", 17, [node("Softmax", ["x"], "y")], [("x", ["batch", 3, 4])], ["y"],
         ref=lambda x: softmax_np(x, -1))


def constant_cases():
    rng = np.random.default_rng(7)
    case("constant_value_float", 17,
         [const_node("k", value_float=0.625), node("Add", ["x", "k"], "y")],
         [("x", ["batch", 3, 4])], ["y"], ref=lambda x: x + 0.625)
    kf = [0.5, -1.0, 2.0, 0.25]
    case("constant_value_floats", 17,
         [const_node("k", value_floats=kf), node("Mul", ["x", "k"], "y")],
         [("x", ["batch", 3, 4])], ["y"], ref=lambda x: x * np.array(kf))
    kt = f32(rng.standard_normal((3, 1)))
    case("constant_tensor", 17,
         [const_node("k", kt), node("Sub", ["x", "k"], "y")],
         [("x", ["batch", 3, 4])], ["y"], ref=lambda x: x - kt)


def pad_cases():
    # pads layout: [x1_begin, x2_begin, ..., x1_end, x2_end, ...]
    case("pad_constant_value", 17,
         [node("Pad", ["x", "pads", "v"], "y", mode="constant")],
         [("x", ["batch", 2, 3, 4])], ["y"], [typed("pads", i64(0, 1, 0, 2, 0, 0, 1, 1)), raw("v", f32(0.5))],
         ref=lambda x: np.pad(x, [(0, 0), (1, 0), (0, 1), (2, 1)], constant_values=0.5))
    case("pad_constant_default_value", 13,
         [node("Pad", ["x", "pads"], "y")],
         [("x", ["batch", 2, 3, 4])], ["y"], [raw("pads", i64(0, 0, 1, 1, 0, 0, 2, 0))],
         ref=lambda x: np.pad(x, [(0, 0), (0, 0), (1, 2), (1, 0)]))
    case("pad_reflect", 11,
         [node("Pad", ["x", "pads"], "y", mode="reflect")],
         [("x", ["batch", 2, 4, 5])], ["y"], [raw("pads", i64(0, 0, 2, 1, 0, 0, 1, 3))],
         ref=lambda x: np.pad(x, [(0, 0), (0, 0), (2, 1), (1, 3)], mode="reflect"))
    case("pad_edge", 13,
         [node("Pad", ["x", "pads"], "y", mode="edge")],
         [("x", ["batch", 2, 3, 4])], ["y"], [typed("pads", i64(0, 1, 2, 0, 0, 0, 1, 2))],
         ref=lambda x: np.pad(x, [(0, 0), (1, 0), (2, 1), (0, 2)], mode="edge"))
    # Pad-2 attribute form (pads/mode/value attributes); opset 7 is the oldest resin reads
    case("pad_opset2", 7,
         [node("Pad", ["x"], "y", mode="constant", pads=[0, 0, 1, 2, 0, 0, 2, 1], value=-0.25)],
         [("x", ["batch", 2, 3, 4])], ["y"],
         ref=lambda x: np.pad(x, [(0, 0), (0, 0), (1, 2), (2, 1)], constant_values=-0.25))
    case("pad_opset2_reflect", 10,
         [node("Pad", ["x"], "y", mode="reflect", pads=[0, 0, 1, 2, 0, 0, 2, 1])],
         [("x", ["batch", 2, 4, 4])], ["y"],
         ref=lambda x: np.pad(x, [(0, 0), (0, 0), (1, 2), (2, 1)], mode="reflect"))
    # Opset 18 `axes` input: unsorted, one negative. axes [-1, 2]: W gets (1, 2), H gets (3, 0).
    case("pad_opset18_axes", 18,
         [node("Pad", ["x", "pads", "v", "axes"], "y", mode="constant")],
         [("x", ["batch", 2, 3, 4])], [("y", ["batch", 2, 6, 7])],
         [raw("pads", i64(1, 3, 2, 0)), typed("v", f32(-1.0).reshape(())), raw("axes", i64(-1, 2))],
         ref=lambda x: np.pad(x, [(0, 0), (0, 0), (3, 0), (1, 2)], constant_values=-1.0))


def const_chain_cases():
    # F.pad(x, (1, 2, 0, 3), value=0.25) on a rank-4 input as the TorchScript exporter writes it
    # (do_constant_folding=False): torch pads are (W_begin, W_end, H_begin, H_end); the chain turns them into
    # ONNX order [0, 0, 0, 1, 0, 0, 3, 2]. Everything is input-independent and folds.
    nodes = [
        const_node("tpads", i64(1, 2, 0, 3)),
        node("Shape", ["tpads"], "tpads_shape"),
        const_node("zero_idx", i64(0)),
        node("Gather", ["tpads_shape", "zero_idx"], "pad_len", axis=0),
        const_node("rank", i64(4).reshape(())),
        const_node("two", i64(2).reshape(())),
        node("Mul", ["rank", "two"], "rank2"),
        node("Sub", ["rank2", "pad_len"], "ext"),
        node("Cast", ["tpads"], "tpads64", to=TensorProto.INT64),
        helper.make_node("ConstantOfShape", ["ext"], ["zeros"], name="constantofshape_zeros",
                         value=numpy_helper.from_array(i64(0), "value")),
        node("Concat", ["tpads64", "zeros"], "padcat", axis=0),
        const_node("shape_m1_2", i64(-1, 2)),
        node("Reshape", ["padcat", "shape_m1_2"], "pairs"),
        const_node("sl_start", i64(-1)),
        const_node("sl_end", i64(INT64_MIN_PLUS_1)),
        const_node("sl_axes", i64(0)),
        const_node("sl_steps", i64(-1)),
        node("Slice", ["pairs", "sl_start", "sl_end", "sl_axes", "sl_steps"], "flipped"),
        node("Transpose", ["flipped"], "tr", perm=[1, 0]),
        const_node("shape_m1", i64(-1)),
        node("Reshape", ["tr", "shape_m1"], "flat"),
        node("Cast", ["flat"], "onnx_pads", to=TensorProto.INT64),
        const_node("pad_value", f32(0.25)),
        node("Pad", ["x", "onnx_pads", "pad_value"], "y", mode="constant"),
    ]
    case("const_chain_pads", 13, nodes, [("x", ["batch", 2, 3, 4])], [("y", ["batch", 2, 6, 7])],
         ref=lambda x: np.pad(x, [(0, 0), (0, 0), (0, 3), (1, 2)], constant_values=0.25))

    # A float constant chain: ConstantOfShape(float) -> Transpose -> Unsqueeze -> Squeeze -> Cast(to float)
    # -> Slice (positive step) -> Add to data.
    rng = np.random.default_rng(8)
    base = f32(rng.standard_normal((4, 3)))
    nodes = [
        const_node("cshape", i64(3, 4)),
        helper.make_node("ConstantOfShape", ["cshape"], ["ones"], name="constantofshape_ones",
                         value=numpy_helper.from_array(f32([0.5]), "value")),
        node("Transpose", ["base"], "base_t"),                 # default perm: reverse
        node("Add", ["ones", "base_t"], "k"),                  # [3, 4], folded
        const_node("ax", i64(0)),
        node("Unsqueeze", ["k", "ax"], "k1"),                  # [1, 3, 4]
        node("Squeeze", ["k1", "ax"], "k2"),                   # [3, 4]
        node("Cast", ["k2"], "k3", to=TensorProto.FLOAT),
        node("Slice", ["k3", "st", "en", "axs", "stp"], "k4"),  # rows 0 and 2 -> [2, 4]
        node("Gather", ["k4", "gi"], "k5", axis=1),            # columns 3, 0, 1 -> [2, 3]
        node("Add", ["x", "k5"], "y"),
    ]
    kref = (0.5 + base.T)[0:3:2][:, [3, 0, 1]]
    case("const_chain_float", 13, nodes, [("x", ["batch", 2, 3])], ["y"],
         [raw("base", base), typed("st", i64(0)), raw("en", i64(100)), raw("axs", i64(0)), typed("stp", i64(2)),
          raw("gi", i64(-1, 0, 1))],
         ref=lambda x: x + kref)


def squeeze_cases():
    # Opset 13: axes as inputs. Two outputs: the unsqueezed tensor and the round trip.
    case("squeeze_unsqueeze_data", 13,
         [node("Unsqueeze", ["x", "ax1"], "u"), node("Relu", ["u"], "y0"), node("Squeeze", ["u", "ax1n"], "y1")],
         [("x", ["batch", 3, 4])], ["y0", "y1"], [raw("ax1", i64(1)), typed("ax1n", i64(-3))],
         ref=lambda x: [np.maximum(x[:, None], 0), x])
    # Opset 11: axes as attributes; two new axes (one negative), then both removed again
    case("squeeze_unsqueeze_data_opset11", 11,
         [node("Unsqueeze", ["x"], "u", axes=[1, -1]), node("Sigmoid", ["u"], "s"),
          node("Squeeze", ["s"], "y", axes=[1, 4])],
         [("x", ["batch", 3, 4])], ["y"], ref=lambda x: 1 / (1 + np.exp(-x)))
    # Squeeze without axes removes every size-1 axis. With a symbolic batch that is ambiguous (batch 1 would
    # go too), so this input has a fixed shape.
    case("squeeze_no_axes_fixed", 13, [node("Squeeze", ["x"], "t"), node("Relu", ["t"], "y")],
         [("x", [3, 1, 4, 1])], ["y"], ref=lambda x: np.maximum(x.reshape(3, 4), 0))


def cast_cases():
    case("cast_float_to_float", 17, [node("Cast", ["x"], "t", to=TensorProto.FLOAT), node("Relu", ["t"], "y")],
         [("x", ["batch", 3, 4])], ["y"], ref=lambda x: np.maximum(x, 0))


# ----------------------------------------------------------------------------------------------------------


def supported_ops():
    src = open(os.path.join(REPO, "compiler", "onnx", "import.rs")).read()
    body = re.search(r"SUPPORTED_OPS: &\[&str\] = &\[(.*?)\];", src, re.S).group(1)
    return re.findall(r'"(\w+)"', body)


def main():
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}, torch {torch.__version__}")
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)

    conv_cases()
    batchnorm_cases()
    activation_cases()
    binary_cases()
    pool_cases()
    flatten_cases()
    reshape_cases()
    gemm_cases()
    matmul_cases()
    concat_cases()
    identity_dropout_cases()
    softmax_cases()
    constant_cases()
    pad_cases()
    const_chain_cases()
    squeeze_cases()
    cast_cases()

    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(CASES, f, indent=1)
        f.write("\n")

    print(f"\nmax |independent float64 reference - ORT| over {len(XCHECK)} cases: {max(XCHECK.values()):.3g}")

    ops = supported_ops()
    print(f"\n{len(CASES)} cases; op coverage ({len(ops)} supported ops):")
    missing = []
    for op in ops:
        users = [c for c, v in CASES.items() if op in v["ops"]]
        if not users:
            missing.append(op)
        shown = ", ".join(users[:6]) + (f", ... ({len(users)} cases)" if len(users) > 6 else "")
        print(f"  {op:20s} {shown}")
    extra = sorted({o for v in CASES.values() for o in v["ops"]} - set(ops))
    if extra:
        raise SystemExit(f"cases use ops that are not in SUPPORTED_OPS: {extra}")
    if missing:
        raise SystemExit(f"supported ops with no case: {missing}")

    total = sum(os.path.getsize(os.path.join(OUT, fn)) for fn in os.listdir(OUT))
    print(f"\n{len(os.listdir(OUT))} files in tests/models/ops, {total} bytes ({total / 1024:.1f} KiB)")
    if total > 500 * 1024:
        raise SystemExit("tests/models/ops is over 500 KB")


if __name__ == "__main__":
    sys.exit(main())
