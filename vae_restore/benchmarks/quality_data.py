"""The quality benchmark's folders: training images (photos + most paintings) and the evaluation sets.

Nothing is copied into the repository: training photos are linked from their folder, and the paintings
are written, downscaled (they are large and carry JPEG artefacts of their own, see shared/data/SOURCES.md),
under the benchmark's work folder. Every `holdout_every`-th painting (sorted by name) is held out for
evaluation and never trained on.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..data.files import list_images
from ..errors import DataError

logger = logging.getLogger(__name__)


@dataclass
class BenchData:
    train: Path  # the folder the trainer reads (links and downscaled copies)
    eval_sets: dict[str, Path] = field(default_factory=dict)  # dataset name -> folder of clear images
    num_train_images: int = 0


def _link(source: Path, target: Path) -> None:
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(source.resolve(), target)


def _downscaled(source: Path, target: Path, scale: float) -> None:
    """Area-preserving (Lanczos) downscale to a PNG, written once and reused by later runs."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image = image.convert("RGB")
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image.resize(size, Image.LANCZOS).save(target.with_suffix(".tmp.png"))
    target.with_suffix(".tmp.png").rename(target)


def split_art(files: list[Path], holdout_every: int) -> tuple[list[Path], list[Path]]:
    """(train, held out): every `holdout_every`-th file of the sorted list is held out."""
    held = [f for i, f in enumerate(files) if i % holdout_every == 0]
    return [f for i, f in enumerate(files) if i % holdout_every != 0], held


def prepare_data(
    work: Path,
    train_photos: Path,
    val_photos: Path,
    art: Path | None,
    art_scale: float = 0.5,
    holdout_every: int = 10,
) -> BenchData:
    """Link/downscale the images under WORK/data and say which evaluation sets exist."""
    if not val_photos.is_dir():
        raise DataError(f"evaluation folder {val_photos} does not exist; pass --val_data")
    if art is not None and not art.is_dir():
        logger.warning("no paintings at %s: training on photos only, art columns are not measured", art)
        art = None
    root = work / "data"
    art_tag = f"art_x{art_scale:g}_holdout{holdout_every}"
    train = root / (f"train_photos+{art_tag}" if art else "train_photos")  # one folder per choice of images
    photos = list_images(train_photos)
    for path in photos:
        _link(path, train / "photos" / path.name)
    data = BenchData(train, {"photos": val_photos}, len(photos))
    if art is None:
        return data
    train_art, held_art = split_art(list_images(art), holdout_every)
    for path in train_art:
        _downscaled(path, train / "art" / f"{path.stem}.png", art_scale)
    for path in held_art:
        _downscaled(path, root / f"eval_{art_tag}" / f"{path.stem}.png", art_scale)
    data.eval_sets["art"] = root / f"eval_{art_tag}"
    data.num_train_images += len(train_art)
    return data
