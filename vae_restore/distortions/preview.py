"""A picture of what the distortions do: real crops in rows, one distortion per column, labelled.

Crops are taken at the training crop size and enlarged without smoothing, so the grid shows the
pixels the network sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..config import DistortionConfig
from ..data.files import ImageRecord, find_records
from ..data.image_set import decode_records, load_image_set
from .artwork import aged
from .mixture import DistortionMixture, distortions_from_config

LABEL_HEIGHT = 22


def preview_columns(
    clear: torch.Tensor, config: DistortionConfig, noise_sigma: tuple[float, float], seed: int
) -> dict[str, torch.Tensor]:
    """Column name -> distorted batch: clear, every distortion alone, the configured mixture, `aged`."""
    columns = {"clear": clear}
    for k, (name, fn) in enumerate(distortions_from_config(config, noise_sigma).items()):
        columns[name] = fn(clear, torch.Generator().manual_seed(seed + k))
    columns["mixture"] = DistortionMixture.from_config(config, noise_sigma)(clear, torch.Generator().manual_seed(seed))
    columns["aged"] = aged(clear, torch.Generator().manual_seed(seed))
    return columns


def _label(draw: ImageDraw.ImageDraw, x: int, width: int, text: str) -> None:
    font = ImageFont.load_default(size=14)
    w = draw.textlength(text, font=font)
    draw.text((x + (width - w) / 2, 3), text, fill=(0, 0, 0), font=font)


def pick_images(data: str | Path | None, rows: int, crop_size: int, seed: int) -> list[np.ndarray]:
    """`rows` images drawn at random from the clear images of `data` (only those are decoded), or from the
    embedded samples when `data` is None."""
    if data is None:
        samples = load_image_set(None).clear
        return [samples[i] for i in sorted(np.random.default_rng(seed).permutation(len(samples))[:rows])]
    clear_files = sorted({r.clear for r in find_records(data)})
    pick = np.random.default_rng(seed).permutation(len(clear_files))[:rows]
    return decode_records([ImageRecord(clear_files[i]) for i in sorted(pick)], crop_size).clear


def preview_grid(
    data: str | Path | None,
    config: DistortionConfig | None = None,
    noise_sigma: tuple[float, float] = (5.0, 50.0),
    rows: int = 6,
    crop_size: int = 128,
    zoom: int = 2,
    seed: int = 0,
) -> Image.Image:
    """Grid image of `rows` random crops from the images in `data` (None: the embedded samples) under every
    distortion."""
    images = pick_images(data, rows, crop_size, seed)
    rng = np.random.default_rng(seed)
    crops = []
    for image in images:
        top, left = (int(rng.integers(0, n - crop_size + 1)) for n in image.shape[:2])
        crops.append(image[top : top + crop_size, left : left + crop_size])
    clear = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255.0)
    columns = preview_columns(clear, config or DistortionConfig(), noise_sigma, seed)
    cell = crop_size * zoom
    grid = Image.new("RGB", (len(columns) * (cell + 4), LABEL_HEIGHT + len(clear) * (cell + 4)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for c, (name, batch) in enumerate(columns.items()):
        x0 = c * (cell + 4) + 2
        _label(draw, x0, cell, name)
        pixels = (batch.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for r, tile in enumerate(pixels):
            big = Image.fromarray(tile).resize((cell, cell), Image.NEAREST)
            grid.paste(big, (x0, LABEL_HEIGHT + r * (cell + 4) + 2))
    return grid
