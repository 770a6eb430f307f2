"""Per-image scores of every method against the clear image, and their mean and spread."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..metrics import METRICS, compute_metrics

RESTORED, INPUT = "restored", "input"


def score(outputs: dict[str, np.ndarray], clear: np.ndarray) -> dict[str, float]:
    """{method: H×W×3 image} -> {"<method>_<metric>": value} against the clear H×W×3 image."""
    reference = torch.from_numpy(np.ascontiguousarray(clear.transpose(2, 0, 1), dtype=np.float64))[None]
    row = {}
    for method, image in outputs.items():
        candidate = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float64))[None]
        for metric, value in compute_metrics(candidate, reference).items():
            row[f"{method}_{metric}"] = float(value.item())
    return row


def summarize(rows: list[dict], methods: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """{method: {metric: {"mean", "std"}}} over the images (population std); infinite PSNRs are counted apart."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for method in methods:
        summary[method] = {}
        for metric in METRICS:
            values = np.array([row[f"{method}_{metric}"] for row in rows], dtype=np.float64)
            finite = values[np.isfinite(values)]
            stats = {
                "mean": float(finite.mean()) if finite.size else math.nan,
                "std": float(finite.std()) if finite.size else math.nan,
            }
            if finite.size < values.size:
                stats["num_infinite"] = int(values.size - finite.size)
            summary[method][metric] = stats
    return summary


def gains(rows: list[dict]) -> dict[str, float]:
    """Mean of restored minus input, per metric, over the images where both are finite (an input equal to its
    clear image has an infinite PSNR): what the model adds over doing nothing, on the same images."""
    result = {}
    for m in METRICS:
        diff = np.array([row[f"{RESTORED}_{m}"] - row[f"{INPUT}_{m}"] for row in rows], dtype=np.float64)
        diff = diff[np.isfinite(diff)]
        result[m] = float(diff.mean()) if diff.size else math.nan
    return result
