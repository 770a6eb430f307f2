"""Scoring for the quality benchmark, on the evaluation library's pieces: the same image list, seeded named
distortions (8-bit inputs), tiled restoration and metrics as `vae-restore evaluate`.

A column is one (dataset, distortion) pair. The distorted inputs are made once per column and every
method restores the same ones. Scores of methods that do not train (the classical baselines) are cached
per column, keyed by the images' pixels, so repeated benchmark runs do not recompute CBM3D.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vae_restore.errors import ConfigError
from vae_restore.evaluation.pairs import find_items, load_pair
from vae_restore.evaluation.scoring import score, summarize

logger = logging.getLogger(__name__)

TABLE_METRICS = ("psnr", "ssim")
Restore = Callable[[np.ndarray], np.ndarray]  # H×W×3 float in [0, 1] -> same


@dataclass(frozen=True)
class Column:
    dataset: str  # a key of BenchData.eval_sets: photos, art
    distortion: str  # a name in vae_restore.distortions.named

    @property
    def label(self) -> str:
        return f"{self.dataset}:{self.distortion}"


def parse_columns(text: str) -> list[Column]:
    """`photos:awgn25,art:aged` -> columns, in order, each once."""
    columns = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        dataset, sep, distortion = part.partition(":")
        if not sep or not dataset or not distortion:
            raise ConfigError(f"--columns entry {part!r} must be DATASET:DISTORTION, e.g. photos:awgn25")
        columns.append(Column(dataset, distortion))
    return list(dict.fromkeys(columns))


def unmeasurable(column: Column, eval_sets: dict[str, Path]) -> str | None:
    """Why a column cannot be scored here (a distortion or dataset that is not available yet), else None."""
    from vae_restore.distortions.named import NAMED_DISTORTIONS

    if column.distortion not in NAMED_DISTORTIONS:
        return f"distortion {column.distortion!r} is not in vae_restore.distortions.named yet"
    if column.dataset not in eval_sets:
        return f"no {column.dataset!r} images (known: {', '.join(eval_sets)})"
    return None


@dataclass
class Case:
    """One column's images: names, 8-bit distorted inputs and clear references, all H×W×3 float64."""

    column: Column
    names: list[str]
    inputs: list[np.ndarray]
    clears: list[np.ndarray]


def load_case(column: Column, folder: Path, num_images: int | None, seed: int) -> Case:
    items = find_items(folder, column.distortion, num_images)
    pairs = [load_pair(item, column.distortion, seed) for item in items]
    return Case(column, [i.name for i in items], [p[0] for p in pairs], [p[1] for p in pairs])


def restore_all(restore: Restore, inputs: list[np.ndarray], workers: int) -> list[np.ndarray]:
    """`restore` over the images, in `workers` spawned processes when > 1 (for picklable CPU-bound baselines)."""
    if workers <= 1 or len(inputs) <= 1:
        return [restore(x) for x in inputs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")  # the parent may hold CUDA and OpenMP state: no fork
    with ProcessPoolExecutor(min(workers, len(inputs)), mp_context=context) as pool:
        return list(pool.map(restore, inputs))


def score_case(restore: Restore, case: Case, workers: int = 1) -> dict[str, float]:
    """Mean PSNR and SSIM of `restore` over the case's images (infinite PSNRs left out of the mean)."""
    outputs = restore_all(restore, case.inputs, workers)
    rows = [score({"m": out}, clear) for out, clear in zip(outputs, case.clears, strict=True)]
    summary = summarize(rows, ["m"])["m"]
    return {metric: summary[metric]["mean"] for metric in TABLE_METRICS}


def case_digest(case: Case) -> str:
    """sha256 of the case's input and clear pixels: what a score depends on besides the method itself."""
    digest = hashlib.sha256()
    for image in (*case.inputs, *case.clears):
        digest.update(str(image.shape).encode())
        digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def cached_score(
    restore: Restore, case: Case, method: str, cache_dir: Path | None, workers: int = 1
) -> dict[str, float]:
    """`score_case`, read from / written to CACHE/<method>/<dataset>_<distortion>.json when the pixels match
    (names alone would not do: another folder, scale or seed gives other pixels under the same names)."""
    if cache_dir is None:
        return score_case(restore, case, workers)
    path = cache_dir / method / f"{case.column.dataset}_{case.column.distortion}.json"
    key = {"names": case.names, "pixels": case_digest(case)}
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached["scores"]
    scores = score_case(restore, case, workers)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "scores": scores}) + "\n")
    return scores
