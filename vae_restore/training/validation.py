"""A fixed validation set of crops, scored with the shared metrics and shown as an image grid."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.utils import make_grid

from ..data.image_set import ImageSet
from ..data.pixel_bank import PixelBank
from ..data.sampler import to_float
from ..errors import TrainingError
from ..metrics import compute_metrics

GRID_ROWS = 8


@dataclass
class ValidationSet:
    inputs: torch.Tensor  # N×3×S×S float, what the model sees
    targets: torch.Tensor  # N×3×S×S float, the clear crops


def build_validation_set(
    images: ImageSet, crop_size: int, crops_per_image: int, seed: int, distort, use_pairs: bool = True
) -> ValidationSet:
    """Centre crop plus seeded random crops of each image; identical on every process and every run.

    Inputs are the distorted partners of paired data (when `use_pairs`), else `distort(clear, generator)`,
    else the clear crops themselves (stage clear: `distort` is None).
    """
    g = torch.Generator().manual_seed(seed)
    target = PixelBank(images.clear, crop_size)
    source = PixelBank(images.distorted, crop_size) if images.paired and use_pairs else None
    index = torch.arange(len(target)).repeat_interleave(crops_per_image)
    u = torch.rand(len(index), 2, generator=g)
    first = torch.arange(len(index)) % crops_per_image == 0
    u[first] = 0.5
    top = (u[:, 0] * (target.heights[index] - crop_size + 1)).long()
    left = (u[:, 1] * (target.widths[index] - crop_size + 1)).long()
    no_flip = torch.zeros(len(index), dtype=torch.bool)
    flat = target.crop_indices(index, top, left, crop_size, no_flip, no_flip)
    clear = to_float(target.gather(flat)).contiguous()
    if source is not None:
        inputs = to_float(source.gather(flat)).contiguous()
    elif distort is not None:
        inputs = distort(clear.clone(), g)
    else:
        inputs = clear
    return ValidationSet(inputs, clear)


def _restore(accelerator, model, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    out = []
    for chunk in inputs.split(batch_size):
        with accelerator.autocast():
            out.append(model.restore(chunk.to(accelerator.device)).float())
    return torch.cat(out)


class NonFiniteRestoration(TrainingError):
    """The validation crops came back with NaN or infinite pixels."""


def share(n: int, rank: int, num_processes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank `rank`'s sample indices (every `num_processes`-th) and which are real, not padding.

    Every rank gets the same count, as `gather` needs; padding repeats the last sample and is dropped
    after gathering, so every sample counts exactly once whatever the number of processes.
    """
    idx = torch.arange(rank, -(-n // num_processes) * num_processes, num_processes)
    return idx.clamp(max=n - 1), idx < n


@torch.no_grad()
def run_validation(accelerator, model, val: ValidationSet, batch_size: int = 64):
    """Mean metrics over the whole set and, on the main process, the comparison grid."""
    idx, real = share(len(val.targets), accelerator.process_index, accelerator.num_processes)
    restored = _restore(accelerator, model, val.inputs[idx], batch_size)
    local = compute_metrics(restored, val.targets[idx].to(accelerator.device))
    keep = accelerator.gather(real.to(accelerator.device))
    metrics = {k: accelerator.gather(v)[keep].mean().item() for k, v in local.items()}
    if not math.isfinite(metrics["mse"]):  # gathered, so every process raises alike
        raise NonFiniteRestoration("the model restores to NaN/Inf")
    grid = None
    if accelerator.is_main_process:
        shown = slice(0, GRID_ROWS)
        grid = comparison_grid(
            val.inputs[shown], _restore(accelerator, model, val.inputs[shown], batch_size), val.targets[shown]
        )
    return metrics, grid


def comparison_grid(inputs: torch.Tensor, restored: torch.Tensor, clear: torch.Tensor) -> np.ndarray:
    """Rows of input | restored | clear, as H×W×3 uint8."""
    rows = torch.stack([inputs.cpu(), restored.cpu().float(), clear.cpu()], dim=1).flatten(0, 1)
    grid = make_grid(rows.clamp(0, 1), nrow=3, padding=2, pad_value=1.0)
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
