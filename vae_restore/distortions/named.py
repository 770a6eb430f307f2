"""Distortions by name (`awgn25`, `jpeg20`, `blur` ...), each a fixed setting, so evaluations are repeatable.

A named distortion is `fn(images N×3×H×W float in [0, 1], generator) -> same shape`; add one by putting
it in `NAMED_DISTORTIONS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..errors import ConfigError
from .artwork import aged
from .jpeg import jpeg_roundtrip_cpu, quantise
from .noise import gaussian_noise

NamedDistortion = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

BLUR_SIGMA = 2.0
LIGHT_NOISE_SIGMA = 5.0  # `blur_noise`: the sensor noise left on a blurred photo, in 1/255 units


def awgn(sigma: float) -> NamedDistortion:
    """Additive white Gaussian noise of a fixed σ (in 1/255 units)."""
    return lambda images, generator: gaussian_noise(images, (sigma, sigma), generator)


def jpeg(quality: int) -> NamedDistortion:
    """A real JPEG encode/decode round trip (libjpeg through Pillow, 4:2:0) at `quality`; needs no randomness."""

    def apply(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        decoded = jpeg_roundtrip_cpu(quantise(images.detach().cpu()), [quality] * images.shape[0])
        return decoded.to(images.device, images.dtype) / 255.0

    return apply


def gaussian_blur(sigma: float) -> NamedDistortion:
    """Gaussian blur with a kernel of 2·ceil(3σ)+1 taps, reflect-padded at the borders."""

    def apply(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        from torchvision.transforms.functional import gaussian_blur as blur

        size = 2 * math.ceil(3 * sigma) + 1
        return blur(images, kernel_size=[size, size], sigma=[sigma, sigma])

    return apply


def chain(*steps: NamedDistortion) -> NamedDistortion:
    """Apply `steps` in order, all drawing from the one generator."""

    def apply(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for step in steps:
            images = step(images, generator)
        return images

    return apply


NAMED_DISTORTIONS: dict[str, NamedDistortion] = {
    "awgn15": awgn(15.0),
    "awgn25": awgn(25.0),
    "awgn50": awgn(50.0),
    "jpeg10": jpeg(10),
    "jpeg20": jpeg(20),
    "blur": gaussian_blur(BLUR_SIGMA),
    "aged": aged,  # artwork damage: fading, yellowed varnish, scratches, dust
    "blur_noise": chain(gaussian_blur(BLUR_SIGMA), awgn(LIGHT_NOISE_SIGMA)),
}


def get_named(name: str) -> NamedDistortion:
    try:
        return NAMED_DISTORTIONS[name]
    except KeyError:
        known = ", ".join(sorted(NAMED_DISTORTIONS))
        raise ConfigError(f"unknown distortion {name!r}; known distortions: {known}") from None


def apply_named(name: str, images: torch.Tensor, seed: int) -> torch.Tensor:
    """Distort `images` (N×3×H×W float in [0, 1]) with the named setting; the same seed gives the same result."""
    generator = torch.Generator(device=images.device).manual_seed(seed)
    return get_named(name)(images, generator)
