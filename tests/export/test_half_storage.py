"""Float16 storage of exactly representable float32 weights: a smaller file, the same outputs to the bit."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from vae_restore.export.half_storage import store_exact_float16


def affine_graph(path) -> None:
    """y = x·W + b with W exact in float16 (multiples of 1/64) and b not (random float32)."""
    rng = np.random.default_rng(0)
    weight = (rng.integers(-64, 64, (32, 16)) / 64).astype(np.float32)
    bias = rng.standard_normal(16).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 16])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))


def run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_exact_weights_are_stored_as_float16_and_outputs_stay_bit_for_bit(tmp_path):
    path = tmp_path / "affine.onnx"
    affine_graph(path)
    x = np.random.default_rng(1).standard_normal((5, 32)).astype(np.float32)
    before, size = run(path, x), path.stat().st_size
    assert store_exact_float16(path) == 1
    stored = {i.name: i.data_type for i in onnx.load(str(path)).graph.initializer}
    assert stored == {"W_float16": TensorProto.FLOAT16, "b": TensorProto.FLOAT}
    assert np.array_equal(run(path, x), before) and path.stat().st_size < size - 32 * 16 * 2 + 100
    onnx.checker.check_model(str(path), full_check=True)
    assert store_exact_float16(path) == 0, "a second pass finds nothing left to store"
