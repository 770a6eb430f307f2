"""Restore images of any size with a fixed-size network: overlapping tiles blended by smooth weights.

Pure numpy, so evaluation (PyTorch) and production inference (onnxruntime) share one implementation
and give the same result for the same per-tile function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

TILE = 128
OVERLAP = 16  # see tests/test_tiling_seams.py: seamless for tiles that disagree by up to 8/255
MIN_WEIGHT = 1e-3

TileFn = Callable[[np.ndarray], np.ndarray]  # N×3×T×T float32 in [0, 1] -> same shape


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering [0, length) with tiles overlapping by at least `overlap` pixels."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    n = -(-(length - tile) // stride) + 1
    return np.linspace(0, length - tile, n).round().astype(int).tolist()


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


def tile_grid(height: int, width: int, tile: int = TILE, overlap: int = OVERLAP) -> list[tuple[int, int]]:
    return [(y, x) for y in tile_starts(height, tile, overlap) for x in tile_starts(width, tile, overlap)]


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def restore_tiled(
    image: np.ndarray, fn: TileFn, tile: int = TILE, overlap: int = OVERLAP, batch_size: int = 16
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
    for batch in _batches(tile_grid(ph, pw, tile, overlap), batch_size):
        tiles = np.stack([planes[:, y : y + tile, x : x + tile] for y, x in batch])
        out = np.asarray(fn(tiles), dtype=np.float32) * window
        for (y, x), t in zip(batch, out, strict=True):
            acc[:, y : y + tile, x : x + tile] += t
            weight[y : y + tile, x : x + tile] += window
    return (acc / weight).transpose(1, 2, 0)[:h, :w]
