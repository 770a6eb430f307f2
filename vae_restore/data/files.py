"""Find training images on disk: a flat folder of clear images, or `clear/` + `distorted/` pairs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .decode import IMAGE_SUFFIXES


@dataclass(frozen=True)
class ImageRecord:
    """One training example: a clear image and, for paired data, its distorted version."""

    clear: Path
    distorted: Path | None = None

    @property
    def name(self) -> str:
        return self.clear.name


def list_images(folder: Path) -> list[Path]:
    """Image files below `folder`, sorted so every process and every run sees the same order."""
    if not folder.exists():
        raise DataError(f"data folder {folder} does not exist")
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files


def find_records(folder: str | Path) -> list[ImageRecord]:
    """Paired data when `clear/` and `distorted/` exist (files matched by identical names), else clear-only."""
    folder = Path(folder)
    clear_dir, distorted_dir = folder / "clear", folder / "distorted"
    if not (clear_dir.is_dir() and distorted_dir.is_dir()):
        return [ImageRecord(p) for p in list_images(folder)]
    clear = {p.relative_to(clear_dir): p for p in list_images(clear_dir)}
    distorted = {p.relative_to(distorted_dir): p for p in list_images(distorted_dir)}
    unpaired = sorted(str(distorted_dir / k) for k in distorted.keys() - clear.keys())
    unpaired += sorted(str(clear_dir / k) for k in clear.keys() - distorted.keys())
    if unpaired:
        listed = "\n  ".join(unpaired[:10])
        raise DataError(f"{len(unpaired)} file(s) in {folder} have no partner of the same name:\n  {listed}")
    return [ImageRecord(clear[k], distorted[k]) for k in sorted(clear)]
