"""What every architecture of the family returns: the encoder's (mu, logvar, skips) and the VAE's logits."""

from __future__ import annotations

from typing import NamedTuple

import torch


class EncoderOutput(NamedTuple):
    mu: torch.Tensor
    logvar: torch.Tensor
    skips: tuple[torch.Tensor, ...]  # one per scale, shallowest last for the FC family (`Preset.skip_shapes()`)


class VAEOutput(NamedTuple):
    logits: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor

    @property
    def restored(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)
