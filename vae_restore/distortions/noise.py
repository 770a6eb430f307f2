"""Sensor noise, batched on the tensor's device and driven by an explicit generator."""

from __future__ import annotations

import torch

from .sampling import log_uniform, per_image, uniform


def gaussian_noise(x: torch.Tensor, sigma: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Add N(0, σ²) noise with σ drawn per image uniformly from `sigma` (in 1/255 units); clip to [0, 1]."""
    s = per_image(uniform(x, sigma, generator)).to(x.dtype)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + noise * (s / 255.0)).clamp_(0.0, 1.0)


def poisson_noise(x: torch.Tensor, peak: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Shot noise: each channel value becomes Poisson(value × peak) / peak photons, peak drawn log-uniformly.

    A low peak (few photons at white) is a dark, noisy capture; dark areas get relatively more noise.
    """
    p = per_image(log_uniform(x, peak, generator))
    counts = torch.poisson(x.float().clamp(0.0, 1.0) * p, generator=generator)
    return (counts / p).clamp_(0.0, 1.0).to(x.dtype)
