"""A decoded-pixel cache on disk, keyed by the files' content hashes and memory-mapped by every process.

`<cache_dir>/pixels-<key>/` holds `clear.u8` (and `distorted.u8` for pairs), raw RGB bytes, and
`index.json` (sizes, what was skipped or padded, by record index: the key covers contents, not
paths, so a moved dataset reuses the cache and its messages must name the files where they are
now). It is built in a temporary folder and renamed into place, so a folder that exists is
complete. A second run over the same bytes skips decoding.

Hashing every file each run would cost a full read of the data, so `hashes.json` remembers each
file's digest with its size and modification time and rehashes only files whose stat changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .decode import map_ordered
from .listing import ImageRecord
from .packing import DecodeReport, FileSink, decode_into, is_paired

logger = logging.getLogger(__name__)

CACHE_FORMAT = 2
HASH_MEMO = "hashes.json"
CHUNK = 1 << 20


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _write_json_atomic(path: Path, data) -> None:
    tmp = path.with_name(f"{path.name}.{socket.gethostname()}-{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def content_digests(paths: list[Path], cache_dir: Path) -> dict[Path, str]:
    """Content hash of each file, reusing remembered hashes of files whose size and mtime are unchanged."""
    memo_path = cache_dir / HASH_MEMO
    try:
        memo = json.loads(memo_path.read_text()) if memo_path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        memo = {}
    digests: dict[Path, str] = {}
    todo: list[tuple[Path, list[int]]] = []
    for p in dict.fromkeys(paths):
        st = p.stat()
        stamp = [st.st_size, st.st_mtime_ns]
        entry = memo.get(str(p.resolve()))
        if entry and entry[:2] == stamp:
            digests[p] = entry[2]
        else:
            todo.append((p, stamp))
    fresh: list[str] = []
    map_ordered(lambda item: _file_digest(item[0]), todo, fresh.append)
    for (p, stamp), digest in zip(todo, fresh, strict=True):
        digests[p] = digest
        memo[str(p.resolve())] = [*stamp, digest]
    if todo:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(memo_path, memo)
    return digests


def cache_key(records: list[ImageRecord], min_side: int, digests: dict[Path, str]) -> str:
    h = hashlib.sha256(f"vae-restore pixels v{CACHE_FORMAT} min_side={min_side}\n".encode())
    for r in records:
        h.update(f"{digests[r.clear]} {digests[r.distorted] if r.distorted else '-'}\n".encode())
    return h.hexdigest()[:32]


@dataclass
class CachedPixels:
    """Memory-mapped pixels of a cache folder (uint8 (P, 3) tensors, no copy) and its decode report."""

    folder: Path
    clear: torch.Tensor
    distorted: torch.Tensor | None
    report: DecodeReport


def _map(path: Path) -> torch.Tensor:
    if path.stat().st_size == 0:
        return torch.zeros((0, 3), dtype=torch.uint8)
    # copy-on-write mapping: writable for torch.from_numpy, pages read on demand, the file is never written
    return torch.from_numpy(np.memmap(path, dtype=np.uint8, mode="c").reshape(-1, 3))


def _path_slots(record: ImageRecord) -> list[tuple[str, str]]:
    """(placeholder, path) of a record's files, longest path first so one path inside another stays intact."""
    slots = [("{clear}", str(record.clear))] + ([("{distorted}", str(record.distorted))] if record.distorted else [])
    return sorted(slots, key=lambda slot: -len(slot[1]))


def _skip_entries(records: list[ImageRecord], report: DecodeReport) -> list[tuple[int, str]]:
    """(record index, message with the record's paths as placeholders) for each skipped record."""
    kept = set(report.kept)
    dropped = [i for i in range(len(records)) if i not in kept]  # decode_into reports skips in record order
    entries = []
    for i, message in zip(dropped, report.skipped, strict=True):
        for slot, path in _path_slots(records[i]):
            message = message.replace(path, slot)
        entries.append((i, message))
    return entries


def _skip_message(record: ImageRecord, template: str) -> str:
    for slot, path in _path_slots(record):
        template = template.replace(slot, path)
    return template


def open_cache(folder: Path, records: list[ImageRecord]) -> CachedPixels | None:
    """The cache in `folder` for `records`, or None when there is none (or it is from another format version)."""
    index_path = folder / "index.json"
    if not index_path.is_file():
        return None
    index = json.loads(index_path.read_text())
    if index.get("format") != CACHE_FORMAT:
        return None
    skipped = [_skip_message(records[i], template) for i, template in index["skipped"]]
    report = DecodeReport(index["kept"], index["heights"], index["widths"], skipped, index["padded"])
    distorted = _map(folder / "distorted.u8") if index["paired"] else None
    return CachedPixels(folder, _map(folder / "clear.u8"), distorted, report)


def build_cache(folder: Path, records: list[ImageRecord], min_side: int) -> CachedPixels:
    """Decode `records` into `folder` (through a temporary folder renamed at the end)."""
    tmp = folder.with_name(f"{folder.name}.{socket.gethostname()}-{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    logger.info("decoding %d images into the pixel cache %s", len(records), folder)
    try:
        paired = is_paired(records)
        clear_sink = FileSink(tmp / "clear.u8")
        distorted_sink = FileSink(tmp / "distorted.u8") if paired else None
        try:
            report = decode_into(records, min_side, clear_sink, distorted_sink)
        finally:
            clear_sink.finish()
            if distorted_sink is not None:
                distorted_sink.finish()
        index = {"format": CACHE_FORMAT, "paired": paired, **vars(report), "skipped": _skip_entries(records, report)}
        (tmp / "index.json").write_text(json.dumps(index))
        try:
            tmp.rename(folder)
        except OSError:  # another machine sharing this folder finished first; its copy is identical
            if open_cache(folder, records) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cached = open_cache(folder, records)
    if cached is None:
        raise DataError(f"pixel cache {folder} could not be read back after building it")
    return cached


def cached_pixels(records: list[ImageRecord], min_side: int, cache_dir: Path) -> CachedPixels:
    """Open the cache for exactly these files' contents, building it first when it is missing."""
    digests = content_digests([p for r in records for p in (r.clear, r.distorted) if p is not None], cache_dir)
    folder = cache_dir / f"pixels-{cache_key(records, min_side, digests)}"
    cached = open_cache(folder, records)
    if cached is not None:
        return cached
    return build_cache(folder, records, min_side)
