"""Per-image random parameters and smooth random fields, all drawn from an explicit generator.

Every distortion draws what it needs here, on the tensor's device, so a batch is distorted with
one set of tensor operations and the same generator state always gives the same result.
"""

from __future__ import annotations

import math
from functools import cache

import torch
import torch.nn.functional as F


def uniform(x: torch.Tensor, bounds: tuple[float, float], generator: torch.Generator, *shape: int) -> torch.Tensor:
    """Uniform draws in [low, high], shape (B, *shape), on x's device in float32."""
    lo, hi = bounds
    u = torch.rand(x.shape[0], *shape, generator=generator, device=x.device)
    return u * (hi - lo) + lo


def log_uniform(x: torch.Tensor, bounds: tuple[float, float], generator: torch.Generator, *shape: int) -> torch.Tensor:
    """Draws spread evenly in log space, for scale-like parameters (photon counts, factors)."""
    lo, hi = bounds
    return uniform(x, (math.log(lo), math.log(hi)), generator, *shape).exp()


def per_image(values: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, 1, 1), to broadcast over an image batch."""
    return values.reshape(-1, 1, 1, 1)


def coarse_field(x: torch.Tensor, cells: int, generator: torch.Generator, channels: int = 1) -> torch.Tensor:
    """A smooth random field in [0, 1] at a quarter of x's size: a cells×cells grid of values, bicubic-upsampled."""
    h, w = x.shape[-2:]
    grid = torch.rand(x.shape[0], channels, cells + 1, cells + 1, generator=generator, device=x.device)
    quarter = (max(cells + 1, h // 4), max(cells + 1, w // 4))
    return F.interpolate(grid, size=quarter, mode="bicubic", align_corners=True).clamp_(0.0, 1.0)


def to_size(field: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bilinear upsampling of a coarse field to x's size (a field smooth at the coarse scale stays smooth)."""
    return F.interpolate(field, size=x.shape[-2:], mode="bilinear", align_corners=True)


def smooth_field(x: torch.Tensor, cells: int, generator: torch.Generator, channels: int = 1) -> torch.Tensor:
    """A smooth random field in about [0, 1], (B, channels, H, W), varying over about cells×cells regions."""
    return to_size(coarse_field(x, cells, generator, channels), x)


@cache
def device_constant(values: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A small constant made once per device and dtype: a copy from the host on every call waits for the GPU.

    Shared between callers, so never modify it in place.
    """
    return torch.tensor(values, device=device, dtype=dtype)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma, (B, 1, H, W)."""
    weights = device_constant((0.299, 0.587, 0.114), x.device, x.dtype)
    return (x * weights.view(1, 3, 1, 1)).sum(1, keepdim=True)


def pixel_grid(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column coordinates (H, W) of x's pixel centres, in pixels."""
    h, w = x.shape[-2:]
    rows = torch.arange(h, device=x.device, dtype=torch.float32)
    cols = torch.arange(w, device=x.device, dtype=torch.float32)
    return torch.meshgrid(rows, cols, indexing="ij")


def grouped_conv(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Filter each image of x with its own 2-D kernel (B, kh, kw), all channels alike, reflect-padded."""
    b, c, h, w = x.shape
    kh, kw = kernels.shape[-2:]
    weight = kernels.to(x.dtype).repeat_interleave(c, dim=0).unsqueeze(1)
    mode = "reflect" if kh // 2 < h and kw // 2 < w else "replicate"  # reflect needs the image larger than the pad
    padded = F.pad(x.reshape(1, b * c, h, w), (kw // 2, kw // 2, kh // 2, kh // 2), mode=mode)
    return F.conv2d(padded, weight, groups=b * c).reshape(b, c, h, w)
