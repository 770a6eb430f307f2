"""Down-and-up scaling: the detail lost by a low-resolution copy that was enlarged again.

Each image gets its own factor, so the low-resolution copies have different sizes. They are laid
out on one canvas big enough for the smallest factor and sampled with `grid_sample`, so the whole
batch is resampled by two calls whatever the factors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .blur import separable_blur
from .sampling import log_uniform


def _grid(scale: torch.Tensor, out_h: int, out_w: int, in_h: int, in_w: int) -> torch.Tensor:
    """Sampling grid (B, out_h, out_w, 2) that maps output pixel p to input coordinate (p + ½)·scale − ½."""
    ys = torch.arange(out_h, device=scale.device, dtype=torch.float32) + 0.5
    xs = torch.arange(out_w, device=scale.device, dtype=torch.float32) + 0.5
    s = scale[:, None]
    gy = (2 * ys[None, :] * s / in_h - 1)[:, :, None].expand(-1, out_h, out_w)
    gx = (2 * xs[None, :] * s / in_w - 1)[:, None, :].expand(-1, out_h, out_w)
    return torch.stack([gx, gy], dim=-1)


def down_up(x: torch.Tensor, factor: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Shrink by a factor drawn per image from `factor` (anti-aliased), then enlarge back bicubically."""
    b, _, h, w = x.shape
    f = log_uniform(x, factor, generator)
    # the blur that takes a sharp image to one that is sharp at 1/f of the resolution
    sharp = separable_blur(x, 0.5 * (f * f - 1).clamp_min(0).sqrt(), 0.5 * math.sqrt(max(factor[1] ** 2 - 1, 0)))
    low_h, low_w = math.ceil(h / factor[0]), math.ceil(w / factor[0])
    sample = lambda img, grid, mode: F.grid_sample(img, grid, mode, padding_mode="border", align_corners=False)  # noqa: E731
    low = sample(sharp, _grid(f, low_h, low_w, h, w), "bilinear")
    up = sample(low, _grid(1 / f, h, w, low_h, low_w), "bicubic")
    return up.clamp_(0.0, 1.0).to(x.dtype)
