"""The fully convolutional member of the family: a U-shaped VAE whose latent is a feature map.

encoder: 3×3 head -> at each scale `blocks` residual blocks (3×3, ReLU, 3×3, + input), a skip, a 2×2
stride-2 convolution down -> at the deepest scale 1×1 convolutions give mu and logvar (C×H/2^k×W/2^k).
decoder: 1×1 from z -> residual blocks -> at each scale a 2×2 stride-2 transposed convolution up, + the
encoder's skip of that scale (full resolution included), residual blocks -> 3×3 tail -> a correction added
to the input image. With no fully connected layer the network takes any H×W that is a multiple of
`Preset.multiple`, so whole images are restored in one call.

The correction is added in pixel space (restored = input + correction, the usual form for denoisers);
the result is returned as logits so every loss and the export treat this preset like the others. Its
clamp to [eps, 1 - eps] passes gradients straight through, so a prediction past the range still learns.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .outputs import EncoderOutput
from .presets import Preset

EPS = 1e-4  # restored values are clamped to [EPS, 1 - EPS] before the logit (8-bit steps are 3.9e-3)


def _conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1)


class ResidualBlock(nn.Module):
    """x + conv(relu(conv(x))): depth at the cost of two 3×3 convolutions, stable without normalisation."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _conv3x3(channels, channels)
        self.conv2 = _conv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def _stage(channels: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))


class ConvEncoder(nn.Module):
    def __init__(self, preset: Preset):
        super().__init__()
        c = preset.channels
        self.head = _conv3x3(preset.in_channels, c[0])
        self.stages = nn.ModuleList(_stage(ci, preset.blocks) for ci in c)
        self.down = nn.ModuleList(nn.Conv2d(c[i], c[i + 1], kernel_size=2, stride=2) for i in range(len(c) - 1))
        self.mu = nn.Conv2d(c[-1], preset.latent_dim, kernel_size=1)
        self.logvar = nn.Conv2d(c[-1], preset.latent_dim, kernel_size=1)

    def forward(self, x: torch.Tensor):
        h = self.head(x)
        skips = []
        for i, stage in enumerate(self.stages):
            h = stage(h)
            if i < len(self.down):
                skips.append(h)
                h = self.down[i](h)
        return EncoderOutput(self.mu(h), self.logvar(h), tuple(skips))


class ConvDecoder(nn.Module):
    def __init__(self, preset: Preset):
        super().__init__()
        c = preset.channels[::-1]  # deepest first
        self.residual = preset.residual
        self.inp = nn.Conv2d(preset.latent_dim, c[0], kernel_size=1)
        self.stages = nn.ModuleList(_stage(ci, preset.blocks) for ci in c)
        self.up = nn.ModuleList(nn.ConvTranspose2d(c[i], c[i + 1], kernel_size=2, stride=2) for i in range(len(c) - 1))
        self.tail = _conv3x3(c[-1], preset.in_channels)
        if self.residual:  # an untrained decoder restores the identity
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward(
        self, z: torch.Tensor, skips: tuple[torch.Tensor, ...], image: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.stages[0](self.inp(z))
        for up, stage, skip in zip(self.up, self.stages[1:], reversed(skips), strict=True):
            h = stage(up(h) + skip)
        out = self.tail(h).float()
        if not self.residual:
            return out
        if image is None:
            raise ValueError("a residual preset's decoder needs the input image")
        restored = image.float() + out
        clamped = restored + (restored.clamp(EPS, 1.0 - EPS) - restored).detach()
        return torch.logit(clamped)
