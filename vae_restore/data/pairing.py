"""Pair distorted files with their clear files: identical names, the original project's naming, or a manifest."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .listing import ImageRecord, list_images

logger = logging.getLogger(__name__)

SHOWN_UNPAIRED = 10


@dataclass
class Pairing:
    """Pairs found, and the files (or manifest rows) that have no partner."""

    pairs: list[ImageRecord]
    unpaired: list[str] = field(default_factory=list)
    reason: str = "have no partner"

    def records(self, source: Path, allow_unpaired: bool) -> list[ImageRecord]:
        """The pairs; unpaired files are an error naming the first ten, or a warning with `allow_unpaired`."""
        if self.unpaired:
            count = len(self.unpaired)
            if not allow_unpaired:
                listed = "\n  ".join(self.unpaired[:SHOWN_UNPAIRED])
                more = f"\n  ... and {count - SHOWN_UNPAIRED} more" if count > SHOWN_UNPAIRED else ""
                raise DataError(
                    f"{count} file(s) in {source} {self.reason}:\n  {listed}{more}\n"
                    "fix the names, or pass --allow_unpaired true to use the pairs that exist"
                )
            logger.warning("%d file(s) in %s %s; they are left out (allow_unpaired)", count, source, self.reason)
        if not self.pairs:
            raise DataError(f"no distorted/clear pairs in {source}")
        return sorted(self.pairs, key=lambda r: (str(r.clear), str(r.distorted)))


def pair_same_name(clear_dir: Path, distorted_dir: Path) -> Pairing:
    """Files with the same path relative to `clear_dir` and `distorted_dir` form a pair."""
    clear = {p.relative_to(clear_dir): p for p in list_images(clear_dir)}
    distorted = {p.relative_to(distorted_dir): p for p in list_images(distorted_dir)}
    unpaired = sorted(str(distorted_dir / k) for k in distorted.keys() - clear.keys())
    unpaired += sorted(str(clear_dir / k) for k in clear.keys() - distorted.keys())
    pairs = [ImageRecord(clear[k], distorted[k]) for k in clear.keys() & distorted.keys()]
    return Pairing(pairs, unpaired, "have no partner of the same name")


def _longest_clear_stem(stem: str, by_stem: dict[str, list[Path]]) -> str | None:
    """The longest clear stem starting `stem` that does not cut a number in two (`img1` never claims `img10`)."""
    for end in range(len(stem), 0, -1):
        splits_number = end < len(stem) and stem[end - 1].isdigit() and stem[end].isdigit()
        if stem[:end] in by_stem and not splits_number:
            return stem[:end]
    return None


def pair_stem_prefix(clear_dir: Path, distorted_dir: Path) -> Pairing:
    """The original project's naming: a distorted stem is its clear stem plus extra text.

    The longest clear stem that prefixes the distorted stem wins, so `image (12)_blur` pairs with
    `image (12)`, never with `image (1)`; a prefix that ends inside a number does not count, so
    `img10` never pairs with `img1`. One clear image may have many distorted versions. When
    sub-folders hold clear files of the same stem, the one in the same relative folder is used.
    """
    by_stem: dict[str, list[Path]] = {}
    for p in list_images(clear_dir):
        by_stem.setdefault(p.stem, []).append(p)
    pairs, unpaired, used = [], [], set()
    for d in list_images(distorted_dir):
        stem = _longest_clear_stem(d.stem, by_stem)
        if stem is None:
            unpaired.append(str(d))
            continue
        candidates = by_stem[stem]
        if len(candidates) > 1:
            where = d.parent.relative_to(distorted_dir)
            candidates = [c for c in candidates if c.parent.relative_to(clear_dir) == where]
            if len(candidates) != 1:
                raise DataError(
                    f"{d} could belong to several clear files named {stem!r} in {clear_dir}; "
                    "put it in the same sub-folder as its clear file or use a manifest"
                )
        pairs.append(ImageRecord(candidates[0], d))
        used.add(candidates[0])
    unpaired += [str(p) for paths in by_stem.values() for p in paths if p not in used]
    return Pairing(pairs, unpaired, "have no partner (a distorted stem must start with its clear file's stem)")


def _manifest_rows(manifest: Path) -> list[tuple[int, str, str]]:
    """(line number, distorted, clear) from a CSV (header `distorted,clear` optional) or JSONL manifest."""
    text = manifest.read_text(encoding="utf-8-sig")
    rows = []
    if manifest.suffix.lower() == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                rows.append((n, str(item["distorted"]), str(item["clear"])))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise DataError(
                    f'{manifest} line {n}: expected {{"distorted": PATH, "clear": PATH}} ({type(e).__name__}: {e})'
                ) from None
        return rows
    lines = [(n, row) for n, row in enumerate(csv.reader(text.splitlines()), 1) if row and any(c.strip() for c in row)]
    columns = (0, 1)
    if lines and {"distorted", "clear"} <= {c.strip().lower() for c in lines[0][1]}:
        header = [c.strip().lower() for c in lines.pop(0)[1]]
        columns = (header.index("distorted"), header.index("clear"))
    for n, row in lines:
        if len(row) <= max(columns):
            raise DataError(f"{manifest} line {n}: expected distorted,clear but got {row!r}")
        rows.append((n, row[columns[0]].strip(), row[columns[1]].strip()))
    return rows


def read_manifest(manifest: Path) -> Pairing:
    """Pairs listed in `manifest`, paths relative to its folder; rows naming missing files are unpaired."""
    root = manifest.parent
    pairs, missing = [], []
    for n, distorted, clear in _manifest_rows(manifest):
        d, c = root / distorted, root / clear
        absent = [str(p) for p in (d, c) if not p.is_file()]
        if absent:
            missing.append(f"line {n}: {' and '.join(absent)}")
        else:
            pairs.append(ImageRecord(c, d))
    if not pairs and not missing:
        raise DataError(f"manifest {manifest} lists no pairs")
    unique = list(dict.fromkeys(pairs))  # a repeated row would be drawn twice as often
    if len(unique) < len(pairs):
        logger.warning("manifest %s: %d repeated rows left out", manifest, len(pairs) - len(unique))
    return Pairing(unique, missing, "name files that do not exist (manifest rows)")
