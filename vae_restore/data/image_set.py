"""From a data path to decoded images (the `files -> decode` step), and the held-back validation split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .embedded import embedded_images
from .files import find_records
from .listing import ImageRecord
from .packing import ListSink, decode_into, group_by_clear, is_paired


@dataclass
class ImageSet:
    """Decoded clear images, their distorted partners for paired data, and what was skipped or padded."""

    names: list[str]
    clear: list[np.ndarray]
    distorted: list[np.ndarray] | None = None
    skipped: list[str] = field(default_factory=list)
    padded: list[str] = field(default_factory=list)

    @property
    def paired(self) -> bool:
        return self.distorted is not None

    def __len__(self) -> int:
        return len(self.clear)

    def subset(self, indices: list[int]) -> ImageSet:
        pick = lambda items: [items[i] for i in indices]  # noqa: E731
        return ImageSet(pick(self.names), pick(self.clear), None if self.distorted is None else pick(self.distorted))


def decode_records(records: list[ImageRecord], min_side: int = 0) -> ImageSet:
    """Decode records into memory; unreadable ones are skipped (named in `skipped`), small ones padded."""
    clear, distorted = ListSink(), ListSink() if is_paired(records) else None
    report = decode_into(records, min_side, clear, distorted)
    return ImageSet(
        [str(records[i].clear) for i in report.kept],
        clear.images,
        None if distorted is None else distorted.images,
        report.skipped,
        [str(records[i].clear) for i in report.padded],
    )


def load_image_set(path: str | Path | None, layout: str = "auto", allow_unpaired: bool = False) -> ImageSet:
    """Decode a data folder or manifest, or the embedded samples when `path` is None."""
    if path is None:
        samples = embedded_images()
        return ImageSet([n for n, _ in samples], [im for _, im in samples])
    return decode_records(find_records(path, layout, allow_unpaired))


def holdout_indices(count: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(kept, held back) indices: a seeded permutation holds back `fraction` of `count` (at least one)."""
    if count < 2:
        raise DataError(f"need at least 2 images to hold one back for validation, found {count}; pass --val_data")
    order = np.random.default_rng(seed).permutation(count).tolist()
    n_val = min(count - 1, max(1, round(fraction * count)))
    return sorted(order[n_val:]), sorted(order[:n_val])


def split_train_val(images: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Hold back whole images (at least one) for validation, chosen by a seeded permutation."""
    train, val = holdout_indices(len(images), fraction, seed)
    return images.subset(train), images.subset(val)


def split_records(
    records: list[ImageRecord], fraction: float, seed: int
) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Hold back whole clear images: all distorted versions of one clear file land on the same side."""
    groups = group_by_clear(records)
    train, val = holdout_indices(len(groups), fraction, seed)
    pick = lambda chosen: [records[i] for g in chosen for i in groups[g]]  # noqa: E731
    return pick(train), pick(val)
