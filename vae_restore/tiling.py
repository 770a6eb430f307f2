"""Restore images of any size: overlapping tiles blended by smooth weights for a fixed-size network; for
a fully convolutional one the whole image in one call, reflect-padded to its multiple, or above a memory
budget aligned tiles (`Geometry`).

Pure numpy, so evaluation (PyTorch) and production inference (onnxruntime) share one implementation
and give the same result for the same per-tile function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

TILE = 128
OVERLAP = 16  # see tests/inference/test_tiling_seams.py: seamless for tiles that disagree by up to 8/255
MIN_WEIGHT = 1e-3
MAX_WHOLE_PIXELS = 4_000_000  # padded H×W a fully convolutional network restores in one call; above it, tiles
CONV_TILE = 512  # tiles of a fully convolutional network: much context per tile, few seams

TileFn = Callable[[np.ndarray], np.ndarray]  # N×3×T×T float32 in [0, 1] -> same shape


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets covering [0, length) with tiles overlapping by at least `overlap` pixels.

    With `align` > 1 (then `length` and `tile` are multiples of it) every start is a multiple of `align`,
    so a network with stride-2 steps samples each tile on the same grid as the whole image.
    """
    if length <= tile:
        return [0]
    stride = tile - overlap if align == 1 else max(1, tile - overlap - align)  # room to round starts to `align`
    n = -(-(length - tile) // stride) + 1
    starts = np.linspace(0, (length - tile) / align, n).round().astype(int) * align
    return list(dict.fromkeys(starts.tolist()))


def default_overlap(tile: int) -> int:
    """OVERLAP scaled to the tile side, so every tile size blends over the same fraction of the tile."""
    return tile * OVERLAP // TILE


def check_overlap(tile: int, overlap: int) -> None:
    """A negative overlap leaves gaps between tiles; one of `tile` or more leaves no stride to advance by."""
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be at least 0 and less than the tile side {tile}, got {overlap}")


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """T×T weights: 1 in the middle, a raised-cosine ramp down to MIN_WEIGHT over `overlap` pixels.

    Never zero, so pixels that only one tile covers (the image border) keep their value exactly.
    """
    ramp = np.ones(tile, dtype=np.float64)
    if overlap > 0:
        t = (np.arange(overlap) + 0.5) / overlap
        edge = MIN_WEIGHT + (1 - MIN_WEIGHT) * 0.5 * (1 - np.cos(np.pi * t))
        ramp[:overlap] = edge
        ramp[-overlap:] = edge[::-1]
    return np.outer(ramp, ramp).astype(np.float32)


def pad_to_tile(image: np.ndarray, tile: int) -> np.ndarray:
    """Reflect-pad (edge-pad when too small to reflect) an H×W×3 image up to at least tile×tile."""
    h, w = image.shape[:2]
    ph, pw = max(0, tile - h), max(0, tile - w)
    if not (ph or pw):
        return image
    mode = "reflect" if ph < h and pw < w else "edge"
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode=mode)


def pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """Reflect-pad (edge-pad when too small to reflect) an H×W×3 image so H and W are multiples of `multiple`."""
    h, w = image.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return image
    mode = "reflect" if ph < h and pw < w else "edge"
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode=mode)


def tile_grid(
    height: int, width: int, tile: int = TILE, overlap: int = OVERLAP, align: int = 1
) -> list[tuple[int, int]]:
    ys, xs = tile_starts(height, tile, overlap, align), tile_starts(width, tile, overlap, align)
    return [(y, x) for y in ys for x in xs]


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def restore_tiled(
    image: np.ndarray, fn: TileFn, tile: int = TILE, overlap: int = OVERLAP, batch_size: int = 16, align: int = 1
) -> np.ndarray:
    """H×W×3 float32 in [0, 1] -> restored H×W×3 float32, tiles sent to `fn` in batches.

    Memory stays bounded by the output accumulators plus one batch of tiles. Tiles are cut from and
    blended into channel-first planes, so every copy runs over contiguous rows of `tile` floats.
    """
    check_overlap(tile, overlap)
    h, w = image.shape[:2]
    planes = np.ascontiguousarray(pad_to_tile(image, tile).transpose(2, 0, 1), dtype=np.float32)
    ph, pw = planes.shape[1:]
    window = blend_window(tile, overlap)
    acc = np.zeros_like(planes)
    weight = np.zeros((ph, pw), dtype=np.float32)
    for batch in _batches(tile_grid(ph, pw, tile, overlap, align), batch_size):
        tiles = np.stack([planes[:, y : y + tile, x : x + tile] for y, x in batch])
        out = np.asarray(fn(tiles), dtype=np.float32) * window
        for (y, x), t in zip(batch, out, strict=True):
            acc[:, y : y + tile, x : x + tile] += t
            weight[y : y + tile, x : x + tile] += window
    return (acc / weight).transpose(1, 2, 0)[:h, :w]


@dataclass(frozen=True)
class Geometry:
    """How images reach a network. Fixed-size (`multiple` None): `tile`×`tile` tiles. Fully convolutional:
    the whole image, reflect-padded to multiples of `multiple`, while that is at most `max_whole_pixels`
    (one call, no seams); larger images in `tile`-sized tiles whose starts are multiples of `multiple`."""

    tile: int
    overlap: int
    multiple: int | None = None
    max_whole_pixels: int = MAX_WHOLE_PIXELS

    @classmethod
    def fixed(cls, tile: int, overlap: int | None = None) -> Geometry:
        return cls(tile, default_overlap(tile) if overlap is None else overlap).checked()

    @classmethod
    def convolutional(
        cls,
        multiple: int,
        max_whole_pixels: int = MAX_WHOLE_PIXELS,
        tile: int | None = None,
        overlap: int | None = None,
    ) -> Geometry:
        tile = CONV_TILE if tile is None else tile
        return cls(tile, default_overlap(tile) if overlap is None else overlap, multiple, max_whole_pixels).checked()

    def checked(self) -> Geometry:
        check_overlap(self.tile, self.overlap)
        if self.multiple is not None and (self.tile < 1 or self.tile % self.multiple):
            raise ValueError(f"tile must be a positive multiple of {self.multiple} for this network, got {self.tile}")
        if self.max_whole_pixels < 0:
            raise ValueError(f"max_whole_pixels must be at least 0 (0: always tiles), got {self.max_whole_pixels}")
        return self

    def whole(self, height: int, width: int) -> bool:
        """Whether an H×W image goes through the network in one call."""
        if self.multiple is None:
            return False
        m = self.multiple
        return -(-height // m) * m * (-(-width // m) * m) <= self.max_whole_pixels


def restore(image: np.ndarray, fn: TileFn, geometry: Geometry, batch_size: int = 16) -> np.ndarray:
    """H×W×3 float32 in [0, 1] -> restored H×W×3 float32, whole or tiled as `geometry` says."""
    if geometry.multiple is None:
        return restore_tiled(image, fn, geometry.tile, geometry.overlap, batch_size)
    h, w = image.shape[:2]
    padded = pad_to_multiple(image, geometry.multiple)
    if not geometry.whole(h, w):
        return restore_tiled(padded, fn, geometry.tile, geometry.overlap, batch_size, geometry.multiple)[:h, :w]
    planes = np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32)
    return np.asarray(fn(planes), dtype=np.float32)[0].transpose(1, 2, 0)[:h, :w]
