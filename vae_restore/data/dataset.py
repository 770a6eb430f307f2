"""From a data config to decoded training and validation images (the `files -> decode -> cache` step)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import DataConfig
from ..errors import DataError
from .decode import decode_rgb
from .embedded import embedded_images
from .files import ImageRecord, find_records

logger = logging.getLogger(__name__)


@dataclass
class ImageSet:
    """Decoded clear images, their distorted partners for paired data, and what was skipped."""

    names: list[str]
    clear: list[np.ndarray]
    distorted: list[np.ndarray] | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def paired(self) -> bool:
        return self.distorted is not None

    def __len__(self) -> int:
        return len(self.clear)

    def subset(self, indices: list[int]) -> ImageSet:
        pick = lambda items: [items[i] for i in indices]  # noqa: E731
        return ImageSet(pick(self.names), pick(self.clear), None if self.distorted is None else pick(self.distorted))


def _decode_records(records: list[ImageRecord]) -> ImageSet:
    names, clear, distorted, skipped = [], [], [], []
    for record in records:
        try:
            c = decode_rgb(record.clear)
            d = None if record.distorted is None else decode_rgb(record.distorted)
        except DataError as e:
            logger.warning("skipping %s", e)
            skipped.append(str(e))
            continue
        if d is not None and d.shape != c.shape:
            raise DataError(
                f"{record.distorted} is {d.shape[1]}x{d.shape[0]} but its clear image "
                f"{record.clear} is {c.shape[1]}x{c.shape[0]}; paired images must have the same size"
            )
        names.append(str(record.clear))
        clear.append(c)
        if d is not None:
            distorted.append(d)
    if not clear:
        raise DataError("none of the images could be read:\n  " + "\n  ".join(skipped[:10]))
    return ImageSet(names, clear, distorted if records[0].distorted is not None else None, skipped)


def load_image_set(path: str | Path | None) -> ImageSet:
    """Decode a data folder, or the embedded samples when `path` is None."""
    if path is None:
        samples = embedded_images()
        return ImageSet([n for n, _ in samples], [im for _, im in samples])
    return _decode_records(find_records(path))


def split_train_val(images: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Hold back whole images (at least one) for validation, chosen by a seeded permutation."""
    if len(images) < 2:
        raise DataError(f"need at least 2 images to hold one back for validation, found {len(images)}; pass --val_data")
    order = np.random.default_rng(seed).permutation(len(images)).tolist()
    n_val = min(len(images) - 1, max(1, round(fraction * len(images))))
    return images.subset(sorted(order[n_val:])), images.subset(sorted(order[:n_val]))


def load_train_val(config: DataConfig, seed: int) -> tuple[ImageSet, ImageSet]:
    train = load_image_set(config.train_data)
    if config.val_data is not None:
        return train, load_image_set(config.val_data)
    return split_train_val(train, config.val_fraction, seed)
