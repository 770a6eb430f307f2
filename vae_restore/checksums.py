"""File digests, torch-free so that onnxruntime inference can verify a model without importing torch."""

from __future__ import annotations

import functools
import hashlib
import os


def sha256_file(path: str | os.PathLike) -> str:
    """The file's sha256, read once per version of the file: loading weights checks the digest their run
    recorded, and the caller (export, evaluation, stage distorted's lineage) records it again."""
    stat = os.stat(path)
    return _digest(os.path.realpath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


@functools.lru_cache(maxsize=32)
def _digest(path: str, inode: int, size: int, mtime_ns: int, ctime_ns: int) -> str:
    """Keyed on what any write changes (ctime cannot be set back), so a rewritten file is read again."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
