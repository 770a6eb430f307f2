"""Find training images on disk and decide which layout they are in.

Layouts (`data_layout` in the config; `auto` picks one):
- `clear_only`: a folder of clear images (stage distorted synthesises the inputs);
- `same_name`: `clear/` + `distorted/` sub-folders whose files have identical relative paths;
- `stem_prefix`: the original project's naming, `clear/image (12).jpg` <- `distorted/image (12)_blur.jpg`;
- `manifest`: a CSV or JSONL file of `distorted,clear` paths relative to the manifest.
"""

from __future__ import annotations

from pathlib import Path

from ..config import DATA_LAYOUTS
from ..errors import DataError
from . import pairing
from .listing import ImageRecord, list_images

MANIFEST_NAMES = ("pairs.csv", "pairs.jsonl", "manifest.csv", "manifest.jsonl")
CLEAR_DIR_WORDS = ("clear", "clean")
DISTORTED_DIR_WORDS = ("distort", "degraded", "noisy")


def _pick_dir(folder: Path, words: tuple[str, ...]) -> Path | None:
    """The one sub-folder whose name contains one of `words` (`clear/`, `Clear images/` ...), if exactly one does."""
    hits = [d for d in folder.iterdir() if d.is_dir() and any(w in d.name.lower() for w in words)]
    if len(hits) > 1:
        names = ", ".join(sorted(d.name for d in hits))
        raise DataError(f"{folder} has several candidate folders ({names}); keep one or pass a manifest")
    return hits[0] if hits else None


def paired_dirs(folder: Path) -> tuple[Path, Path] | None:
    """(clear, distorted) sub-folders of `folder`, or None when it is not a paired-folder layout."""
    if not folder.is_dir():
        return None
    clear, distorted = _pick_dir(folder, CLEAR_DIR_WORDS), _pick_dir(folder, DISTORTED_DIR_WORDS)
    return (clear, distorted) if clear is not None and distorted is not None else None


def _manifest_in(folder: Path) -> Path | None:
    found = [folder / n for n in MANIFEST_NAMES if (folder / n).is_file()]
    if len(found) > 1:
        raise DataError(f"{folder} has several manifests ({', '.join(p.name for p in found)}); keep one")
    return found[0] if found else None


def detect_layout(path: Path) -> str:
    """The layout of `path`: a manifest file or a folder holding one, paired sub-folders, else clear-only.

    Paired sub-folders are `same_name` when more than half the distorted files have a clear file of the
    same relative path, so a few missing clear files are reported by name rather than paired by prefix.
    """
    if path.is_file():
        if path.suffix.lower() in (".csv", ".jsonl"):
            return "manifest"
        raise DataError(f"{path} is a file but not a .csv or .jsonl manifest; pass a folder of images or a manifest")
    if not path.exists():
        raise DataError(f"data folder {path} does not exist")
    if _manifest_in(path) is not None:
        return "manifest"
    dirs = paired_dirs(path)
    if dirs is None:
        return "clear_only"
    clear, distorted = dirs
    names = lambda folder: {p.relative_to(folder) for p in list_images(folder)}  # noqa: E731
    distorted_names = names(distorted)
    shared = len(distorted_names & names(clear))
    return "same_name" if 2 * shared > len(distorted_names) else "stem_prefix"


def find_records(folder: str | Path, layout: str = "auto", allow_unpaired: bool = False) -> list[ImageRecord]:
    """The examples under `folder` (or in a manifest file), paired when the layout is paired.

    Unpaired files are an error listing the first ten with the count, or with `allow_unpaired` a warning.
    """
    path = Path(folder)
    if layout not in DATA_LAYOUTS:
        raise DataError(f"data_layout must be one of {', '.join(DATA_LAYOUTS)}, got {layout!r}")
    chosen = detect_layout(path) if layout == "auto" else layout
    if chosen == "clear_only":
        return [ImageRecord(p) for p in list_images(path)]
    if chosen == "manifest":
        manifest = path if path.is_file() else _manifest_in(path)
        if manifest is None:
            raise DataError(f"data_layout is manifest but {path} is not a manifest and holds none of {MANIFEST_NAMES}")
        result = pairing.read_manifest(manifest)
    else:
        dirs = paired_dirs(path)
        if dirs is None:
            raise DataError(
                f"data_layout is {chosen} but {path} has no clear/ and distorted/ sub-folders; "
                "use data_layout auto or clear_only"
            )
        pair = pairing.pair_same_name if chosen == "same_name" else pairing.pair_stem_prefix
        result = pair(*dirs)
    return result.records(path, allow_unpaired)
