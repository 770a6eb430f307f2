"""Full-resolution restoration with a torch model: the shared numpy restorer, with the model as its tile function.

Fixed-size presets go through overlapping tiles; fully convolutional ones whole, up to `max_whole_pixels`.
"""

from __future__ import annotations

import numpy as np
import torch

from ..tiling import MAX_WHOLE_PIXELS, Geometry, TileFn, restore


def torch_tile_fn(model, device: str | torch.device) -> TileFn:
    """N×3×H×W float32 numpy tiles (or one whole image) -> the model's restoration (z = mu), as float32 numpy."""

    def restore_tiles(tiles: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model.restore(torch.from_numpy(tiles).to(device)).float().cpu().numpy()

    return restore_tiles


def model_geometry(model, max_whole_pixels: int = MAX_WHOLE_PIXELS, tile: int | None = None) -> Geometry:
    """What the Restorer does with the same model's export: the same tiles and overlap, whole images alike."""
    preset = model.preset
    if preset.fully_convolutional:
        return Geometry.convolutional(preset.multiple, max_whole_pixels, tile)
    if tile not in (None, preset.image_size):
        raise ValueError(f"preset {preset.name!r} takes {preset.image_size}×{preset.image_size} tiles only, not {tile}")
    return Geometry.fixed(preset.image_size)


def tile_geometry(model) -> tuple[int, int]:
    """The model's tile side, and the overlap the Restorer uses for it (16 of 128, in proportion)."""
    geometry = model_geometry(model)
    return geometry.tile, geometry.overlap


def restore_image(
    model,
    image: np.ndarray,
    device: str | torch.device,
    batch_size: int = 16,
    max_whole_pixels: int = MAX_WHOLE_PIXELS,
    tile: int | None = None,
) -> np.ndarray:
    """H×W×3 float in [0, 1], any size -> restored H×W×3 float32 (`model_geometry` says whole or tiled)."""
    geometry = model_geometry(model, max_whole_pixels, tile)
    return restore(np.asarray(image, dtype=np.float32), torch_tile_fn(model, device), geometry, batch_size)
