"""Damage of old paintings and prints: fading, colour cast, yellowed varnish, scratches, dust and spots, cracks.

Sizes are in pixels of the image being damaged (a 128×128 training crop), so the damage looks
the same at every batch size; everything is drawn per image from the generator, batched.
"""

from __future__ import annotations

import math

import torch

from .marks import crack_distance, draw_spots, draw_strokes, random_strokes
from .sampling import coarse_field, device_constant, luminance, per_image, smooth_field, to_size, uniform

WARM_WHITE = (0.96, 0.93, 0.86)  # the paper or ground that a faded picture drifts towards
VARNISH = (1.0, 0.82, 0.45)  # transmission of an old, yellowed varnish layer (blue absorbed most)


def _colour(x: torch.Tensor, rgb: tuple[float, float, float]) -> torch.Tensor:
    return device_constant(rgb, x.device, x.dtype).view(1, 3, 1, 1)


def fading(x: torch.Tensor, amount: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Contrast and saturation loss towards a warm white, unevenly across the picture (light exposure)."""
    a = per_image(uniform(x, amount, generator))
    a = a * (0.75 + 0.5 * smooth_field(x, 2, generator))
    grey = luminance(x).expand_as(x)
    washed = torch.lerp(x, grey, (0.6 * a).clamp(0, 1))
    return torch.lerp(washed, _colour(x, WARM_WHITE).expand_as(x), a.clamp(0, 1)).clamp_(0.0, 1.0)


def color_cast(x: torch.Tensor, strength: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """A global tint: per-channel gains in a random direction, brightness kept (old film, wrong white balance)."""
    s = per_image(uniform(x, strength, generator))
    direction = torch.randn(x.shape[0], 3, 1, 1, generator=generator, device=x.device)
    direction = direction - direction.mean(1, keepdim=True)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-6)
    return (x * (1 + s * direction * math.sqrt(3)).to(x.dtype)).clamp_(0.0, 1.0)


def yellowing(x: torch.Tensor, strength: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Yellowed varnish: blue absorbed most, a slight darkening, thicker in some places than others."""
    s = per_image(uniform(x, strength, generator)) * (0.7 + 0.6 * coarse_field(x, 3, generator))
    transmission = _colour(x, VARNISH).float() ** s * (1 - 0.1 * s)  # Beer-Lambert: a layer of thickness s
    return (x * to_size(transmission, x).to(x.dtype)).clamp_(0.0, 1.0)


def _overlay(x: torch.Tensor, alpha: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    return x + alpha * (colour - x)


def scratches(x: torch.Tensor, count: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """Thin, slightly bowed strokes, broken along their length: light (paint lost to the ground) or dark (grime)."""
    n = int(count[1])
    if n == 0:
        return x
    b, _, h, w = x.shape
    size = float(max(h, w))
    strokes = random_strokes(x, n, count, (0.15 * size, 0.7 * size), (0.5, 1.8), 4.0, generator)
    light = (torch.rand(b, n, generator=generator, device=x.device) < 0.6).long()
    cover = draw_strokes(x, strokes, light, 2, 0.7 * size, generator).to(x.dtype)  # layer 0 dark, 1 light
    tone = per_image(0.8 + 0.2 * torch.rand(b, generator=generator, device=x.device))
    dark = per_image(0.08 + 0.17 * torch.rand(b, generator=generator, device=x.device))
    out = _overlay(x, cover[:, 1:], tone * _colour(x, WARM_WHITE))
    return _overlay(out, cover[:, :1], dark * _colour(x, (1.0, 0.9, 0.75))).clamp_(0.0, 1.0)


def dust(x: torch.Tensor, density: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Dark dust specks and hairs, a few light flecks where paint flaked off, and faint brown foxing stains."""
    b = x.shape[0]
    d, hi = uniform(x, density, generator), float(density[1])
    specks = draw_spots(x, d * 0.7, hi * 0.7, 0.7, generator)
    dark = torch.maximum(specks, draw_spots(x, d * 0.12, hi * 0.12, 1.5, generator))
    light = draw_spots(x, d * 0.15, hi * 0.15, 0.9, generator)
    foxing = draw_spots(x, d * 0.015, hi * 0.015, 4.5, generator, hard=False)
    n_hairs = max(1, round(hi / 25))
    hairs = random_strokes(x, n_hairs, (0, n_hairs), (3.0, 14.0), (0.5, 1.0), 5.0, generator)
    hairs.wobble = hairs.wobble * 3
    hair = draw_strokes(x, hairs, torch.zeros(b, n_hairs, dtype=torch.long, device=x.device), 1, 14.0, generator)
    out = x * (1 - 0.4 * foxing * (1 - _colour(x, (0.85, 0.62, 0.35))))
    out = _overlay(out, 0.9 * torch.maximum(dark, hair).to(x.dtype), _colour(x, (0.1, 0.09, 0.08)))
    return _overlay(out, 0.75 * light.to(x.dtype), _colour(x, WARM_WHITE)).clamp_(0.0, 1.0)


def cracks(x: torch.Tensor, cell: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Craquelure: a network of fine dark cracks around irregular cells, stronger in some areas."""
    size = uniform(x, cell, generator)
    edge = crack_distance(x, size, float(cell[0]), generator)
    width = per_image(0.4 + 0.6 * torch.rand(x.shape[0], generator=generator, device=x.device))
    line = (width / 2 + 0.5 - edge).clamp(0, 1)
    h, w = x.shape[-2:]
    visible = (1.6 * smooth_field(x, 3, generator) - 0.3).clamp(0, 1)  # stronger in some areas
    visible = visible * (2.5 * smooth_field(x, max(h, w) // 10, generator) - 0.6).clamp(0, 1)  # some cracks fade out
    depth = per_image(0.3 + 0.4 * torch.rand(x.shape[0], generator=generator, device=x.device))
    return (x * (1 - (line * visible * depth).to(x.dtype))).clamp_(0.0, 1.0)


def aged(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A fixed artwork-damage recipe (fading, yellowing, scratches, dust) for evaluation; seeded by `generator`."""
    x = fading(x, (0.2, 0.2), generator)
    x = yellowing(x, (0.5, 0.5), generator)
    x = scratches(x, (3, 3), generator)
    return dust(x, (40.0, 40.0), generator)
