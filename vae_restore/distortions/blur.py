"""Defocus (Gaussian) and camera-shake (motion) blur, one kernel per image, applied as one grouped convolution."""

from __future__ import annotations

import math

import torch

from .sampling import grouped_conv, uniform


def gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Normalised 1-D Gaussian kernels (B, 2·radius+1), one per σ."""
    t = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float32)
    k = torch.exp(-0.5 * (t[None, :] / sigma[:, None].clamp_min(1e-3)) ** 2)
    return k / k.sum(1, keepdim=True)


def separable_blur(x: torch.Tensor, sigma: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """Gaussian blur with σ per image (B,): a row pass then a column pass."""
    radius = max(1, math.ceil(3.0 * max_sigma))
    k = gaussian_kernels(sigma, radius)
    return grouped_conv(grouped_conv(x, k[:, None, :]), k[:, :, None])


def gaussian_blur(x: torch.Tensor, sigma: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Blur with σ (pixels) drawn per image uniformly from `sigma`."""
    return separable_blur(x, uniform(x, sigma, generator), sigma[1]).clamp_(0.0, 1.0)


def motion_kernels(length: torch.Tensor, angle: torch.Tensor, size: int) -> torch.Tensor:
    """Anti-aliased straight-line kernels (B, size, size): a segment of `length` pixels at `angle` radians."""
    r = size // 2
    t = torch.arange(-r, r + 1, device=length.device, dtype=torch.float32)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    along = xx * cos + yy * sin
    across = -xx * sin + yy * cos
    half = (length / 2)[:, None, None]
    k = (1 - across.abs()).clamp(0, 1) * (half + 0.5 - along.abs()).clamp(0, 1)
    return k / k.sum((1, 2), keepdim=True).clamp_min(1e-8)


def motion_blur(x: torch.Tensor, length: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Linear motion blur: length (pixels) drawn uniformly from `length`, direction uniform over 180°."""
    size = 2 * math.ceil(length[1] / 2) + 1
    lengths = uniform(x, length, generator)
    angles = uniform(x, (0.0, math.pi), generator)
    return grouped_conv(x, motion_kernels(lengths, angles, size)).clamp_(0.0, 1.0)
