"""Experiment trackers through Accelerate: W&B (offline by itself without an API key), TensorBoard, none.

One module for training (the environment, sample grids) and evaluation (its summary and comparison table).
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import ConfigError

logger = logging.getLogger(__name__)


def wandb_api_key_available() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


# What W&B accepts in WANDB_MODE (its settings validator rejects anything else, empty included, with a
# pydantic traceback at the first log call, long after the run started).
WANDB_MODES = ("online", "offline", "disabled", "shared", "dryrun", "run")


# The values this module wrote, so the next run in the same process does not take them for the user's.
_SET_HERE: dict[str, str] = {}


def _user_set(name: str) -> bool:
    return name in os.environ and os.environ[name] != _SET_HERE.get(name)


def _set(name: str, value: str) -> None:
    os.environ[name] = _SET_HERE[name] = value


def prepare_tracker_env(report_to: str, run_dir: Path) -> None:
    """Keep W&B files under the run folder and never let it prompt: no key means offline mode.

    Must run before the Accelerator is built, since W&B reads these variables when it starts; an invalid
    WANDB_MODE (an empty one after `export WANDB_MODE=` too) is refused here, before any work. Only the
    user's own values are kept; ours are set again per run, or a second run in one process (stage
    distorted after clear) would write into the first run's folder.
    """
    if report_to != "wandb":
        return
    for name, value in (("WANDB_DIR", str(run_dir.resolve())), ("WANDB_SILENT", "true")):
        if not _user_set(name):
            _set(name, value)
    if _user_set("WANDB_MODE"):
        mode = os.environ["WANDB_MODE"]
        if mode not in WANDB_MODES:
            raise ConfigError(
                f"WANDB_MODE={mode!r} is not a W&B mode: set it to one of {', '.join(WANDB_MODES)}, or unset it "
                "(`unset WANDB_MODE`: offline without an API key, online with one), or pass --report_to none"
            )
        return
    if wandb_api_key_available():
        os.environ.pop("WANDB_MODE", None)
    else:
        _set("WANDB_MODE", "offline")
        logger.info("no W&B API key found: logging offline under %s (upload later with `wandb sync`)", run_dir)


def log_image(accelerator, name: str, image: np.ndarray, step: int) -> None:
    """Send an H×W×3 uint8 image to whichever trackers are active."""
    for tracker in accelerator.trackers:
        if tracker.name == "wandb":
            import wandb

            tracker.log({name: wandb.Image(image)}, step=step)
        elif tracker.name == "tensorboard":
            tracker.writer.add_image(name, image, step, dataformats="HWC")


TABLE_METRICS = ("psnr", "ssim")


def flat_summary(metrics: dict[str, dict[str, dict[str, float]]]) -> dict[str, float]:
    return {
        f"eval/{method}/{metric}_{stat}": value
        for method, per_metric in metrics.items()
        for metric, stats in per_metric.items()
        for stat, value in stats.items()
    }


def log_evaluation(accelerator, metrics: dict, comparisons: list[tuple[dict, Path]], methods: tuple[str, ...]) -> None:
    """Main process only. `comparisons` pairs each shown image's CSV row with its input | restored | clear PNG;
    the table shows `methods`' columns of the row (`<method>_psnr` ...)."""
    accelerator.log(flat_summary(metrics), step=0)
    for tracker in accelerator.trackers:
        if tracker.name == "wandb":
            import wandb

            columns = ["image", "input | restored | clear"]
            columns += [f"{m}_{k}" for k in TABLE_METRICS for m in methods]
            table = wandb.Table(columns=columns)
            for row, png in comparisons:
                values = [row[f"{m}_{k}"] for k in TABLE_METRICS for m in methods]
                table.add_data(row["image"], wandb.Image(str(png)), *values)
            tracker.log({"eval/comparisons": table}, step=0)
        elif tracker.name == "tensorboard":
            for row, png in comparisons:
                with Image.open(png) as opened:
                    image = np.asarray(opened.convert("RGB"))
                tracker.writer.add_image(f"eval/comparisons/{row['image']}", image, 0, dataformats="HWC")
