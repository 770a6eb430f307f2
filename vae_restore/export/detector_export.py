"""The damage detector as an ONNX graph: whole images of any size in, one probability per damage group out.

Published like a restoration export: written under a temporary name, checked on onnxruntime against
PyTorch (random and real images, two sizes whose 1/8-scale maps have odd sides), then renamed together
with its manifest `detector.onnx.json` (sha256, groups, parity), so a half-written graph is never found.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checksums import sha256_file
from ..data.embedded import embedded_images
from ..errors import ExportError
from ..models.damage_detector_arch import DamageDetector
from .manifest import package_versions, publish
from .onnx_export import DEFAULT_OPSET, EXPORTER_OPTIONS, quiet_exporter

DETECTOR_FILE = "detector.onnx"
PARITY_TOLERANCE = 1e-4  # on probabilities
PARITY_SIZES = ((72, 104), (200, 152))  # H×W: odd sides at 1/8 scale, neither square nor a training crop


class Probabilities(nn.Module):
    """The detector with its sigmoid: what a runtime compares with a threshold."""

    def __init__(self, detector: DamageDetector):
        super().__init__()
        self.detector = detector

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.detector(image))


def _write_graph(module: Probabilities, path: Path) -> None:
    dims = {
        0: torch.export.Dim("batch", min=1, max=1024),
        2: torch.export.Dim("height", min=8, max=16384),
        3: torch.export.Dim("width", min=8, max=16384),
    }
    try:
        with quiet_exporter():
            torch.onnx.export(
                module,
                (torch.rand(2, 3, 64, 96),),
                str(path),
                **EXPORTER_OPTIONS,
                opset_version=DEFAULT_OPSET,
                input_names=["image"],
                output_names=["probabilities"],
                dynamic_shapes=(dims,),
            )
    except Exception as e:  # the exporter raises many unrelated types; one clear error instead
        raise ExportError(f"torch.onnx.export failed for the damage detector: {type(e).__name__}: {e}") from e


def parity_images() -> list[np.ndarray]:
    """1×3×H×W float32 inputs: random pixels and a crop of an embedded sample, at each of PARITY_SIZES."""
    rng = np.random.default_rng(0)
    sample = embedded_images()[0][1]
    images = []
    for height, width in PARITY_SIZES:
        images.append(rng.random((1, 3, height, width), dtype=np.float32))
        crop = sample[:height, :width].astype(np.float32) / 255
        images.append(np.ascontiguousarray(crop.transpose(2, 0, 1)[None]))
    return images


def check_detector_parity(module: Probabilities, path: Path) -> float:
    """The largest |onnxruntime - PyTorch| probability over `parity_images`; ExportError above the tolerance."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for image in parity_images():
        got = session.run(None, {"image": image})[0]
        with torch.no_grad():
            expected = module(torch.from_numpy(image)).numpy()
        worst = max(worst, float(np.abs(got - expected).max()))
    if worst > PARITY_TOLERANCE:
        raise ExportError(
            f"onnxruntime and PyTorch disagree on the damage detector by {worst:.2e} (tolerance "
            f"{PARITY_TOLERANCE:.0e}); nothing was written — report this with your torch and onnxruntime versions"
        )
    return worst


def export_detector(model: DamageDetector, folder: Path, weights: Path | None = None) -> Path:
    """Write `folder/detector.onnx` and its manifest if onnxruntime agrees with PyTorch; return the graph's path.

    Raises:
        ExportError: the exporter failed or the parity gate refused the graph (nothing is written).
    """
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / DETECTOR_FILE
    module = Probabilities(model.eval()).eval()
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        _write_graph(module, tmp)
        worst = check_detector_parity(module, tmp)
        manifest = {
            "file": output.name,
            "sha256": sha256_file(tmp),
            "part": "damage_detector",
            "groups": list(model.groups),
            "inputs": [{"name": "image", "shape": ["batch", 3, "height", "width"], "dtype": "float32"}],
            "outputs": [{"name": "probabilities", "shape": ["batch", len(model.groups)], "dtype": "float32"}],
            "value_range": [0.0, 1.0],
            "min_side": 8,
            "parity": {"max_abs_diff": worst, "tolerance": PARITY_TOLERANCE, "sizes": [list(s) for s in PARITY_SIZES]},
            **({"source": {"file": weights.name, "sha256": sha256_file(weights)}} if weights else {}),
            "versions": package_versions(),
        }
        publish(tmp, output, manifest)
    finally:
        tmp.unlink(missing_ok=True)
    return output
