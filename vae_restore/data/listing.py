"""Image files on disk and the training example they make (a module of its own, so that both the layout
detection of `files` and the pairing rules of `pairing` build on it)."""

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


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def list_images(folder: Path) -> list[Path]:
    """Image files below `folder` (recursive, hidden entries ignored), sorted so every process sees one order."""
    if not folder.exists():
        raise DataError(f"data folder {folder} does not exist")
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    files = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and _visible(p, folder)
    )
    if not files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files
