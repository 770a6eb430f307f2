"""Reconstruction (+ SSIM) + β·KL, reported per image and averaged over the batch.

`loss_reduction` says what "per image" means. `sum` is the original code's: the reconstruction summed over
an image's values and the KL over its latent elements, so β's effect changes with the crop size and the
latent's size. `mean` averages both instead (per value, per latent element), so one β means the same for
every preset and crop size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch.nn import functional as F

from .config import LossConfig
from .metrics import ssim_map
from .models import VAEOutput

CHARBONNIER_EPS = 1e-3


class LossTerms(NamedTuple):
    loss: torch.Tensor
    reconstruction: torch.Tensor  # the pixel term plus the SSIM term, if any
    kl: torch.Tensor


def _per_image(values: torch.Tensor, reduction: str) -> torch.Tensor:
    flat = values.flatten(1)
    return flat.mean(1) if reduction == "mean" else flat.sum(1)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """KL(N(mu, σ²) ‖ N(0, 1)) per image, summed (or averaged) over the latent elements (vector or map)."""
    return _per_image(-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()), reduction)


def reconstruction_loss(kind: str, logits: torch.Tensor, target: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """Per-image sum (or mean) over values; BCE works on logits so it is stable (and allowed) under autocast."""
    if kind == "bce":
        per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    else:
        diff = torch.sigmoid(logits) - target
        if kind == "l1":
            per_pixel = diff.abs()
        elif kind == "mse":
            per_pixel = diff.square()
        elif kind == "charbonnier":
            per_pixel = torch.sqrt(diff.square() + CHARBONNIER_EPS**2)
        else:
            raise ValueError(f"unknown reconstruction loss {kind!r}")
    return _per_image(per_pixel, reduction)


def ssim_loss(restored: torch.Tensor, target: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """Per image (1 - SSIM), times the number of values for `sum`, so its weight compares with a per-pixel loss's."""
    ssim = ssim_map(restored, target).flatten(2).mean(2).mean(1)
    return (1.0 - ssim) * (1 if reduction == "mean" else target[0].numel())


def kl_scale(config: LossConfig, step: int | None) -> float:
    """β at optimizer step `step` (0-based): a linear warm-up over kl_warmup_steps, then kl_weight."""
    if step is None or config.kl_warmup_steps <= 0:
        return config.kl_weight
    return config.kl_weight * min(1.0, (step + 1) / config.kl_warmup_steps)


def loss_means(
    config: LossConfig, logits: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch means of the reconstruction (+ SSIM) and KL terms, in fp32 whatever the forward's precision.

    This is the elementwise bulk of the loss, kept apart so `--compile` can fuse it into a few kernels;
    β stays outside because it changes every step of a warm-up.
    """
    logits, target, reduction = logits.float(), target.float(), config.loss_reduction
    recon = reconstruction_loss(config.reconstruction, logits, target, reduction)
    if config.ssim_weight > 0:
        recon = recon + config.ssim_weight * ssim_loss(torch.sigmoid(logits), target, reduction)
    return recon.mean(), kl_divergence(mu.float(), logvar.float(), reduction).mean()


def vae_loss(
    config: LossConfig,
    output: VAEOutput,
    target: torch.Tensor,
    step: int | None = None,
    means: Callable[..., tuple[torch.Tensor, torch.Tensor]] = loss_means,
) -> LossTerms:
    """`step` drives the KL warm-up; `means` may be a compiled `loss_means`."""
    recon, kl = means(config, output.logits, target, output.mu, output.logvar)
    return LossTerms(recon + kl_scale(config, step) * kl, recon, kl)
