"""Float16 storage for float32 weights that float16 holds exactly: half the file, the same computation.

A graph exported from weights rounded to float16 (`launch/bundle_model.py --weights_dtype float16`) still
holds them as float32 initializers. Each one whose values float16 represents exactly is stored as float16
and turned back into the same float32 tensor by a Cast node at the top of the graph (onnxruntime folds it
when it loads the model), so every output stays bit for bit the same; the others are left as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

SUFFIX = "_float16"
MIN_ELEMENTS = 16  # scalars and tiny shape constants are not worth a Cast node


def store_exact_float16(path: Path) -> int:
    """Rewrite the ONNX file at `path` in place; return how many initializers are now stored as float16."""
    model = onnx.load(str(path))
    graph = model.graph
    kept, casts = [], []
    for initializer in graph.initializer:
        values = numpy_helper.to_array(initializer)
        half = values.astype(np.float16) if values.dtype == np.float32 and values.size >= MIN_ELEMENTS else None
        if half is None or not np.array_equal(half.astype(np.float32), values):
            kept.append(initializer)
            continue
        stored = initializer.name + SUFFIX
        kept.append(numpy_helper.from_array(half, stored))
        casts.append(helper.make_node("Cast", [stored], [initializer.name], to=onnx.TensorProto.FLOAT))
    if casts:
        del graph.initializer[:]
        graph.initializer.extend(kept)
        nodes = list(graph.node)
        del graph.node[:]
        graph.node.extend([*casts, *nodes])
        onnx.save(model, str(path))
    return len(casts)
