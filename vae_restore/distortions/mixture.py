"""Random mixtures of distortions: each applies to an image with its own chance, several per image.

They run in the order damage happens in the world: the object ages (artwork damage), the camera
blurs and adds noise, the file is rescaled, then saved as JPEG. Each distortion processes only
the images that drew it, as one batched call; every image gets at least one.

Choosing a sub-batch needs its size on the host: one device synchronisation per uncertain distortion.
A distortion every image gets (probability 1, or the only one in the mixture) is applied to the whole
batch without drawing, so the default Gaussian-noise stage runs with no synchronisation at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..config import DistortionConfig
from . import artwork, blur, jpeg, noise, resample
from .named import chain
from .sampling import device_constant

Distortion = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _bind(fn, bounds) -> Distortion:
    return lambda x, generator: fn(x, bounds, generator)


def distortions_from_config(config: DistortionConfig, noise_sigma: tuple[float, float]) -> dict[str, Distortion]:
    """Every distortion by name, in application order, with its parameter range from the config."""
    c = config
    fading, yellowing = _bind(artwork.fading, c.fade_amount), _bind(artwork.yellowing, c.yellowing_strength)
    scratches, dust = _bind(artwork.scratches, c.scratch_count), _bind(artwork.dust, c.dust_density)
    return {
        "aging": chain(fading, yellowing, scratches, dust),  # damage that comes together
        "fading": fading,
        "yellowing": yellowing,
        "color_cast": _bind(artwork.color_cast, c.cast_strength),
        "cracks": _bind(artwork.cracks, c.crack_cell),
        "scratches": scratches,
        "dust": dust,
        "gaussian_blur": _bind(blur.gaussian_blur, c.blur_sigma),
        "motion_blur": _bind(blur.motion_blur, c.motion_length),
        "poisson_noise": _bind(noise.poisson_noise, c.poisson_peak),
        "gaussian_noise": _bind(noise.gaussian_noise, noise_sigma),
        "resample": _bind(resample.down_up, c.resample_factor),
        "jpeg": _bind(jpeg.jpeg_compression, c.jpeg_quality),
    }


@dataclass
class DistortionMixture:
    """Callable `(clear batch, generator) -> distorted batch`; the input is never modified."""

    names: list[str]
    probabilities: list[float]
    functions: list[Distortion]

    @classmethod
    def from_config(cls, config: DistortionConfig, noise_sigma: tuple[float, float]) -> DistortionMixture:
        chosen = [(n, getattr(config, f"p_{n}"), f) for n, f in distortions_from_config(config, noise_sigma).items()]
        chosen = [item for item in chosen if item[1] > 0]
        if not chosen:
            raise ValueError("every distortion probability is 0")
        names, probabilities, functions = map(list, zip(*chosen, strict=True))
        return cls(names, probabilities, functions)

    @property
    def certain(self) -> list[bool]:
        """Per distortion: does every image get it? (probability 1, or the only one: each image gets one)"""
        return [p >= 1.0 or len(self.probabilities) == 1 for p in self.probabilities]

    def draw(self, batch_size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Which distortions hit which image: bool (B, K), at least one per row (no host synchronisation)."""
        p = device_constant(tuple(self.probabilities), device, torch.float32)
        hits = torch.rand(batch_size, len(p), generator=generator, device=device) < p
        fallback = torch.multinomial(p.expand(batch_size, -1), 1, generator=generator).squeeze(1)
        return hits | (~hits.any(1, keepdim=True) & F.one_hot(fallback, len(p)).bool())

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Distort in float32 (half-precision pixels would band the subtle ones) and return the input's dtype."""
        dtype, x = x.dtype, x.float()
        certain = self.certain
        hits = None if all(certain) else self.draw(x.shape[0], generator, x.device)
        for k, fn in enumerate(self.functions):
            if certain[k]:
                x = fn(x, generator)
                continue
            idx = hits[:, k].nonzero().squeeze(1)  # the sub-batch's size is read on the host: a sync
            if idx.numel() == x.shape[0]:
                x = fn(x, generator)
            elif idx.numel():
                x = x.index_copy(0, idx, fn(x.index_select(0, idx), generator))
        return x.to(dtype)
