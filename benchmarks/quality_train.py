"""Train one preset + recipe through the toolkit's own `Trainer` for a budget, in this process.

A budget is steps per stage, or minutes per stage: minutes are turned into steps by a short calibration
run of the same stage (two logging windows, the second timed), so the learning-rate schedule still
spans the whole run. Schedules: `two_stage` (clear, then distorted from its weights) or `distorted_only`
(stage distorted from random weights for the steps of both stages: under a minutes budget, the steps
each stage would get at its own speed, so the two schedules compare at the same total steps). Starting
from random weights as stage clear does, `distorted_only` takes stage clear's optimiser settings.

Stage distorted runs once per distortion mixture (a config YAML): photos and paintings can each get their
own fine-tune of the same clear weights, as a user restoring both would train them.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from vae_restore.config import Config
from vae_restore.config_io import build_config
from vae_restore.errors import ConfigError
from vae_restore.models import VAE, get_preset, save_model
from vae_restore.training.precision import cpu_bf16_instructions

from .in_process import LoggedSteps, fit_in_process
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
    train_batch_size: int
    device: str  # cuda or cpu
    seed: int = 0


@dataclass(frozen=True)
class Stage:
    """One stage to train: its name, its YAML (for stage distorted: the distortion mixture) and its run folder."""

    name: str
    config: Path
    out: Path  # the trainer writes OUT/<name>/
    optimiser: Path | None = None  # a YAML whose `optim` section replaces the stage's own


def optimiser_overrides(config: Path | None) -> dict:
    return {} if config is None else {f"optim.{k}": v for k, v in asdict(build_config(config).optim).items()}


def stage_config(
    setup: TrainSetup, stage: Stage, preset: str, recipe: Recipe, steps: int, init_from: Path | None
) -> Config:
    """The stage's YAML, then the batch size, then the recipe, then this run's own settings."""
    logging_steps = max(1, min(100, steps // 10))
    infra = {
        "stage": stage.name,
        "preset": preset,
        "output_dir": str(stage.out),
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
        "mixed_precision": machine_precision(setup.device),
        "overwrite_output_dir": True,  # a rerun of the benchmark retrains (its calibration too)
    }
    overrides = {**optimiser_overrides(stage.optimiser), "train_batch_size": setup.train_batch_size}
    return build_config(stage.config, {**overrides, **recipe.overrides, **infra})


def machine_precision(device: str) -> str:
    """bf16 on a GPU and on a CPU that computes bf16 natively, fp32 elsewhere: what `accelerate launch` with
    configs/accelerate/cpu.yaml trains in, so every row of a benchmark trains at its machine's speed."""
    return "bf16" if device == "cuda" or cpu_bf16_instructions() else "no"


def steps_for_minutes(config: Config, minutes: float, device: str) -> int:
    """How many steps of this stage fit in `minutes`, from the speed of a short run of the same stage."""
    window = CALIBRATION_WINDOW[device]
    probe = copy.deepcopy(config)
    probe.train.output_dir = str(Path(config.train.output_dir) / "calibration")
    probe.train.max_train_steps = 2 * window
    probe.train.logging_steps = window
    probe.train.validation_steps = 10**9
    history = LoggedSteps()
    trainer = fit_in_process(probe.validate(), [history])
    images_per_s = history[1]["train/images_per_s"]
    return max(1, math.floor(minutes * 60 * images_per_s / trainer.images_per_step))


def budget_steps(
    setup: TrainSetup, stage: Stage, preset: str, recipe: Recipe, budget: Budget, init_from: Path | None
) -> int:
    """The steps `budget` gives this stage: as given, or as many as fit in its minutes at this stage's speed."""
    if budget.steps is not None:
        return budget.steps
    config = stage_config(setup, stage, preset, recipe, 1, init_from)
    return steps_for_minutes(config, budget.minutes, setup.device)


def run_stage(
    setup: TrainSetup, stage: Stage, preset: str, recipe: Recipe, budget: Budget, init_from: Path | None
) -> dict:
    """Train one stage for its budget; returns what it did and where its weights are."""
    steps = budget_steps(setup, stage, preset, recipe, budget, init_from)
    config = stage_config(setup, stage, preset, recipe, steps, init_from)
    print(
        f"[quality] {preset}/{recipe.name}: stage {stage.name} ({stage.config.name}), "
        f"{steps} steps of {config.train.train_batch_size}",
        flush=True,
    )
    start = time.perf_counter()
    history = LoggedSteps()
    trainer = fit_in_process(config, [history])
    seconds = time.perf_counter() - start
    last = history[-1] if history else {}
    del trainer  # its pixels and model live on the device: free them before the next run
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {
        "stage": stage.name,
        "config": str(stage.config),
        "steps": steps,
        "seconds": round(seconds, 1),
        "images_per_s": last.get("train/images_per_s"),
        "mixed_precision": config.train.mixed_precision,
        "train_batch_size": config.train.train_batch_size,
        "crop_size": config.data.crop_size,
        "final_loss": last.get("train/loss"),
        "weights": str(stage.out / stage.name / "model.safetensors"),
    }


def train_toolkit(
    setup: TrainSetup, preset: str, recipe: Recipe, schedule: str, budget: Budget, mixtures: list[Path]
) -> list[dict]:
    """Train `preset` with `recipe` under `schedule`, with one stage distorted per mixture (in order).

    Returns every stage trained; the stage distorted entries' weights are the ones to evaluate.
    """
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {schedule!r}; known: {', '.join(SCHEDULES)}")
    out = setup.work / "runs" / f"{preset}-{recipe.name}-{schedule}"
    clear = Stage("clear", setup.clear_config, out)
    if schedule == "two_stage":
        trained = run_stage(setup, clear, preset, recipe, budget, None)
        parent = Path(trained["weights"])
        distorted = [Stage("distorted", mixture, out / mixture.stem) for mixture in dict.fromkeys(mixtures)]
        return [trained, *(run_stage(setup, stage, preset, recipe, budget, parent) for stage in distorted)]
    torch.manual_seed(setup.seed)
    start = save_model(VAE(get_preset(preset)), out / "init" / "model.safetensors", {"stage": "init"})
    clear_steps = budget_steps(setup, clear, preset, recipe, budget, None)
    stages = []
    for mixture in dict.fromkeys(mixtures):
        stage = Stage("distorted", mixture, out / mixture.stem, optimiser=setup.clear_config)
        total = Budget(steps=clear_steps + budget_steps(setup, stage, preset, recipe, budget, start))
        stages.append(run_stage(setup, stage, preset, recipe, total, start))
    return stages
