"""What an evaluation leaves behind: per-image CSV, summary JSON, comparison PNGs and a printed table."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from ..metrics import METRICS

GAP = 4
TABLE_FORMATS = {
    "psnr": ("PSNR dB", "{:.2f}"),
    "ssim": ("SSIM", "{:.4f}"),
    "mse": ("MSE", "{:.5f}"),
    "hist_corr": ("hist corr", "{:.4f}"),
}


def csv_columns(methods: list[str]) -> list[str]:
    return ["index", "image", "width", "height"] + [f"{m}_{k}" for m in methods for k in METRICS]


def write_csv(rows: list[dict], methods: list[str], path: Path) -> None:
    """One row per image in folder order; floats written with full precision (repr)."""
    columns = csv_columns(methods)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _json_safe(value):
    """NaN and ±inf are not JSON: written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_summary(summary: dict, path: Path) -> None:
    path.write_text(json.dumps(_json_safe(summary), indent=2) + "\n")


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def comparison_image(panels: list[np.ndarray]) -> np.ndarray:
    """Panels (H×W×3 float in [0, 1]) side by side with white gaps, as uint8."""
    h = panels[0].shape[0]
    gap = np.full((h, GAP, 3), 255, dtype=np.uint8)
    row = []
    for i, panel in enumerate(panels):
        row += [gap] * (i > 0) + [to_uint8(panel)]
    return np.concatenate(row, axis=1)


def comparison_path(folder: Path, index: int, name: str) -> Path:
    return folder / f"{index:04d}_{Path(name).stem}.png"


def save_comparison(path: Path, distorted: np.ndarray, restored: np.ndarray, clear: np.ndarray) -> None:
    """input | restored | clear at native resolution."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(comparison_image([distorted, restored, clear])).save(path)


def format_table(metrics: dict[str, dict[str, dict[str, float]]]) -> str:
    """Methods as rows, `mean ± std` per metric as columns; images with an infinite PSNR are counted apart."""
    header = ["method"] + [TABLE_FORMATS[m][0] for m in METRICS]
    lines = [header]
    for method, stats in metrics.items():
        cells = [method]
        for metric in METRICS:
            fmt = TABLE_FORMATS[metric][1]
            infinite = stats[metric].get("num_infinite")
            note = f" (+{infinite} inf)" if infinite else ""
            cells.append(f"{fmt.format(stats[metric]['mean'])} ± {fmt.format(stats[metric]['std'])}{note}")
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def format_gains(gains: dict[str, float]) -> str:
    """One line: what the model adds over the distorted input, per metric (restored minus input; for MSE a
    negative change is the improvement)."""
    parts = [f"{TABLE_FORMATS[m][0]} {TABLE_FORMATS[m][1].replace(':', ':+')}".format(v) for m, v in gains.items()]
    return "gain over the input: " + ", ".join(parts)
