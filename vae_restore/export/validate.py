"""The parity gate: onnxruntime (CPU) against the fp32 PyTorch module on random and real inputs.

Real inputs are 128×128 tiles of the embedded scikit-image samples (for the decoder: their fp32
encoder features), so the gate also covers the value ranges a trained model meets in practice. A fully
convolutional graph is also run at a non-square size other than the tile's (`spatial_size`), whose
deepest feature map has odd sides, so the dynamic height and width are checked, not only the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.embedded import embedded_images
from ..models import VAE
from ..tiling import tile_grid
from .onnx_export import TensorSpec, concrete_shape

FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 5e-3


@dataclass(frozen=True)
class ParityCase:
    """The largest |onnxruntime - PyTorch| for one kind of input at one batch size, and where it is."""

    inputs: str  # "random" or "real", then " H×W" for a size other than the preset's tile
    batch_size: int
    max_abs_diff: float
    where: tuple[int, ...]  # index into the output (n, c, y, x)
    onnx_value: float
    torch_value: float

    def describe(self) -> str:
        return (
            f"{self.inputs} inputs, batch {self.batch_size}: max |Δ| = {self.max_abs_diff:.3g} at output index "
            f"{self.where} (onnxruntime {self.onnx_value:.6f}, PyTorch {self.torch_value:.6f})"
        )


@dataclass(frozen=True)
class ParityReport:
    tolerance: float
    cases: tuple[ParityCase, ...]

    @property
    def worst(self) -> ParityCase:
        return max(self.cases, key=lambda c: c.max_abs_diff)

    @property
    def passed(self) -> bool:
        return all(c.max_abs_diff <= self.tolerance for c in self.cases)

    def to_dict(self) -> dict:
        return {
            "tolerance": self.tolerance,
            "passed": self.passed,
            "max_abs_diff": self.worst.max_abs_diff,
            "cases": [asdict(c) for c in self.cases],
        }


def real_tiles(count: int, tile: int) -> np.ndarray:
    """`count` tiles N×3×T×T float32 from the embedded samples, taken round-robin across the images."""
    per_image = []
    for _, image in embedded_images():
        grid = tile_grid(*image.shape[:2], tile=tile, overlap=0)
        picks = np.linspace(0, len(grid) - 1, min(len(grid), 8)).round().astype(int)
        per_image.append([image[grid[i][0] : grid[i][0] + tile, grid[i][1] : grid[i][1] + tile] for i in picks])
    pool = [t for group in zip(*per_image, strict=False) for t in group]
    tiles = np.stack([pool[i % len(pool)] for i in range(count)]).astype(np.float32) / 255.0
    return np.ascontiguousarray(tiles.transpose(0, 3, 1, 2))


def spatial_size(multiple: int) -> tuple[int, int]:
    """H×W of the extra case of a fully convolutional graph: non-square, and odd multiples of `multiple`."""
    return 11 * multiple, 19 * multiple


def real_crops(count: int, height: int, width: int) -> np.ndarray:
    """`count` centre crops N×3×H×W float32 of the embedded samples, round-robin across the images."""
    crops = []
    for _, image in embedded_images():
        top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
        crops.append(image[top : top + height, left : left + width])
    batch = np.stack([crops[i % len(crops)] for i in range(count)]).astype(np.float32) / 255.0
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def parity_inputs(
    model: VAE,
    part: str,
    specs: Sequence[TensorSpec],
    kind: str,
    batch_size: int,
    seed: int,
    size: tuple[int, int] | None = None,
) -> list[np.ndarray]:
    """Inputs for one gate case: images for the restoration path, (z, skips..., [image]) for the decoder.

    `size` is the H×W of a fully convolutional graph's images (default: the preset's tile).
    """
    rng = np.random.default_rng(seed)
    height, width = size or (model.preset.image_size,) * 2
    if kind == "random":
        return [_random_input(rng, concrete_shape(spec, batch_size, height, width), spec.name) for spec in specs]
    images = real_tiles(batch_size, height) if size is None else real_crops(batch_size, height, width)
    if part == "restore":
        return [images]
    with torch.no_grad():
        mu, _, skips = model.encoder(torch.from_numpy(images))
    residual = [images] if model.preset.residual else []
    return [mu.numpy(), *(s.numpy() for s in skips), *residual]


def _random_input(rng: np.random.Generator, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Images uniform in [0, 1), latents standard normal, skips rectified normal (they follow a ReLU)."""
    if name in ("image", "restored"):
        return rng.random(shape, dtype=np.float32)
    values = rng.standard_normal(shape, dtype=np.float32)
    return values if name == "z" else np.maximum(values, 0)


def run_reference(reference: nn.Module, inputs: list[np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return reference(*(torch.from_numpy(x) for x in inputs)).numpy()


def compare(kind: str, batch_size: int, got: np.ndarray, expected: np.ndarray) -> ParityCase:
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    if not np.isfinite(diff).all():
        diff = np.where(np.isfinite(diff), diff, np.inf)
    where = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return ParityCase(
        kind, batch_size, float(diff[where]), tuple(int(i) for i in where), float(got[where]), float(expected[where])
    )


def check_parity(
    onnx_path: Path,
    model: VAE,
    reference: nn.Module,
    part: str,
    specs: Sequence[TensorSpec],
    batch_sizes: Sequence[int],
    tolerance: float,
) -> ParityReport:
    """Run every (random | real) × batch-size case through onnxruntime's CPU provider and `reference`; a fully
    convolutional graph also (random | real) at `spatial_size`, batch 1."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    cases = []
    for i, batch_size in enumerate(batch_sizes):
        for kind in ("random", "real"):
            inputs = parity_inputs(model, part, specs, kind, batch_size, seed=i)
            got = session.run(None, dict(zip(names, inputs, strict=True)))[0]
            cases.append(compare(kind, batch_size, got, run_reference(reference, inputs)))
    if model.preset.fully_convolutional:
        size = spatial_size(model.preset.multiple)
        for kind in ("random", "real"):
            inputs = parity_inputs(model, part, specs, kind, 1, seed=len(batch_sizes), size=size)
            got = session.run(None, dict(zip(names, inputs, strict=True)))[0]
            label = f"{kind} {size[0]}×{size[1]}"
            cases.append(compare(label, 1, got, run_reference(reference, inputs)))
    return ParityReport(tolerance, tuple(cases))
