"""Reconstruction + β·KL, reported per image (sum over pixels, mean over the batch) as SPEC §2 asks."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F

from .config import LossConfig
from .models import VAEOutput

CHARBONNIER_EPS = 1e-3


class LossTerms(NamedTuple):
    loss: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, σ²) ‖ N(0, 1)) per image, summed over the latent dimensions."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def reconstruction_loss(kind: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image sum over pixels; BCE works on logits so it is stable (and allowed) under autocast."""
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
    return per_pixel.flatten(1).sum(1)


def vae_loss(config: LossConfig, output: VAEOutput, target: torch.Tensor) -> LossTerms:
    """The loss is computed in fp32 whatever precision the forward pass ran in."""
    recon = reconstruction_loss(config.reconstruction, output.logits.float(), target.float()).mean()
    kl = kl_divergence(output.mu.float(), output.logvar.float()).mean()
    return LossTerms(recon + config.kl_weight * kl, recon, kl)
