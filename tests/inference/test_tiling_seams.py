"""The tile overlap: blending is exact for a consistent per-tile function, and small enough steps hide seams.

The raised-cosine ramp turns a disagreement d between neighbouring tiles into steps of at most
d·π/(2·overlap) between adjacent pixels. OVERLAP keeps a disagreement of 8/255 (a 300-step model's
neighbouring tiles disagree by 4-6/255 on average where they overlap) below 1/255, what an 8-bit image
can show: 13 px would just do, 16 leaves a margin. More overlap only adds tiles.
"""

from __future__ import annotations

import numpy as np
import pytest

from vae_restore.tiling import OVERLAP, TILE, restore_tiled, tile_grid

DISAGREEMENT = 8 / 255


def identity(tiles: np.ndarray) -> np.ndarray:
    return tiles


def checkerboard_offsets(height: int, width: int, overlap: int):
    """An identity-like tile function whose neighbouring tiles disagree by DISAGREEMENT (±half each)."""
    columns = len({x for _, x in tile_grid(height, width, TILE, overlap)})
    seen = 0

    def fn(tiles: np.ndarray) -> np.ndarray:
        nonlocal seen
        k = seen + np.arange(len(tiles))
        seen += len(tiles)
        sign = np.where((k // columns + k % columns) % 2 == 0, 0.5, -0.5).astype(np.float32)
        return tiles + DISAGREEMENT * sign[:, None, None, None]

    return fn


def max_step(image: np.ndarray) -> float:
    return float(max(np.abs(np.diff(image, axis=0)).max(), np.abs(np.diff(image, axis=1)).max()))


@pytest.mark.parametrize("shape", [(1, 1), (100, 300), (128, 128), (513, 700)])
def test_consistent_tiles_blend_exactly(shape):
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gradient = np.stack([xx / max(w, 1), yy / max(h, 1), (xx + yy) / (h + w)], axis=-1)
    constant = np.full((h, w, 3), 0.3, np.float32)
    for image in (gradient, constant):
        assert np.abs(restore_tiled(image, identity) - image).max() < 1e-6


def seam_step(overlap: int) -> float:
    """Largest pixel step on a flat image whose size makes tiles overlap by exactly `overlap` (the worst case)."""
    side = TILE + 4 * (TILE - overlap)
    flat = np.full((side, side, 3), 0.5, np.float32)
    return max_step(restore_tiled(flat, checkerboard_offsets(side, side, overlap), overlap=overlap, batch_size=7))


def test_disagreeing_tiles_leave_no_visible_seam():
    assert seam_step(OVERLAP) <= 1 / 255
    assert seam_step(OVERLAP) == pytest.approx(DISAGREEMENT * np.pi / (2 * OVERLAP), rel=0.02)
    assert seam_step(0) >= 0.99 * DISAGREEMENT  # without a blend the whole disagreement is one step: a seam
    assert seam_step(OVERLAP - 4) > 1 / 255  # a shorter ramp would show


def test_tile_counts_of_the_benchmark_images():
    assert len(tile_grid(512, 512)) == 25
    assert len(tile_grid(1536, 2048)) == 266  # 336 with an overlap of 32
