"""Damage of old paintings and prints: fading, colour cast, yellowed varnish, scratches, dust and spots, cracks.

Sizes are in pixels of the image being damaged (a 128×128 training crop), so the damage looks
the same at every batch size; everything is drawn per image from the generator, batched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .sampling import luminance, per_image, pixel_grid, smooth_field, uniform

WARM_WHITE = (0.96, 0.93, 0.86)  # the paper or ground that a faded picture drifts towards
VARNISH = (1.0, 0.82, 0.45)  # transmission of an old, yellowed varnish layer (blue absorbed most)


def _colour(x: torch.Tensor, rgb: tuple[float, float, float]) -> torch.Tensor:
    return torch.tensor(rgb, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)


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
    s = per_image(uniform(x, strength, generator)) * (0.7 + 0.6 * smooth_field(x, 3, generator))
    transmission = _colour(x, VARNISH) ** s  # Beer-Lambert: thickness s of a fixed absorbing layer
    return (x * transmission * (1 - 0.1 * s)).clamp_(0.0, 1.0)


def _overlay(x: torch.Tensor, alpha: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    return x + alpha * (colour - x)


@dataclass
class Strokes:
    """Per-stroke shape parameters (B, N): centre, direction, half-length, width, bow and wobble, in pixels."""

    cy: torch.Tensor
    cx: torch.Tensor
    angle: torch.Tensor
    half: torch.Tensor
    width: torch.Tensor
    sag: torch.Tensor  # sideways bow at the ends, pixels
    wobble: torch.Tensor  # amplitude of a slow sideways wave, pixels
    opacity: torch.Tensor  # 0 for strokes that are not drawn


def random_strokes(x, n, count, half, width, sag, generator) -> Strokes:
    """`count` (inclusive range) of at most `n` strokes per image, each drawn from the given ranges."""
    b, _, h, w = x.shape
    g, dev = generator, x.device
    drawn = torch.arange(n, device=dev)[None, :] < torch.randint(int(count[0]), n + 1, (b, 1), generator=g, device=dev)
    p = torch.rand(b, n, 8, generator=g, device=dev)
    between = lambda u, r: r[0] + (r[1] - r[0]) * u  # noqa: E731
    return Strokes(
        cy=p[..., 0] * h,
        cx=p[..., 1] * w,
        angle=p[..., 2] * math.pi,
        half=between(p[..., 3], half),
        width=between(p[..., 4] ** 2, width),  # mostly near the low end: hairlines
        sag=between(p[..., 5], (-sag, sag)),
        wobble=0.6 * p[..., 6],
        opacity=(0.55 + 0.45 * p[..., 7]) * drawn,
    )


def stroke_alpha(x: torch.Tensor, s: Strokes, generator: torch.Generator) -> torch.Tensor:
    """Anti-aliased coverage (B, N, H, W) of each stroke: bowed, wavering, tapered, broken in places."""
    rows, cols = pixel_grid(x)
    e = lambda t: t[:, :, None, None]  # noqa: E731
    dy, dx = rows - e(s.cy), cols - e(s.cx)
    cos, sin = e(s.angle.cos()), e(s.angle.sin())
    along, across = dx * cos + dy * sin, -dx * sin + dy * cos
    b, n = s.cy.shape
    phase = 2 * math.pi * torch.rand(b, n, 3, generator=generator, device=x.device)
    freq = 0.04 + 0.12 * torch.rand(b, n, 2, generator=generator, device=x.device)
    bow = e(s.sag / s.half.clamp_min(1) ** 2) * along**2
    centre = bow + e(s.wobble) * torch.sin(along * e(freq[..., 0]) + e(phase[..., 0]))
    profile = (e(s.width) / 2 + 0.5 - (across - centre).abs()).clamp(0, 1)
    ends = ((e(s.half) - along.abs()) / e(s.half.clamp(1, 6))).clamp(0, 1)
    wave = torch.sin(along * e(freq[..., 1]) + e(phase[..., 1])) + 0.6 * torch.sin(along * 0.31 + e(phase[..., 2]))
    broken = (1.5 * wave + 1.2).clamp(0, 1)
    return profile * ends * broken * e(s.opacity)


def _cover(alpha: torch.Tensor, chosen: torch.Tensor | None = None) -> torch.Tensor:
    """Union of strokes (B, 1, H, W); `chosen` (B, N) picks which strokes count."""
    if chosen is not None:
        alpha = alpha * chosen[:, :, None, None].to(alpha.dtype)
    return 1 - torch.prod(1 - alpha, dim=1, keepdim=True)


def scratches(x: torch.Tensor, count: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """Thin, slightly bowed strokes, broken along their length: light (paint lost to the ground) or dark (grime)."""
    n = int(count[1])
    if n == 0:
        return x
    b, _, h, w = x.shape
    size = float(max(h, w))
    strokes = random_strokes(x, n, count, (0.15 * size, 0.7 * size), (0.5, 1.8), 4.0, generator)
    alpha = stroke_alpha(x, strokes, generator)
    light = torch.rand(b, n, generator=generator, device=x.device) < 0.6
    tone = per_image(0.8 + 0.2 * torch.rand(b, generator=generator, device=x.device))
    out = _overlay(x, _cover(alpha, light).to(x.dtype), tone * _colour(x, WARM_WHITE))
    dark = per_image(0.08 + 0.17 * torch.rand(b, generator=generator, device=x.device))
    return _overlay(out, _cover(alpha, ~light).to(x.dtype), dark * _colour(x, (1.0, 0.9, 0.75))).clamp_(0.0, 1.0)


def _spots(x: torch.Tensor, density: torch.Tensor, radius: float, generator: torch.Generator) -> torch.Tensor:
    """Alpha (B, 1, H, W) of ragged spots of about `radius` px at random places, `density` per 128×128.

    Drawn at twice the resolution and averaged down, so small specks are round and anti-aliased.
    """
    b, _, h, w = x.shape
    u = torch.rand(b, 1, 2 * h, 2 * w, generator=generator, device=x.device)
    seeds = (u < (density / (4 * 128 * 128)).view(-1, 1, 1, 1)).float()
    seeds = seeds * (0.6 + 0.8 * torch.rand(b, 1, 2 * h, 2 * w, generator=generator, device=x.device))
    r2 = 2 * radius
    r = math.ceil(2 * r2 + 1)
    t = torch.arange(-r, r + 1, device=x.device, dtype=torch.float32)
    bump = torch.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * r2**2))
    blob = F.conv2d(seeds, bump[None, None], padding=r)
    grain = F.avg_pool2d(torch.rand(b, 1, 2 * h, 2 * w, generator=generator, device=x.device), 5, stride=1, padding=2)
    ragged = min(1.0, radius / 2)  # specks stay round, larger spots get ragged edges where the grain cuts in
    alpha = ((blob * (1 - 0.4 * ragged + 0.8 * ragged * grain) - 0.35) * 3).clamp_(0, 1)
    return F.avg_pool2d(alpha, 2)


def dust(x: torch.Tensor, density: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Dark dust specks and hairs, a few light flecks where paint flaked off, and faint brown foxing stains."""
    b, _, h, w = x.shape
    d = uniform(x, density, generator)
    dark = torch.maximum(_spots(x, d * 0.7, 0.7, generator), _spots(x, d * 0.12, 1.5, generator))
    light = _spots(x, d * 0.15, 0.9, generator)
    foxing = F.avg_pool2d(_spots(x, d * 0.015, 4.5, generator), 7, stride=1, padding=3)
    hairs_max = max(1, round(density[1] / 25))
    hair_count = (0, hairs_max)
    hairs = random_strokes(x, hairs_max, hair_count, (3.0, 14.0), (0.5, 1.0), 5.0, generator)
    hairs.wobble = hairs.wobble * 3
    hair = _cover(stroke_alpha(x, hairs, generator))
    out = x * (1 - 0.4 * foxing * (1 - _colour(x, (0.85, 0.62, 0.35))))
    out = _overlay(out, 0.9 * torch.maximum(dark, hair).to(x.dtype), _colour(x, (0.1, 0.09, 0.08)))
    return _overlay(out, 0.75 * light.to(x.dtype), _colour(x, WARM_WHITE)).clamp_(0.0, 1.0)


def _voronoi_edges(x: torch.Tensor, cell: torch.Tensor, min_cell: float, generator: torch.Generator) -> torch.Tensor:
    """Distance (B, H, W) to the nearest cell wall of a warped Voronoi diagram seeded on a jittered grid.

    The wall between the two nearest seeds p1, p2 is their bisector; its distance (d2² − d1²) / (2·|p1 − p2|)
    keeps cracks one width wide even where two seeds nearly coincide.
    """
    b, _, h, w = x.shape
    rows, cols = pixel_grid(x)
    coarse = (smooth_field(x, 4, generator, channels=2) - 0.5) * per_image(cell) * 0.5
    fine = (smooth_field(x, max(h, w) // 6, generator, channels=2) - 0.5) * 2.0  # jagged, not straight, walls
    py = rows[None] + coarse[:, 0] + fine[:, 0]
    px = cols[None] + coarse[:, 1] + fine[:, 1]
    c = cell.view(-1, 1, 1)
    gy, gx = torch.floor(py / c), torch.floor(px / c)
    cells = math.ceil(max(h, w) / min_cell) + 5
    jitter = torch.rand(b, cells, cells, 2, generator=generator, device=x.device)
    batch = torch.arange(b, device=x.device).view(-1, 1, 1)
    seeds_y, seeds_x = [], []
    for oy in (-1, 0, 1):
        for ox in (-1, 0, 1):
            ny, nx = gy + oy, gx + ox
            j = jitter[batch, (ny + 2).clamp(0, cells - 1).long(), (nx + 2).clamp(0, cells - 1).long()]
            seeds_y.append((ny + j[..., 0]) * c)
            seeds_x.append((nx + j[..., 1]) * c)
    sy, sx = torch.stack(seeds_y), torch.stack(seeds_x)  # (9, B, H, W)
    d2 = (py - sy) ** 2 + (px - sx) ** 2
    nearest = d2.topk(2, dim=0, largest=False)
    pick = lambda t, k: t.gather(0, nearest.indices[k : k + 1])[0]  # noqa: E731
    gap = torch.sqrt((pick(sy, 1) - pick(sy, 0)) ** 2 + (pick(sx, 1) - pick(sx, 0)) ** 2).clamp_min(1e-3)
    return (nearest.values[1] - nearest.values[0]) / (2 * gap)


def cracks(x: torch.Tensor, cell: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Craquelure: a network of fine dark cracks around irregular cells, stronger in some areas."""
    size = uniform(x, cell, generator)
    edge = _voronoi_edges(x, size, float(cell[0]), generator)[:, None]
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
