"""Writes MLP ONNX models of a few sizes with random float32 weights, for cold-load timing.

Usage: python make_models.py OUT_DIR SIZE_MIB...
Each model is `mlp-<size>mib.onnx`: input `x` FP32 [N,256], four square hidden-to-hidden
layers (MatMul + Add + Relu) sized so the weights total about SIZE MiB, output `y` FP32 [N,16].
Prints one line per model: `<path> <input name> <input width>`.
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WIDTH_IN = 256
WIDTH_OUT = 16


def mlp(size_mib, rng):
    # Layers of hidden x hidden floats; pick hidden so a handful of layers reach the size.
    layers = 4
    total_floats = size_mib * 1024 * 1024 // 4
    hidden = max(64, int((total_floats / layers) ** 0.5))
    dims = [WIDTH_IN] + [hidden] * (layers + 1) + [WIDTH_OUT]
    nodes, inits = [], []
    current = "x"
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        w = (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        bias = np.zeros(b, dtype=np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(bias, f"b{i}")]
        nodes.append(helper.make_node("MatMul", [current, f"w{i}"], [f"m{i}"]))
        last = i == len(dims) - 2
        out = "y" if last else f"a{i}"
        nodes.append(helper.make_node("Add", [f"m{i}", f"b{i}"], [out if last else f"s{i}"]))
        if not last:
            nodes.append(helper.make_node("Relu", [f"s{i}"], [out]))
        current = out
    graph = helper.make_graph(
        nodes,
        f"mlp_{size_mib}mib",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", WIDTH_IN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", WIDTH_OUT])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(7)
    for size in (int(s) for s in sys.argv[2:]):
        path = os.path.join(out_dir, f"mlp-{size}mib.onnx")
        onnx.save(mlp(size, rng), path)
        print(path, "x", WIDTH_IN)
