"""Full-resolution restoration with a torch model: the shared numpy tiler, with the model as its tile function."""

from __future__ import annotations

import numpy as np
import torch

from ..tiling import TileFn, default_overlap, restore_tiled


def torch_tile_fn(model, device: str | torch.device) -> TileFn:
    """N×3×T×T float32 numpy tiles -> the model's restoration (z = mu), back as float32 numpy."""

    def restore_tiles(tiles: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model.restore(torch.from_numpy(tiles).to(device)).float().cpu().numpy()

    return restore_tiles


def tile_geometry(model) -> tuple[int, int]:
    """The model's input side, and the overlap the Restorer uses for it (16 of 128, in proportion)."""
    tile = model.preset.image_size
    return tile, default_overlap(tile)


def restore_image(model, image: np.ndarray, device: str | torch.device, batch_size: int = 16) -> np.ndarray:
    """H×W×3 float in [0, 1], any size -> restored H×W×3 float32, by overlapping blended tiles."""
    tile, overlap = tile_geometry(model)
    return restore_tiled(image, torch_tile_fn(model, device), tile=tile, overlap=overlap, batch_size=batch_size)
