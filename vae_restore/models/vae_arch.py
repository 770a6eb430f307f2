"""The VAE family: encoder -> (mu, logvar) -> z -> decoder with additive skips -> logits (sigmoid outside).

This module holds the FC-bottleneck architecture (`Preset.arch == "fc"`, the original network and its
variants); `fullconv_arch` the fully convolutional one. `VAE` builds whichever the preset names.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .channel_padding import PaddableConv2d, PaddableConvTranspose2d
from .fullconv_arch import ConvDecoder, ConvEncoder
from .outputs import EncoderOutput, VAEOutput
from .presets import ORIGINAL, Preset

RESIDUAL_EPS = 1e-3  # the input is clamped to [eps, 1 - eps] before its logit (8-bit steps are 3.9e-3)


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return PaddableConv2d(cin, cout, kernel_size=4, stride=2, padding=1)


def _deconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    return PaddableConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1)


def _conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return PaddableConv2d(cin, cout, kernel_size=3, padding=1)


def input_logits(image: torch.Tensor) -> torch.Tensor:
    """logit(image), with the image clamped away from 0 and 1 so the logit stays finite."""
    return torch.logit(image.clamp(RESIDUAL_EPS, 1.0 - RESIDUAL_EPS))


class Encoder(nn.Module):
    def __init__(self, preset: Preset):
        super().__init__()
        c1, c2, c3, c4 = preset.channels
        if preset.full_res_skip:
            self.conv0 = _conv3x3(preset.in_channels, preset.refine_channels)
        self.conv1 = _conv(preset.in_channels, c1)
        self.conv2 = _conv(c1, c2)
        self.conv3 = _conv(c2, c3)
        self.conv4 = _conv(c3, c4)
        self.fc1 = nn.Linear(c4 * preset.bottleneck_size**2, preset.hidden_dim)
        self.fc21 = nn.Linear(preset.hidden_dim, preset.latent_dim)
        self.fc22 = nn.Linear(preset.hidden_dim, preset.latent_dim)
        self.full_res_skip = preset.full_res_skip

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        s1 = F.relu(self.conv1(x))
        s2 = F.relu(self.conv2(s1))
        s3 = F.relu(self.conv3(s2))
        h = F.relu(self.conv4(s3))
        h = F.relu(self.fc1(h.flatten(1)))
        skips = (s1, s2, s3, F.relu(self.conv0(x))) if self.full_res_skip else (s1, s2, s3)
        return EncoderOutput(self.fc21(h), self.fc22(h), skips)


class Decoder(nn.Module):
    def __init__(self, preset: Preset):
        super().__init__()
        c1, c2, c3, c4 = preset.channels
        self._c4 = c4
        self._side = preset.bottleneck_size
        self.residual = preset.residual
        self.fc1 = nn.Linear(preset.latent_dim, preset.hidden_dim)
        self.fc2 = nn.Linear(preset.hidden_dim, c4 * preset.bottleneck_size**2)
        self.conv1 = _deconv(c4, c3)
        self.conv2 = _deconv(c3, c2)
        self.conv3 = _deconv(c2, c1)
        self.conv4 = _deconv(c1, preset.refine_channels if preset.has_head else preset.in_channels)
        if preset.has_head:
            r = preset.refine_channels
            self.refine = nn.ModuleList(_conv3x3(r, r) for _ in range(preset.refine_layers))
            self.head = _conv3x3(r, preset.in_channels)

    def forward(
        self, z: torch.Tensor, skips: tuple[torch.Tensor, ...], image: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return logits; the sigmoid is applied by the caller so BCE can use the stable logits form.

        `image` (the encoder's input) is needed by residual presets only.
        """
        s1, s2, s3 = skips[:3]
        h = F.relu(self.fc1(z))
        h = F.relu(self.fc2(h)).view(-1, self._c4, self._side, self._side)
        h = F.relu(self.conv1(h) + s3)
        h = F.relu(self.conv2(h) + s2)
        h = F.relu(self.conv3(h) + s1)
        h = self.conv4(h)
        if hasattr(self, "head"):
            h = F.relu(h + skips[3]) if len(skips) > 3 else F.relu(h)
            for conv in self.refine:
                h = F.relu(conv(h))
            h = self.head(h)
        if self.residual:
            if image is None:
                raise ValueError("a residual preset's decoder needs the input image")
            h = h + input_logits(image)
        return h


class VAE(nn.Module):
    """Encoder -> (mu, logvar) -> z -> decoder with additive skips -> sigmoid."""

    def __init__(self, preset: Preset = ORIGINAL):
        super().__init__()
        self.preset = preset
        conv = preset.arch == "conv"
        self.encoder = ConvEncoder(preset) if conv else Encoder(preset)
        self.decoder = ConvDecoder(preset) if conv else Decoder(preset)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
    ) -> VAEOutput:
        """Sample z by reparameterisation while training, use mu otherwise. `noise`, the standard-normal draw
        (shaped like mu), comes from the caller when it must not depend on how a batch is split over processes."""
        mu, logvar, skips = self.encoder(x)
        z = mu
        if self.training:
            if noise is None:
                noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + noise.to(mu.dtype) * torch.exp(0.5 * logvar)
        return VAEOutput(self.decoder(z, skips, x), mu, logvar)

    @torch.no_grad()
    def latent_shape(self, height: int, width: int) -> torch.Size:
        """The shape of one image's mu for an input of this size (one encoder pass over a blank image)."""
        device = next(self.parameters()).device
        return self.encoder(torch.zeros(1, 3, height, width, device=device))[0].shape[1:]

    def restoration_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic restoration path (z = mu) up to the logits; what the ONNX export traces."""
        mu, _, skips = self.encoder(x)
        return self.decoder(mu, skips, x)

    @torch.no_grad()
    def restore(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic restoration of an N×3×H×W batch in [0, 1] (H×W: `Preset.fits`): z = mu, no sampling."""
        return torch.sigmoid(self.restoration_logits(x))
