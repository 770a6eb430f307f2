"""What is scored: (distorted, clear) pairs from a paired folder, or clear images distorted by name and seed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.decode import decode_rgb
from ..data.files import find_records
from ..errors import ConfigError, DataError
from ..metrics import SSIM_WINDOW


@dataclass(frozen=True)
class EvalItem:
    """One image to score; `index` is its place in the sorted folder listing and seeds its distortion."""

    index: int
    name: str
    clear: Path
    distorted: Path | None


def find_items(
    data: str | Path,
    distortion: str | None,
    num_images: int | None,
    allow_unpaired: bool = False,
    leave_out: Path | None = None,
) -> list[EvalItem]:
    """The first `num_images` records of `data`; clear-only data needs a distortion name, paired data refuses one.

    Files under `leave_out` (the report's own comparison images, when the report sits inside `data`) are not
    records: a second run would otherwise score the first run's output.
    """
    data = Path(data)
    records = find_records(data, allow_unpaired=allow_unpaired)
    if leave_out is not None:
        leave_out = leave_out.resolve()
        records = [r for r in records if leave_out not in r.clear.resolve().parents]
        if not records:
            raise DataError(f"{data} holds no images besides the comparisons of an earlier evaluation")
    paired = records[0].distorted is not None
    if paired and distortion is not None:
        raise ConfigError(
            f"{data} holds distorted/clear pairs; drop --distortion {distortion} to score them, "
            "or point --data at a folder of clear images only"
        )
    if not paired and distortion is None:
        raise ConfigError(f"{data} holds clear images only: pass --distortion NAME to make the inputs")
    if num_images is not None:
        records = records[:num_images]
    # Paired data is named by its distorted file: several distorted versions of one clear image stay apart.
    return [
        EvalItem(i, _display_name(r.distorted or r.clear, data), r.clear, r.distorted) for i, r in enumerate(records)
    ]


def _display_name(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def distortion_seed(seed: int, index: int) -> int:
    """One seed per image, independent of which process scores it."""
    return seed * 1_000_003 + index


def to_unit(image: np.ndarray) -> np.ndarray:
    """uint8 -> float64 in [0, 1], so the input's scores equal those of its 8-bit file exactly."""
    return image.astype(np.float64) / 255.0


def load_pair(item: EvalItem, distortion: str | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(input, clear) as H×W×3 float64 in [0, 1]; synthetic inputs are rounded to 8 bits, like a saved file.

    An image smaller than the SSIM window is a `DataError`, refused before any distortion runs on it.
    """
    clear = decode_rgb(item.clear)
    h, w = clear.shape[:2]
    if min(h, w) < SSIM_WINDOW:
        raise DataError(f"{item.clear}: {w}x{h} is too small to score (SSIM needs {SSIM_WINDOW}x{SSIM_WINDOW} pixels)")
    if item.distorted is not None:
        distorted = decode_rgb(item.distorted)
        if distorted.shape != clear.shape:
            raise DataError(
                f"{item.distorted} is {distorted.shape[1]}x{distorted.shape[0]} but its clear image {item.clear} "
                f"is {clear.shape[1]}x{clear.shape[0]}; paired images must have the same size"
            )
        return to_unit(distorted), to_unit(clear)
    from ..distortions.named import apply_named

    batch = torch.from_numpy(to_unit(clear).astype(np.float32)).permute(2, 0, 1)[None]
    distorted = apply_named(distortion, batch, distortion_seed(seed, item.index))[0].permute(1, 2, 0)
    pixels = (distorted.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return to_unit(pixels), to_unit(clear)
