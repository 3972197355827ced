"""Writes the small ONNX models the sandpit-models tests use.

Regenerate with `python3 crates/models/tests/models/make_models.py` (needs `pip install onnx numpy`).
The weights are fixed so the tests can compute expected values by hand.
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = [helper.make_opsetid("", 17)]


def save(model, name):
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, name))


def linear(name, weights, bias):
    """y = x·W + b with x: FP32 [N, 3], W: [3, 1], b: [1]."""
    w = numpy_helper.from_array(np.array(weights, dtype=np.float32).reshape(3, 1), "W")
    b = numpy_helper.from_array(np.array(bias, dtype=np.float32).reshape(1), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        [w, b],
    )
    save(helper.make_model(graph, opset_imports=OPSET), name)


def datatypes():
    """One input per datatype; each output is computed from one input."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["a", "a"], ["a2"]),  # INT64: doubled
            helper.make_node("Not", ["b"], ["not_b"]),  # BOOL: negated
            helper.make_node("Add", ["c", "c"], ["c2"]),  # FP64: doubled
            helper.make_node("Add", ["d", "d"], ["d2"]),  # INT32: doubled
            helper.make_node("Cast", ["a"], ["a_f64"], to=TensorProto.DOUBLE),  # INT64 -> FP64
        ],
        "datatypes",
        [
            helper.make_tensor_value_info("a", TensorProto.INT64, [2, 2]),
            helper.make_tensor_value_info("b", TensorProto.BOOL, ["N"]),
            helper.make_tensor_value_info("c", TensorProto.DOUBLE, ["N"]),
            helper.make_tensor_value_info("d", TensorProto.INT32, ["N"]),
        ],
        [
            helper.make_tensor_value_info("a2", TensorProto.INT64, [2, 2]),
            helper.make_tensor_value_info("not_b", TensorProto.BOOL, ["N"]),
            helper.make_tensor_value_info("c2", TensorProto.DOUBLE, ["N"]),
            helper.make_tensor_value_info("d2", TensorProto.INT32, ["N"]),
            helper.make_tensor_value_info("a_f64", TensorProto.DOUBLE, [2, 2]),
        ],
    )
    save(helper.make_model(graph, opset_imports=OPSET), "datatypes.onnx")


def integers():
    """One input per small integer datatype, each returned as it came (Identity)."""
    types = [
        ("i8", TensorProto.INT8),
        ("i16", TensorProto.INT16),
        ("u8", TensorProto.UINT8),
        ("u16", TensorProto.UINT16),
        ("u32", TensorProto.UINT32),
        ("u64", TensorProto.UINT64),
    ]
    graph = helper.make_graph(
        [helper.make_node("Identity", [name], [name + "_out"]) for name, _ in types],
        "integers",
        [helper.make_tensor_value_info(name, ty, ["N"]) for name, ty in types],
        [helper.make_tensor_value_info(name + "_out", ty, ["N"]) for name, ty in types],
    )
    save(helper.make_model(graph, opset_imports=OPSET), "integers.onnx")


def sequence_output():
    """A tensor output plus a sequence output (like scikit-learn's ZipMap, not a tensor)."""
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["y"]),
            helper.make_node("SequenceConstruct", ["x", "x"], ["seq"]),
        ],
        "sequence_output",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [2]),
            helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, [2]),
        ],
    )
    save(helper.make_model(graph, opset_imports=OPSET), "sequence_output.onnx")


def unsupported():
    """An operator ONNX Runtime has never heard of, in a custom domain."""
    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example.sandpit")],
        "unsupported",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(
        graph, opset_imports=OPSET + [helper.make_opsetid("com.example.sandpit", 1)]
    )
    model.ir_version = 8
    onnx.save(model, os.path.join(HERE, "unsupported.onnx"))


if __name__ == "__main__":
    linear("linear.onnx", [1.0, 2.0, 3.0], [0.5])
    linear("linear_v2.onnx", [10.0, 20.0, 30.0], [-1.0])
    datatypes()
    integers()
    sequence_output()
    unsupported()
    print("wrote", sorted(f for f in os.listdir(HERE) if f.endswith(".onnx")))
