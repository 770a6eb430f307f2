"""Drawing the marks of physical damage, batched: thin strokes, round spots, a network of cracks.

Strokes and spots are drawn by splatting points (cost grows with the ink, not with the number of
marks × pixels); each returns coverage maps in [0, 1] that `artwork` blends into the image.
Splats accumulate in fixed-point integers, so the result is bit-identical on every run, GPU included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .sampling import per_image, pixel_grid, smooth_field

FIXED_POINT = 1 << 16


def splat(
    values: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, layer: torch.Tensor, layers: int, h: int, w: int
) -> torch.Tensor:
    """Add each point's value to the four pixels around it (bilinear weights): (B, layers, H, W).

    All point tensors are (B, P); `layer` says which output layer each point goes to.
    """
    y0, x0 = torch.floor(ys), torch.floor(xs)
    fy, fx = ys - y0, xs - x0
    out = Canvas(values.shape[0], layers, h, w, values.device)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            out.add(values * wy * wx, (y0 + dy).long(), (x0 + dx).long(), layer)
    return out.coverage()


class Canvas:
    """Integer (fixed-point) accumulator (B, layers, H, W): additions in any order give identical bits."""

    def __init__(self, batch: int, layers: int, h: int, w: int, device) -> None:
        self.shape = (batch, layers, h, w)
        self.sums = torch.zeros(batch * layers * h * w, dtype=torch.int32, device=device)

    def add(self, values: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, layer: torch.Tensor) -> None:
        """Add `values` at integer pixels (ys, xs) of `layer`; all (B, ...) alike; pixels outside are dropped."""
        b, layers, h, w = self.shape
        inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        batch = torch.arange(b, device=values.device).view(-1, *([1] * (values.dim() - 1)))
        index = (((batch * layers + layer) * h + ys.clamp(0, h - 1)) * w + xs.clamp(0, w - 1)).flatten()
        self.sums.scatter_add_(0, index, (values * inside * FIXED_POINT).round().int().flatten())

    def coverage(self) -> torch.Tensor:
        return (self.sums.view(self.shape).float() / FIXED_POINT).clamp_(0, 1)


@dataclass
class Strokes:
    """Per-stroke shape parameters (B, N), in pixels; a stroke with opacity 0 is not drawn."""

    cy: torch.Tensor
    cx: torch.Tensor
    angle: torch.Tensor
    half: torch.Tensor  # half-length
    width: torch.Tensor
    sag: torch.Tensor  # sideways bow at the ends
    wobble: torch.Tensor  # amplitude of a slow sideways wave
    opacity: torch.Tensor


def random_strokes(x, n, count, half, width, sag, generator) -> Strokes:
    """Between count[0] and count[1] (≤ n) strokes per image, each drawn from the given ranges (pixels)."""
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
        wobble=between(p[..., 6], (0.0, 0.6)),
        opacity=(0.55 + 0.45 * p[..., 7]) * drawn,
    )


def draw_strokes(
    x: torch.Tensor, s: Strokes, layer: torch.Tensor, layers: int, max_half: float, generator: torch.Generator
) -> torch.Tensor:
    """Coverage (B, layers, H, W) of strokes: bowed, wavering, tapered at the ends and broken in places."""
    b, n = s.cy.shape
    m = math.ceil(4 * max_half) + 2  # points at most half a pixel apart
    t = torch.linspace(-1, 1, m, device=x.device)
    e = lambda v: v[:, :, None]  # noqa: E731
    along = e(s.half) * t
    phase = 2 * math.pi * torch.rand(b, n, 3, generator=generator, device=x.device)
    freq = 0.04 + 0.12 * torch.rand(b, n, 2, generator=generator, device=x.device)
    across = e(s.sag) * t**2 + e(s.wobble) * torch.sin(along * e(freq[..., 0]) + e(phase[..., 0]))
    cos, sin = e(s.angle.cos()), e(s.angle.sin())
    xs = e(s.cx) + along * cos - across * sin
    ys = e(s.cy) + along * sin + across * cos
    ends = ((e(s.half) - along.abs()) / e(s.half.clamp(1, 6))).clamp(0, 1)
    wave = torch.sin(along * e(freq[..., 1]) + e(phase[..., 1])) + 0.6 * torch.sin(along * 0.31 + e(phase[..., 2]))
    broken = (1.5 * wave + 1.2).clamp(0, 1)
    step = e(2 * s.half / (m - 1))
    ink = e(s.width * s.opacity) * step * ends * broken  # area of stroke each point stands for
    layers_of_points = layer[:, :, None].expand(b, n, m)
    flat = lambda v: v.reshape(b, n * m)  # noqa: E731
    return splat(flat(ink), flat(ys), flat(xs), flat(layers_of_points), layers, *x.shape[-2:])


def draw_spots(
    x: torch.Tensor, density: torch.Tensor, max_density: float, radius: float, generator, hard: bool = True
) -> torch.Tensor:
    """Coverage (B, 1, H, W) of irregular round spots about `radius` px; `density` (B,) per 128×128 on average.

    Each spot is stamped on the pixels around it with a radius that wavers with the angle, so spots
    are blotchy rather than perfect discs; `hard` gives them a crisp edge, otherwise they fade out.
    """
    b, _, h, w = x.shape
    g, dev = generator, x.device
    k = max(1, math.ceil(max_density * h * w / (128 * 128)))
    p = torch.rand(b, k, 7, generator=g, device=dev)
    strength = (p[..., 0] < (density / max_density)[:, None]) * (0.6 + 0.8 * p[..., 1])
    cy, cx = p[..., 2] * h, p[..., 3] * w
    size = radius * (0.6 + 0.8 * p[..., 4])
    reach = math.ceil((1.3 if hard else 2.0) * 1.4 * 1.4 * radius) + 1  # largest size times largest wobble
    t = torch.arange(-reach, reach + 1, device=dev)
    oy, ox = t.view(1, 1, -1, 1), t.view(1, 1, 1, -1)
    py, px = torch.floor(cy)[..., None, None].long() + oy, torch.floor(cx)[..., None, None].long() + ox
    dy, dx = py - cy[..., None, None], px - cx[..., None, None]
    angle = torch.atan2(dy, dx)
    e = lambda v: v[..., None, None]  # noqa: E731
    ragged = min(1.0, radius / 3)  # a speck of a pixel or two stays round; larger spots are blotchy
    lobes = 0.2 * torch.sin(2 * angle + e(6.3 * p[..., 5])) + 0.12 * torch.sin(3 * angle + e(6.3 * p[..., 6]))
    wobble = 1 + ragged * lobes
    r = e(size) * wobble
    d2 = (dy**2 + dx**2) / r**2
    stamp = (1.5 - d2).clamp(0, 1) if hard else torch.exp(-1.5 * d2)
    canvas = Canvas(b, 1, h, w, dev)
    canvas.add(e(strength) * stamp, py, px, torch.zeros_like(py))
    return canvas.coverage()


def crack_distance(x: torch.Tensor, cell: torch.Tensor, min_cell: float, generator: torch.Generator) -> torch.Tensor:
    """Distance (B, 1, H, W) to the nearest wall of a warped Voronoi diagram seeded on a jittered grid.

    The wall between the two nearest seeds p1, p2 is their bisector; its distance (d2² − d1²) / (2·|p1 − p2|)
    keeps cracks one width wide even where two seeds nearly coincide.
    """
    b, _, full_h, full_w = x.shape
    half = x.new_empty(b, 1, (full_h + 1) // 2, (full_w + 1) // 2)  # distances are near linear: half resolution
    h, w = half.shape[-2:]
    rows, cols = pixel_grid(half)
    coarse = (smooth_field(half, 4, generator, channels=2) - 0.5) * per_image(cell) * 0.5
    fine = (smooth_field(half, max(h, w) // 3, generator, channels=2) - 0.5) * 2.0  # jagged, not straight, walls
    py = 2 * rows[None] + 0.5 + coarse[:, 0] + fine[:, 0]
    px = 2 * cols[None] + 0.5 + coarse[:, 1] + fine[:, 1]
    c = cell.view(-1, 1, 1)
    gy, gx = torch.floor(py / c), torch.floor(px / c)
    cells = math.ceil(max(full_h, full_w) / min_cell) + 5
    jitter = torch.rand(b, 2, cells * cells, generator=generator, device=x.device)
    inf = torch.full_like(py, float("inf"))
    d1, d2, y1, x1, y2, x2 = inf, inf, py, px, py, px
    for oy in (-1, 0, 1):
        for ox in (-1, 0, 1):
            ny, nx = gy + oy, gx + ox
            flat = ((ny + 2).clamp(0, cells - 1) * cells + (nx + 2).clamp(0, cells - 1)).long().view(b, 1, -1)
            j = jitter.gather(2, flat.expand(b, 2, -1)).view(b, 2, h, w)
            sy, sx = (ny + j[:, 0]) * c, (nx + j[:, 1]) * c
            d = (py - sy) ** 2 + (px - sx) ** 2
            first, second = d < d1, d < d2
            d2 = torch.where(first, d1, torch.where(second, d, d2))
            y2 = torch.where(first, y1, torch.where(second, sy, y2))
            x2 = torch.where(first, x1, torch.where(second, sx, x2))
            d1, y1, x1 = torch.where(first, d, d1), torch.where(first, sy, y1), torch.where(first, sx, x1)
    gap = torch.sqrt((y2 - y1) ** 2 + (x2 - x1) ** 2).clamp_min(1e-3)
    distance = ((d2 - d1) / (2 * gap))[:, None]
    return F.interpolate(distance, size=(full_h, full_w), mode="bilinear", align_corners=False)
