"""Train one preset + recipe through the toolkit's own `Trainer` for a budget, in this process.

A budget is steps per stage, or minutes per stage: minutes are turned into steps by a short calibration
run of the same stage (two logging windows, the second timed), so the learning-rate schedule still
spans the whole run. Schedules: `two_stage` (clear, then distorted from its weights) or `distorted_only`
(stage distorted from random weights for both stages' steps: the same total).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Config, build_config
from ..errors import ConfigError
from ..models import VAE, get_preset, save_model
from ..training import fit_in_process
from .recipes import Recipe

SCHEDULES = ("two_stage", "distorted_only")
CALIBRATION_WINDOW = {"cuda": 50, "cpu": 5}  # steps per calibration window (GPU steps take milliseconds)


@dataclass(frozen=True)
class Budget:
    steps: int | None = None
    minutes: float | None = None

    def __post_init__(self):
        if (self.steps is None) == (self.minutes is None):
            raise ConfigError("give exactly one of --budget_steps and --budget_minutes")
        if (self.steps is not None and self.steps < 1) or (self.minutes is not None and self.minutes <= 0):
            raise ConfigError("the budget must be positive")

    def describe(self) -> str:
        return f"{self.steps} steps" if self.steps is not None else f"{self.minutes:g} min"


@dataclass(frozen=True)
class TrainSetup:
    """What every toolkit run of one benchmark shares."""

    train_data: Path
    val_data: Path
    work: Path
    clear_config: Path
    distorted_config: Path
    train_batch_size: int
    device: str  # cuda or cpu
    seed: int = 0


def stage_config(
    setup: TrainSetup, stage: str, preset: str, recipe: Recipe, out: Path, steps: int, init_from: Path | None
) -> Config:
    """The stage's YAML, then the batch size, then the recipe, then this run's own settings."""
    yaml_path = setup.clear_config if stage == "clear" else setup.distorted_config
    logging_steps = max(1, min(100, steps // 10))
    infra = {
        "stage": stage,
        "preset": preset,
        "output_dir": str(out),
        "train_data": str(setup.train_data),
        "val_data": str(setup.val_data),
        "val_crops_per_image": 1,
        "init_from": None if init_from is None else str(init_from),
        "seed": setup.seed,
        "max_train_steps": steps,
        "logging_steps": logging_steps,
        "validation_steps": steps,
        "checkpointing_steps": 10**9,
        "checkpoints_total_limit": 1,
        "report_to": "none",
        "mixed_precision": "bf16" if setup.device == "cuda" else "no",
    }
    return build_config(yaml_path, {"train_batch_size": setup.train_batch_size, **recipe.overrides, **infra})


def steps_for_minutes(config: Config, minutes: float, device: str) -> int:
    """How many steps of this stage fit in `minutes`, from the speed of a short run of the same stage."""
    window = CALIBRATION_WINDOW[device]
    probe = copy.deepcopy(config)
    probe.train.output_dir = str(Path(config.train.output_dir) / "calibration")
    probe.train.max_train_steps = 2 * window
    probe.train.logging_steps = window
    probe.train.validation_steps = 10**9
    trainer = fit_in_process(probe.validate())
    images_per_s = trainer.history[1]["train/images_per_s"]
    return max(1, math.floor(minutes * 60 * images_per_s / trainer.images_per_step))


def run_stage(
    setup: TrainSetup,
    stage: str,
    preset: str,
    recipe: Recipe,
    out: Path,
    budget: Budget,
    init_from: Path | None,
    factor: int = 1,
) -> dict:
    """Train one stage for `factor` × the budget; returns what it did and where its weights are."""
    steps = budget.steps * factor if budget.steps is not None else 1
    config = stage_config(setup, stage, preset, recipe, out, steps, init_from)
    if budget.minutes is not None:
        steps = steps_for_minutes(config, budget.minutes * factor, setup.device)
        config = stage_config(setup, stage, preset, recipe, out, steps, init_from)
    print(f"[quality] {preset}/{recipe.name}: stage {stage}, {steps} steps of {setup.train_batch_size}", flush=True)
    start = time.perf_counter()
    trainer = fit_in_process(config)
    seconds = time.perf_counter() - start
    last = trainer.history[-1] if trainer.history else {}
    del trainer  # its pixels and model live on the device: free them before the next run
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {
        "stage": stage,
        "steps": steps,
        "seconds": round(seconds, 1),
        "images_per_s": last.get("train/images_per_s"),
        "final_loss": last.get("train/loss"),
        "weights": str(out / stage / "model.safetensors"),
    }


def train_toolkit(setup: TrainSetup, preset: str, recipe: Recipe, schedule: str, budget: Budget) -> list[dict]:
    """Train `preset` with `recipe` under `schedule`; the last entry's weights are the ones to evaluate."""
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {schedule!r}; known: {', '.join(SCHEDULES)}")
    out = setup.work / "runs" / f"{preset}-{recipe.name}-{schedule}"
    if schedule == "two_stage":
        clear = run_stage(setup, "clear", preset, recipe, out, budget, None)
        return [clear, run_stage(setup, "distorted", preset, recipe, out, budget, Path(clear["weights"]))]
    torch.manual_seed(setup.seed)
    start = save_model(VAE(get_preset(preset)), out / "init" / "model.safetensors", {"stage": "init"})
    return [run_stage(setup, "distorted", preset, recipe, out, budget, start, factor=2)]
