"""Full-resolution restoration through the shared tiler: exact where it must be, and no seams."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from vae_restore.evaluation.tiled import restore_image, tile_geometry, torch_tile_fn
from vae_restore.models import ORIGINAL, VAE
from vae_restore.tiling import OVERLAP, TILE, default_overlap, restore_tiled, tile_starts


class TileModel(torch.nn.Module):
    """A stand-in network with the VAE's interface: `restore` maps each 128×128 tile on its own."""

    def __init__(self, fn):
        super().__init__()
        self.preset = ORIGINAL
        self.fn = fn

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def constant(h: int, w: int) -> np.ndarray:
    return np.full((h, w, 3), 0.4, dtype=np.float32)


def gradient(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx / (w - 1), yy / (h - 1), np.full(xx.shape, 0.5)], -1).astype(np.float32)


def boundary_columns(width: int, tile: int, overlap: int) -> np.ndarray:
    """Indices j of column differences out[:, j+1] - out[:, j] that cross a tile's first or last column."""
    starts = tile_starts(width, tile, overlap)
    edges = {s for s in starts if s > 0} | {s + tile for s in starts if s + tile < width}
    return np.array(sorted(e - 1 for e in edges))


def column_steps(image: np.ndarray) -> np.ndarray:
    return np.abs(np.diff(image, axis=1)).mean(axis=(0, 2))


@pytest.mark.parametrize("make", [constant, gradient])
@pytest.mark.parametrize("size", [(200, 300), (129, 257), (50, 70), (128, 128)])
def test_identity_network_gives_back_the_input(make, size):
    image = make(*size)
    restored = restore_image(TileModel(lambda x: x.clone()), image, "cpu")
    assert restored.shape == image.shape
    np.testing.assert_allclose(restored, image, atol=1e-6, rtol=0)


def test_one_tile_image_is_the_network_output():
    torch.manual_seed(0)
    model = VAE().eval()
    image = gradient(128, 128)
    direct = model.restore(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(restore_image(model, image, "cpu"), direct, atol=1e-6, rtol=0)


def test_blending_removes_the_steps_between_tiles():
    """A network that outputs each tile's mean: abutting tiles step, blended tiles ramp smoothly."""
    model = TileModel(lambda x: x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone())
    image = gradient(200, 460)
    blended = column_steps(restore_image(model, image, "cpu"))
    hard = column_steps(restore_tiled(image, torch_tile_fn(model, "cpu"), overlap=0))
    assert hard.max() > 0.02, "the hard-tiled reference should show steps"
    assert blended.max() < hard.max() / 5, "the blend spreads each step over the overlap"


@pytest.mark.parametrize("make", [constant, gradient])
def test_random_vae_shows_no_seam_beyond_its_own_texture(make):
    torch.manual_seed(0)
    model = VAE().eval()
    image = make(200, 300)
    restored = restore_image(model, image, "cpu")
    assert restored.shape == image.shape and np.isfinite(restored).all()
    tile, overlap = tile_geometry(model)
    steps = column_steps(restored)
    across = boundary_columns(image.shape[1], tile, overlap)
    inside = np.setdiff1d(np.arange(len(steps)), across)
    assert steps[across].max() <= steps[inside].max()
    rows = np.abs(np.diff(restored, axis=0)).mean(axis=(1, 2))
    across_rows = boundary_columns(image.shape[0], tile, overlap)
    assert rows[across_rows].max() <= rows[np.setdiff1d(np.arange(len(rows)), across_rows)].max()


@pytest.mark.parametrize(("tile", "overlap"), [(TILE, OVERLAP), (64, 8), (256, 32)])
def test_evaluation_overlap_is_the_shared_default(tile, overlap):
    model = TileModel(lambda x: x)
    model.preset = replace(ORIGINAL, image_size=tile)
    assert default_overlap(tile) == overlap and tile_geometry(model) == (tile, overlap)
