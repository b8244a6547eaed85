#!/usr/bin/env python3
"""Writes the malformed ONNX models of the bad-input catalogue (tests/bad_inputs.rs).

Run from the repository root: `python3 tests/models/bad/make_bad_models.py` (needs the `onnx` package; the
files were made with onnx 1.23.2). Each model is a few nodes built by hand with `onnx.helper`, broken in exactly
one way, and deliberately NOT passed through `onnx.checker` (most of them would fail it: that is the point).
Weights are small fixed patterns, so two runs write byte-identical files.
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17


def weight(name, shape):
    """A deterministic float32 initializer."""
    n = int(np.prod(shape))
    data = ((np.arange(n, dtype=np.float32) % 7) - 3.0) / 10.0
    return numpy_helper.from_array(data.reshape(shape), name)


def value(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def save(name, nodes, inputs, outputs, initializers=(), opset=OPSET):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="make_bad_models")
    model.ir_version = 8
    path = os.path.join(HERE, f"{name}.onnx")
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    print(f"wrote {path}")


X = value("x", ["batch", 4])
Y = value("y", ["batch", 4])

# Two nodes that read each other's output: relu_a needs 'b', which relu_b makes from 'a'.
save(
    "cycle",
    [
        helper.make_node("Add", ["x", "b"], ["a"], name="add_a"),
        helper.make_node("Relu", ["a"], ["b"], name="relu_b"),
    ],
    [X],
    [value("b", ["batch", 4])],
)

# The nodes are listed out of order (valid once sorted): relu_2 reads 'h' before relu_1 (listed later) makes it.
save(
    "unsorted",
    [
        helper.make_node("Relu", ["h"], ["y"], name="relu_2"),
        helper.make_node("Relu", ["x"], ["h"], name="relu_1"),
    ],
    [X],
    [Y],
)

# 'ghost' is not a graph input, an initializer or any node's output.
save("unproduced", [helper.make_node("Add", ["x", "ghost"], ["y"], name="add_ghost")], [X], [Y])

# The Gemm's weight 'fc.weight' was not saved with the model (no initializer, not an input).
save(
    "missing_initializer",
    [helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["y"], name="fc", transB=1)],
    [X],
    [Y],
    [weight("fc.bias", [4])],
)

# Two nodes write the tensor 'y'.
save(
    "duplicate_output",
    [
        helper.make_node("Relu", ["x"], ["y"], name="relu_1"),
        helper.make_node("Sigmoid", ["x"], ["y"], name="sigmoid_1"),
    ],
    [X],
    [Y],
)

# Two initializers named 'w'.
save(
    "duplicate_initializer",
    [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")],
    [X],
    [Y],
    [weight("w", [4, 4]), weight("w", [4, 4])],
)

# Two graph inputs named 'x'.
save("duplicate_input", [helper.make_node("Relu", ["x"], ["y"], name="relu")], [X, X], [Y])

# Gemm's transB given as a float instead of an int.
gemm_bad_attr = helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")
gemm_bad_attr.attribute.append(helper.make_attribute("transB", 1.0))
save("attribute_wrong_type", [gemm_bad_attr], [X], [Y], [weight("w", [4, 4])])

# x is [batch, 4] but the weight is [5, 3]: K = 4 against 5.
save(
    "gemm_mismatch",
    [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")],
    [X],
    [value("y", ["batch", 3])],
    [weight("w", [5, 3])],
)

# x has 3 channels; the weight [8, 2, 3, 3] expects 2 input channels (groups = 1).
save(
    "conv_mismatch",
    [helper.make_node("Conv", ["x", "w"], ["y"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
    [value("x", ["batch", 3, 8, 8])],
    [value("y", ["batch", 8, 8, 8])],
    [weight("w", [8, 2, 3, 3])],
)

# An input with a zero, a negative, and an absurdly large dimension.
save("zero_dim", [helper.make_node("Relu", ["x"], ["y"], name="relu")], [value("x", ["batch", 0])], [Y])
save("negative_dim", [helper.make_node("Relu", ["x"], ["y"], name="relu")], [value("x", ["batch", -3])], [Y])
save(
    "absurd_dim",
    [helper.make_node("Relu", ["x"], ["y"], name="relu")],
    [value("x", ["batch", 1 << 20, 1 << 20, 1 << 20])],
    [value("y", ["batch", 1 << 20, 1 << 20, 1 << 20])],
)

# An initializer whose dims say [-1, 4] (its data has 4 elements).
neg = helper.make_tensor("w", TensorProto.FLOAT, [1, 4], [0.0] * 4)
del neg.dims[:]
neg.dims.extend([-1, 4])
save("negative_initializer_dim", [helper.make_node("Add", ["x", "w"], ["y"], name="add")], [X], [Y], [neg])

# A fixed batch of 1 (no symbolic batch dimension): other batch sizes cannot run.
save(
    "fixed_batch",
    [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")],
    [value("x", [1, 4])],
    [value("y", [1, 4])],
    [weight("w", [4, 4])],
)

# Two inputs (for run-time count and name errors); a float64 input.
save(
    "two_inputs",
    [helper.make_node("Add", ["a", "b"], ["y"], name="add")],
    [value("a", ["batch", 4]), value("b", ["batch", 4])],
    [Y],
)
save(
    "float64_input",
    [helper.make_node("Relu", ["x"], ["y"], name="relu")],
    [value("x", ["batch", 4], TensorProto.DOUBLE)],
    [value("y", ["batch", 4], TensorProto.DOUBLE)],
)
