#!/usr/bin/env python3
"""Generate the small ONNX test models used by resin's tests, with reference outputs.

Run from the repository root:

    python3 tests/models/make_models.py

Requires torch, torchvision, onnx, onnxruntime and numpy. Everything is seeded, so a rerun with the same
package versions reproduces the same files. For every model NAME this writes, next to this script:

    NAME.onnx          the model (input `input`, output `output`, dynamic batch axis `batch`)
    NAME_input.npy     a batch-1 float32 standard-normal input (seeded)
    NAME_output.npy    ONNX Runtime's output for that input (1 thread, graph optimizations disabled)

plus expected.json (skip counts, op histogram, parameter count, input shape per model).

Recipe (same as ../shared/models): torch.onnx.export with the TorchScript exporter (dynamo=False),
do_constant_folding=False, eval mode, seeded random weights, BatchNorm statistics randomized so that folding
BN is not a no-op. Every model passes onnx.checker (full_check=True) and PyTorch's output must match ORT
within 1e-5.
"""

import collections
import json
import math
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from onnx import TensorProto, helper, numpy_helper
from torchvision.models.densenet import DenseNet
from torchvision.models.resnet import BasicBlock, ResNet

HERE = os.path.dirname(os.path.abspath(__file__))
TOL = 1e-5


# ----------------------------------------------------------------------------------------------------------
# Common recipe helpers
# ----------------------------------------------------------------------------------------------------------


@torch.no_grad()
def randomize_bn(model, input_shape, seed, calib_batch=16):
    """Randomize every BatchNorm: weight in [0.5, 1.5], bias in [-0.2, 0.2], running mean/var calibrated on
    a random batch in train mode (momentum 1 => exactly that batch's statistics), then perturbed."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for bn in bns:
        c = bn.num_features
        bn.weight.copy_(torch.rand(c, generator=g) + 0.5)
        bn.bias.copy_(torch.rand(c, generator=g) * 0.4 - 0.2)
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 1.0
    model.train()
    x = torch.randn((calib_batch,) + tuple(input_shape[1:]), generator=g)
    model(x)
    for bn, mom in zip(bns, saved):
        bn.momentum = mom
        c = bn.num_features
        # perturb: shift the mean by up to 10% of the std, scale the variance by [0.8, 1.25]
        std = bn.running_var.clamp_min(1e-5).sqrt()
        bn.running_mean.add_((torch.rand(c, generator=g) * 0.2 - 0.1) * std)
        bn.running_var.mul_(torch.exp((torch.rand(c, generator=g) * 2 - 1) * math.log(1.25)))
    model.eval()


def histogram(model_proto):
    return dict(sorted(collections.Counter(n.op_type for n in model_proto.graph.node).items()))


def ort_run(path, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    (y,) = sess.run(["output"], {"input": x})
    return y


def make_input(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def no_skips(**kw):
    d = {"identity": 0, "weighted": 0, "gated": 0, "dense": 0, "dense_blocks": []}
    d.update(kw)
    return d


RESULTS = {}
DIFFS = {}


def finish(name, model_proto_path, input_shape, skips, params, opset, torch_fn=None, seed=0):
    """Check the saved model, compute the ORT reference, compare against torch, record expected.json data."""
    m = onnx.load(model_proto_path)
    onnx.checker.check_model(m, full_check=True)
    # input/output naming and the dynamic batch axis
    assert [i.name for i in m.graph.input] == ["input"], [i.name for i in m.graph.input]
    assert [o.name for o in m.graph.output] == ["output"], [o.name for o in m.graph.output]
    for vi in (m.graph.input[0], m.graph.output[0]):
        assert vi.type.tensor_type.shape.dim[0].dim_param == "batch", (name, vi)
    got_opset = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")]
    assert got_opset == [opset], (name, got_opset, opset)

    x = make_input(input_shape, 1000 + seed)
    y = ort_run(model_proto_path, x).astype(np.float32)
    np.save(os.path.join(HERE, f"{name}_input.npy"), x)
    np.save(os.path.join(HERE, f"{name}_output.npy"), y)

    # Dynamic batch sanity check: batch 3 through ORT must agree row-wise with batch 1 runs.
    x3 = np.concatenate([x, make_input(input_shape, 2000 + seed), make_input(input_shape, 3000 + seed)])
    y3 = ort_run(model_proto_path, x3)
    assert np.abs(y3[:1] - y).max() <= 1e-5, (name, "batch-3 row 0 disagrees with batch-1")

    diff = None
    if torch_fn is not None:
        with torch.no_grad():
            yt = torch_fn(torch.from_numpy(x)).numpy()
            yt3 = torch_fn(torch.from_numpy(x3)).numpy()
        assert yt.shape == y.shape, (name, yt.shape, y.shape)
        diff = float(max(np.abs(yt - y).max(), np.abs(yt3 - y3).max()))
        if diff > TOL:
            raise SystemExit(f"{name}: |torch - ORT| = {diff:.3g} > {TOL}")
    DIFFS[name] = diff
    RESULTS[name] = {
        "skips": skips,
        "op_histogram": histogram(m),
        "params": int(params),
        "input_shape": list(input_shape),
        "output_shape": list(y.shape),
        "opset": opset,
    }
    print(f"{name:18s} opset {opset}  params {params:8d}  out {tuple(y.shape)}  "
          f"max|torch-ORT| = {'n/a (no torch model)' if diff is None else f'{diff:.3g}'}")
    print(f"{'':18s} ops {histogram(m)}")


def export_torch(name, model, input_shape, skips, opset=17, seed=0):
    model.eval()
    path = os.path.join(HERE, f"{name}.onnx")
    dummy = torch.from_numpy(make_input(input_shape, 1000 + seed))
    torch.onnx.export(
        model,
        (dummy,),
        path,
        dynamo=False,
        export_params=True,
        opset_version=opset,
        do_constant_folding=False,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
    )
    params = sum(p.numel() for p in model.parameters())
    finish(name, path, input_shape, skips, params, opset, torch_fn=model, seed=seed)


def build(seed, ctor, input_shape):
    """Construct under a fixed seed, then randomize BN statistics (seeded too)."""
    torch.manual_seed(seed)
    model = ctor()
    randomize_bn(model, input_shape, seed + 1)
    return model.eval()


# ----------------------------------------------------------------------------------------------------------
# 1. CIFAR ResNet-20
# ----------------------------------------------------------------------------------------------------------


class CifarBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + sc)


class ResNet20(nn.Module):
    def __init__(self, num_classes=10, n=3, widths=(16, 32, 64)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(CifarBlock(cin, w, stride))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        return self.fc(x)


# ----------------------------------------------------------------------------------------------------------
# 2./3. torchvision ResNet-18 at 1/8 width, and its plain (no-shortcut) twin
# ----------------------------------------------------------------------------------------------------------


class ResNetW(ResNet):
    """torchvision.models.resnet.ResNet with the base width as a parameter (64 in torchvision).
    Uses torchvision's own _make_layer and forward; only the hard-coded widths differ."""

    def __init__(self, block, layers, base=8, num_classes=10):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = base
        self.dilation = 1
        self.groups = 1
        self.base_width = 64  # BasicBlock requires the default width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, base, layers[0])
        self.layer2 = self._make_layer(block, base * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, base * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, base * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(base * 8 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


class PlainBlock(BasicBlock):
    """BasicBlock without the residual addition (and without the downsample branch)."""

    def __init__(self, inplanes, planes, stride=1, downsample=None, *args, **kw):
        super().__init__(inplanes, planes, stride, None, *args, **kw)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out)


# ----------------------------------------------------------------------------------------------------------
# 5. small ResNeXt (grouped convolution)
# ----------------------------------------------------------------------------------------------------------


class ResNeXtBlock(nn.Module):
    def __init__(self, cin, mid, cout, stride, groups=4):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        sc = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + sc)


class ResNeXtSmall(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.block1 = ResNeXtBlock(32, 16, 32, stride=1)  # identity shortcut
        self.block2 = ResNeXtBlock(32, 32, 64, stride=2)  # 1x1 conv + BN projection shortcut
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.block2(self.block1(x))
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        return self.fc(x)


# ----------------------------------------------------------------------------------------------------------
# 6./7. MLPs
# ----------------------------------------------------------------------------------------------------------


class SkipLinear(nn.Module):
    """Bias-free linear map stored as [in, out] so that it exports as a single MatMul (no Transpose)."""

    def __init__(self, din, dout):
        super().__init__()
        bound = 1.0 / math.sqrt(din)
        self.wt = nn.Parameter(torch.empty(din, dout).uniform_(-bound, bound))

    def forward(self, x):
        return torch.matmul(x, self.wt)


class MLP(nn.Module):
    """a_0 = input; for l = 1..L: a_l = relu(W_l a_{l-1} + b_l + skip_l); output = head(a_L).

    kind 'res':     skip_l = a_{l-2}               for l >= 2
    kind 'highway': skip_l = V_l a_{l-2}           for l >= 2  (V_l bias-free, MatMul)
    kind 'dense':   skip_l = sum_{k=2..l} W_{l,k} a_{l-k}      (every earlier layer, bias-free MatMuls)
    """

    def __init__(self, kind, width=32, layers=6, num_out=10):
        super().__init__()
        self.kind, self.L = kind, layers
        self.main = nn.ModuleList([nn.Linear(width, width) for _ in range(layers)])
        if kind == "highway":
            self.skip = nn.ModuleList([SkipLinear(width, width) for _ in range(layers - 1)])
        elif kind == "dense":
            # skip[l-2][k-2] for layer l (2..L), distance k (2..l)
            self.skip = nn.ModuleList(
                [nn.ModuleList([SkipLinear(width, width) for _ in range(l - 1)]) for l in range(2, layers + 1)])
        self.head = nn.Linear(width, num_out)

    def forward(self, x):
        acts = [x]  # acts[i] = a_i
        for l in range(1, self.L + 1):
            z = self.main[l - 1](acts[l - 1])
            if l >= 2:
                if self.kind == "res":
                    z = z + acts[l - 2]
                elif self.kind == "highway":
                    z = z + self.skip[l - 2](acts[l - 2])
                elif self.kind == "dense":
                    for k in range(2, l + 1):
                        z = z + self.skip[l - 2][k - 2](acts[l - k])
            acts.append(F.relu(z))
        return self.head(acts[-1])


class GatedMLP(nn.Module):
    """Highway network (Srivastava et al.): y = h*t + x*(1-t), h = relu(W_h x + b_h), t = sigmoid(W_t x + b_t)."""

    def __init__(self, width=32, layers=4, num_out=10):
        super().__init__()
        self.h = nn.ModuleList([nn.Linear(width, width) for _ in range(layers)])
        self.t = nn.ModuleList([nn.Linear(width, width) for _ in range(layers)])
        with torch.no_grad():
            for t in self.t:  # the usual negative gate-bias init, so the carry path matters; jittered so that
                # the biases differ (identical initializers get deduplicated by the exporter into Identity nodes)
                t.bias.add_(-1.0)
        self.head = nn.Linear(width, num_out)

    def forward(self, x):
        for h, t in zip(self.h, self.t):
            hx = F.relu(h(x))
            tx = torch.sigmoid(t(x))
            x = hx * tx + x * (1 - tx)
        return self.head(x)


# ----------------------------------------------------------------------------------------------------------
# 8./9. ops_misc: the assorted ops an importer meets in real exports
# ----------------------------------------------------------------------------------------------------------


class OpsMisc(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, bias=True)                        # after a constant pad (value 0.5)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool1 = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.conv2 = nn.Conv2d(8, 8, 3, dilation=2, bias=False)           # after a reflect pad
        self.bn2 = nn.BatchNorm2d(8)
        self.gate = nn.Conv2d(8, 8, 1)                                    # sigmoid gate -> Mul
        self.pool2 = nn.AvgPool2d(2, stride=2, ceil_mode=True, count_include_pad=False)
        self.conv3 = nn.Conv2d(8, 16, 3, stride=2, bias=False)            # strided, after asymmetric zero pad
        self.bn3 = nn.BatchNorm2d(16)
        self.conv4 = nn.Conv2d(16, 16, 2, padding="same", bias=True)      # even kernel 'same' => SAME_UPPER
        self.pool3 = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(16 * 4 * 4, num_classes)
        with torch.no_grad():  # larger logits, so that the final softmax is far from uniform
            self.fc.weight.mul_(8.0)

    def forward(self, x):                                                 # [N, 3, 32, 32]
        x = F.pad(x, (1, 1, 1, 1), mode="constant", value=0.5)            # [N, 3, 34, 34]
        x = F.relu6(self.bn1(self.conv1(x)))                              # [N, 8, 32, 32]   Clip(0, 6)
        x = self.pool1(x)                                                 # [N, 8, 17, 17]   ceil_mode
        x = F.pad(x, (2, 2, 2, 2), mode="reflect")                        # [N, 8, 21, 21]
        x = F.hardtanh(self.bn2(self.conv2(x)), -1.0, 1.0)                # [N, 8, 17, 17]   Clip(-1, 1)
        x = x * torch.sigmoid(self.gate(x))                               # Sigmoid, Mul
        x = self.pool2(x)                                                 # [N, 8, 9, 9]     ceil, excl. pad
        x = F.pad(x, (0, 1, 0, 1))                                        # [N, 8, 10, 10]   asymmetric
        x = F.relu(self.bn3(self.conv3(x)))                               # [N, 16, 4, 4]
        x = self.conv4(x)                                                 # [N, 16, 4, 4]
        x = F.relu(self.pool3(x))                                         # [N, 16, 4, 4]    incl. pad
        x = self.drop(x)
        x = x.view(x.size(0), -1)                                         # [N, 256]
        x = self.fc(x)
        return torch.softmax(x, dim=1)


# ----------------------------------------------------------------------------------------------------------
# 10. sum_gemm_variants, built with onnx.helper
# ----------------------------------------------------------------------------------------------------------


def make_sum_gemm_variants(name, seed):
    rng = np.random.default_rng(seed)
    f32 = lambda *s: (rng.standard_normal(s) * 0.25).astype(np.float32)  # noqa: E731

    b1, c1 = f32(16, 8), f32(8)          # Gemm A: transA=0, transB=0, alpha=0.5, beta=2.0, C [8] broadcast
    b2, c2 = f32(8, 16), f32(1, 8)       # Gemm B: transB=1, C [1, 8]
    m1 = f32(16, 8)                      # MatMul weight, stored as float_data
    k_const = f32(8)                     # Constant node value
    c_const = f32(1, 8)                  # input-free path: Constant * initializer
    d_init = f32(1, 8)

    def raw(arr, nm):
        return numpy_helper.from_array(arr, nm)  # raw_data

    m1_t = helper.make_tensor("mm_w", TensorProto.FLOAT, m1.shape, m1.flatten().tolist(), raw=False)
    assert not m1_t.raw_data and len(m1_t.float_data) == m1.size
    inits = [raw(b1, "gemm_a_B"), raw(c1, "gemm_a_C"), raw(b2, "gemm_b_B"), raw(c2, "gemm_b_C"), m1_t,
             raw(d_init, "free_d")]
    nodes = [
        helper.make_node("Gemm", ["input", "gemm_a_B", "gemm_a_C"], ["ga"], name="gemm_a",
                         alpha=0.5, beta=2.0, transA=0, transB=0),
        helper.make_node("Gemm", ["input", "gemm_b_B", "gemm_b_C"], ["gb"], name="gemm_b", transB=1),
        helper.make_node("Identity", ["gb"], ["gb_id"], name="ident"),
        helper.make_node("MatMul", ["input", "mm_w"], ["mm"], name="matmul"),
        helper.make_node("Constant", [], ["k"], name="const_k", value=numpy_helper.from_array(k_const, "k")),
        helper.make_node("Add", ["mm", "k"], ["mm_k"], name="add_k"),
        helper.make_node("Sum", ["ga", "gb_id", "mm_k"], ["s"], name="sum3"),
        helper.make_node("Constant", [], ["c"], name="const_c", value=numpy_helper.from_array(c_const, "c")),
        helper.make_node("Mul", ["c", "free_d"], ["cd"], name="free_mul"),   # depends on no input
        helper.make_node("Add", ["s", "cd"], ["s2"], name="add_free"),
        helper.make_node("Softmax", ["s2"], ["output"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 8])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="resin-tests")
    model.ir_version = 8
    path = os.path.join(HERE, f"{name}.onnx")
    onnx.save(model, path)

    # independent numpy reference, as a check on ORT (not used as the stored reference)
    def np_ref(x):
        ga = 0.5 * (x @ b1) + 2.0 * c1
        gb = x @ b2.T + c2
        s = ga + gb + (x @ m1 + k_const) + c_const * d_init
        e = np.exp(s - s.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    params = sum(int(np.prod(t.dims)) for t in inits if t.data_type == TensorProto.FLOAT)
    finish(name, path, (1, 16), no_skips(), params, 17, torch_fn=None, seed=seed)
    x = np.load(os.path.join(HERE, f"{name}_input.npy"))
    y = np.load(os.path.join(HERE, f"{name}_output.npy"))
    d = float(np.abs(np_ref(x.astype(np.float64)) - y).max())
    print(f"{'':18s} max|numpy(float64) - ORT| = {d:.3g}")
    assert d < 1e-5
    DIFFS[name + " (numpy ref)"] = d


# ----------------------------------------------------------------------------------------------------------


def main():
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, onnx {onnx.__version__}, "
          f"onnxruntime {ort.__version__}, numpy {np.__version__}")
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    s = (1, 3, 32, 32)
    export_torch("resnet20", build(1, ResNet20, s), s, no_skips(identity=7, weighted=2), seed=1)

    s = (1, 3, 64, 64)
    export_torch("resnet18_w8", build(2, lambda: ResNetW(BasicBlock, [2, 2, 2, 2], base=8), s), s,
                 no_skips(identity=5, weighted=3), seed=2)
    export_torch("plain18_w8", build(3, lambda: ResNetW(PlainBlock, [2, 2, 2, 2], base=8), s), s,
                 no_skips(), seed=3)

    s = (1, 3, 32, 32)
    export_torch("densenet_small",
                 build(4, lambda: DenseNet(growth_rate=8, block_config=(2, 3, 4), num_init_features=16,
                                           bn_size=2, num_classes=10), s), s,
                 # dense counts Concat inputs that bypass a layer: n(n+1)/2 per block of n layers (3+6+10)
                 no_skips(dense=19, dense_blocks=[2, 3, 4]), seed=4)
    export_torch("resnext_small", build(5, ResNeXtSmall, s), s, no_skips(identity=1, weighted=1), seed=5)

    L = 6
    s = (1, 32)
    export_torch("mlp_res", build(6, lambda: MLP("res", 32, L), s), s, no_skips(identity=L - 1), seed=6)
    export_torch("mlp_highway", build(7, lambda: MLP("highway", 32, L), s), s, no_skips(weighted=L - 1), seed=7)
    export_torch("mlp_dense", build(8, lambda: MLP("dense", 32, L), s), s, no_skips(dense=L * (L - 1) // 2),
                 seed=8)
    export_torch("mlp_gated", build(9, lambda: GatedMLP(32, 4), s), s, no_skips(gated=4), seed=9)

    s = (1, 3, 32, 32)
    # Same weights for both opsets (same seed), so the two references should agree too.
    export_torch("ops_misc", build(10, OpsMisc, s), s, no_skips(), opset=13, seed=10)
    export_torch("ops_opset11", build(10, OpsMisc, s), s, no_skips(), opset=11, seed=10)
    a = np.load(os.path.join(HERE, "ops_misc_output.npy"))
    b = np.load(os.path.join(HERE, "ops_opset11_output.npy"))
    print(f"{'':18s} max|ops_misc - ops_opset11| (same weights and input) = {np.abs(a - b).max():.3g}")

    make_sum_gemm_variants("sum_gemm_variants", seed=11)

    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(RESULTS, f, indent=2, sort_keys=False)
        f.write("\n")

    print("\nfiles:")
    total = 0
    for fn in sorted(os.listdir(HERE)):
        p = os.path.join(HERE, fn)
        if os.path.isfile(p) and fn.endswith((".onnx", ".npy", ".json")):
            sz = os.path.getsize(p)
            total += sz
            print(f"  {fn:32s} {sz:10d}")
    print(f"  {'total (onnx+npy+json)':32s} {total:10d}  ({total / 2**20:.2f} MiB)")
    if total > 4 * 2**20:
        print("WARNING: tests/models is over 4 MiB", file=sys.stderr)


if __name__ == "__main__":
    main()
