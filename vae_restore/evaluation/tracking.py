"""Send an evaluation to the experiment trackers: summary numbers, and the comparison images as a table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .scoring import INPUT, RESTORED

TABLE_METRICS = ("psnr", "ssim")


def flat_summary(metrics: dict[str, dict[str, dict[str, float]]]) -> dict[str, float]:
    return {
        f"eval/{method}/{metric}_{stat}": value
        for method, per_metric in metrics.items()
        for metric, stats in per_metric.items()
        for stat, value in stats.items()
    }


def log_evaluation(accelerator, metrics: dict, comparisons: list[tuple[dict, Path]]) -> None:
    """Main process only. `comparisons` pairs each shown image's CSV row with its input | restored | clear PNG."""
    accelerator.log(flat_summary(metrics), step=0)
    for tracker in accelerator.trackers:
        if tracker.name == "wandb":
            import wandb

            columns = ["image", "input | restored | clear"]
            columns += [f"{m}_{k}" for k in TABLE_METRICS for m in (INPUT, RESTORED)]
            table = wandb.Table(columns=columns)
            for row, png in comparisons:
                values = [row[f"{m}_{k}"] for k in TABLE_METRICS for m in (INPUT, RESTORED)]
                table.add_data(row["image"], wandb.Image(str(png)), *values)
            tracker.log({"eval/comparisons": table}, step=0)
        elif tracker.name == "tensorboard":
            for row, png in comparisons:
                with Image.open(png) as opened:
                    image = np.asarray(opened.convert("RGB"))
                tracker.writer.add_image(f"eval/comparisons/{row['image']}", image, 0, dataformats="HWC")
