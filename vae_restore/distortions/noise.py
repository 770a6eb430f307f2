"""Additive noise, batched on the tensor's device and driven by an explicit generator."""

from __future__ import annotations

import torch


def gaussian_noise(x: torch.Tensor, sigma: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Add N(0, σ²) noise with σ drawn per image uniformly from `sigma` (in 1/255 units); clip to [0, 1]."""
    lo, hi = sigma
    s = torch.rand(x.shape[0], 1, 1, 1, generator=generator, device=x.device, dtype=x.dtype) * (hi - lo) + lo
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + noise * (s / 255.0)).clamp_(0.0, 1.0)
