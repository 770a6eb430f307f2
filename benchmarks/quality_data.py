"""The quality benchmark's folders: training images (photos + most paintings) and the evaluation sets.

Nothing is copied into the repository: training photos are linked from their folder, and the paintings
are written, downscaled (they are large and carry JPEG artefacts of their own, see shared/data/SOURCES.md),
under the benchmark's work folder. Every `holdout_every`-th painting (sorted by name) is held out for
evaluation and never trained on.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from vae_restore.data.files import list_images
from vae_restore.errors import DataError

logger = logging.getLogger(__name__)

HOLDOUT_EVERY = 10  # every 10th painting (sorted by name) is held out for evaluation


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


def _sources_tag(*folders: Path | None) -> str:
    """A short digest of the source folders: another --train_data or --art gets folders of its own."""
    text = "|".join(str(f.resolve()) for f in folders if f is not None)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _prune(folder: Path, keep: set[Path]) -> None:
    """Remove what an earlier run put in `folder` that this one would not (files since gone from the source)."""
    for path in list(folder.rglob("*")) if folder.is_dir() else []:
        if (path.is_file() or path.is_symlink()) and path not in keep:
            path.unlink()


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
    holdout_every: int = HOLDOUT_EVERY,
) -> BenchData:
    """Link/downscale the images under WORK/data and say which evaluation sets exist."""
    if not val_photos.is_dir():
        raise DataError(f"evaluation folder {val_photos} does not exist; pass --val_data")
    if art is not None and not art.is_dir():
        logger.warning("no paintings at %s: training on photos only, art columns are not measured", art)
        art = None
    root = work / "data"
    art_tag = f"art_x{art_scale:g}_holdout{holdout_every}"
    # one folder per choice of images: the source folders, the painting scale and the hold-out
    train = root / f"train-{_sources_tag(train_photos, art)}" / (f"photos+{art_tag}" if art else "photos")
    photos = list_images(train_photos)
    wanted = {train / "photos" / path.name: path for path in photos}
    for target, path in wanted.items():
        _link(path, target)
    data = BenchData(train, {"photos": val_photos}, len(photos))
    if art is not None:
        train_art, held_art = split_art(list_images(art), holdout_every)
        evaluation = root / f"eval-{_sources_tag(art)}" / art_tag
        held = {evaluation / f"{path.stem}.png": path for path in held_art}
        trained = {train / "art" / f"{path.stem}.png": path for path in train_art}
        for target, path in {**trained, **held}.items():
            _downscaled(path, target, art_scale)
        wanted.update(trained)
        _prune(evaluation, set(held))
        data.eval_sets["art"] = evaluation
        data.num_train_images += len(train_art)
    _prune(train, set(wanted))
    return data
