"""What a resume does, in one place.

A run folder's checkpoints belong to one run, and a resume continues that run:
- `resolve_resume`: which checkpoint (`latest`, a path, a name), and when a new run is refused instead;
- `plan_resume`: before anything heavy starts, refuse a resume that changes the processes (unless the run
  draws a global batch), the precision, the accumulation or a setting that decides the network, the
  optimiser's path or the data stream;
- `restore`: set aside the checkpoints past the resumed one, load the state, and apply the two settings
  a resume may change (the learning rate and the clipping: the way past a divergence).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Config
from ..errors import CheckpointError
from ..models.io import WEIGHTS_NAME
from .checkpoints import (
    ABANDONED,
    STATE_FILE,
    checkpoints_dir,
    clear_earlier_run,
    complete_checkpoints,
    load_checkpoint,
    read_state,
)
from .run_setup import Parent

logger = logging.getLogger(__name__)

# What decides the network, the optimiser's path and the data stream: a resumed run may not change it.
RESUME_SECTIONS = ("model", "loss", "optim", "distortions")
RESUME_KEYS = (
    "train.seed",
    "train.train_batch_size",
    "train.global_batch_size",
    "data.crop_size",
    "data.noise_sigma",
    "data.synthetic_ratio",
)
# ... except these, which a resume may change (with a warning) to get past a divergence.
RESUME_MAY_CHANGE = ("optim.learning_rate", "optim.max_grad_norm")
# What a resumed run must share with the run that wrote the checkpoint, or it would not continue it.
MUST_MATCH = {
    "num_processes": "--num_processes",
    "mixed_precision": "--mixed_precision",
    "gradient_accumulation_steps": "--gradient_accumulation_steps",
}


def resume_settings(config: Config) -> dict:
    """The settings a checkpoint records, so that a resume can be checked against them. With a global batch
    the per-process batch follows the process count, which a resume may change."""
    keys = RESUME_KEYS
    if config.train.global_batch_size is not None:
        keys = tuple(k for k in keys if k != "train.train_batch_size")
    return {k: v for k, v in config.flat().items() if k.split(".")[0] in RESUME_SECTIONS or k in keys}


def resolve_resume(run_dir: Path, request: str | None, overwrite: bool = False) -> Path | None:
    """`latest` -> the newest complete checkpoint (None if there is none); a path, or a checkpoint's name
    under RUN_DIR/checkpoints, must exist. A new run refuses a folder holding an earlier run's checkpoints
    (its own would be rotated away in their favour, and `latest` would then resume the other run) or its
    final weights, unless `overwrite` (see `clear_earlier_run`)."""
    found = complete_checkpoints(run_dir)
    if request is None and found and not overwrite:
        raise CheckpointError(
            f"{checkpoints_dir(run_dir)} holds checkpoints of an earlier run (newest: {found[-1].name}): "
            "continue it with --resume_from_checkpoint latest, or start afresh in another --output_dir "
            "(or with --overwrite_output_dir)"
        )
    new_run = request is None or (request == "latest" and not found)
    if new_run and (run_dir / WEIGHTS_NAME).is_file() and not overwrite:
        what = f" ({WEIGHTS_NAME})" if request is None else " and no checkpoint to resume"
        raise CheckpointError(
            f"{run_dir} holds the weights of a finished run{what}: start afresh in another --output_dir, or "
            "replace that run with --overwrite_output_dir"
        )
    if request is None:
        return None
    if request == "latest":
        return found[-1] if found else None
    candidates = [Path(request), checkpoints_dir(run_dir) / request]  # a path, or a name under RUN_DIR/checkpoints
    complete = next((p for p in candidates if (p / STATE_FILE).is_file()), None)
    if complete is None:
        path = next((p for p in candidates if p.exists()), candidates[-1])
        what = f"is not a complete checkpoint (no {STATE_FILE})" if path.exists() else "does not exist"
        raise CheckpointError(f"{path} {what}; complete ones: {[p.name for p in found]}")
    return complete


def changed_settings(saved: dict, now: dict, may_change: tuple[str, ...] = ()) -> list[str]:
    """`--flag saved (this run: now)` for each setting a resume may not change (`resume_settings`)."""
    return [
        f"--{key.split('.')[-1]} {saved[key]} (this run: {now.get(key)})"
        for key in saved
        if key not in may_change and saved[key] != now.get(key)
    ]


def check_settings(path: Path, state: dict, settings: dict, accelerator, may_change: tuple[str, ...] = ()) -> None:
    """Refuse, before anything heavy starts, a resume whose processes (but for a global batch stream, on both
    sides), precision, accumulation or settings (but those of `may_change`) differ from those in the
    checkpoint's `state` (`read_state`)."""
    global_stream = settings.get("train.global_batch_size") is not None
    for key, flag in MUST_MATCH.items():
        now = getattr(accelerator, key)
        if key == "num_processes" and global_stream and state["settings"].get("train.global_batch_size"):
            continue  # checked as a setting below: the same global batch on another process count
        if state[key] is not None and state[key] != now:  # None: a version-1 file did not record it
            hint = " (runs with --global_batch_size resume on any count)" if key == "num_processes" else ""
            raise CheckpointError(
                f"{path} was written with {key} {state[key]}, this run has {now}: resume with {flag} {state[key]}{hint}"
            )
    as_written = json.loads(json.dumps(settings))  # tuples are lists in the file
    changed = changed_settings(state["settings"], as_written, may_change)
    if changed:
        raise CheckpointError(
            f"{path} was written with other settings: {'; '.join(changed)}. A resume continues the same run: "
            "pass the checkpoint's values, or start a new run in another --output_dir"
        )


@dataclass(frozen=True)
class ResumePlan:
    """The checkpoint a run continues, its trainer_state.json, and the parent it records (stage distorted)."""

    path: Path
    state: dict
    parent: Parent | None


def plan_resume(config: Config, accelerator) -> ResumePlan | None:
    """The checkpoint to resume, checked against this run; None for a new run."""
    t = config.train
    path = resolve_resume(config.run_dir, t.resume_from_checkpoint, t.overwrite_output_dir)
    if path is None:
        return None
    state = read_state(path)
    check_settings(path, state, resume_settings(config), accelerator, RESUME_MAY_CHANGE)
    if int(state["global_step"]) > t.max_train_steps:
        raise CheckpointError(
            f"{path} is at step {state['global_step']}, past --max_train_steps {t.max_train_steps}: "
            "resume with at least as many steps"
        )
    saved = state["parent"] if t.stage == "distorted" else None  # a version-1 checkpoint may have none
    return ResumePlan(path, state, Parent(Path(saved["path"]), saved["sha256"]) if saved else None)


def start_new_run(config: Config, accelerator) -> None:
    """--overwrite_output_dir clears the earlier run first; `latest` that finds nothing starts afresh."""
    t = config.train
    if t.overwrite_output_dir:  # asked for, or because there is nothing to resume
        if accelerator.is_main_process:
            clear_earlier_run(config.run_dir)
        accelerator.wait_for_everyone()
    if t.resume_from_checkpoint is not None:
        logger.warning("no complete checkpoint under %s: starting a new run", checkpoints_dir(config.run_dir))


def restore(
    plan: ResumePlan, config: Config, accelerator, generator: torch.Generator, ema, optimizer, scheduler
) -> int:
    """Continue the planned checkpoint's run in place; returns its bad-step count (the step is in the state)."""
    if accelerator.is_main_process:
        set_aside_later_checkpoints(config.run_dir, plan.path)
    accelerator.wait_for_everyone()
    load_checkpoint(accelerator, plan.path, generator, ema, shared_stream=config.train.global_batch_size is not None)
    step = int(plan.state["global_step"])
    scheduler.scheduler.last_epoch = step * accelerator.num_processes  # counted per process: the count may change
    accelerator.print(f"resumed from {plan.path} at step {step}")
    apply_changed_optim_settings(config, plan.state["settings"], optimizer, scheduler, step)
    planned, schedule, steps = plan.state["max_train_steps"], config.optim.lr_scheduler, config.train.max_train_steps
    if planned not in (None, steps) and schedule != "constant":
        logger.warning(
            "the %s learning-rate schedule was planned over %d steps and now spans --max_train_steps %d: "
            "from step %d on it follows the new schedule, so the learning rate jumps there",
            schedule,
            planned,
            steps,
            step,
        )
    return int(plan.state["bad_steps"])


def apply_changed_optim_settings(config: Config, saved: dict, optimizer, scheduler, step: int) -> None:
    """A resume may lower the learning rate or clip harder (the way past a divergence): the schedule is
    rescaled to the new peak from the resumed step on; --max_grad_norm is read every step anyway."""
    now = resume_settings(config)
    for key in RESUME_MAY_CHANGE:
        if key in saved and saved[key] != now[key]:
            logger.warning(
                "resumed with --%s %s instead of the checkpoint's %s: from step %d on this run no longer "
                "repeats the interrupted one",
                key.split(".")[-1],
                now[key],
                saved[key],
                step,
            )
    plain = scheduler.scheduler  # Accelerate's wrapper around the LambdaLR
    lr = config.optim.learning_rate
    plain.base_lrs = [lr] * len(plain.base_lrs)
    for group, rule in zip(optimizer.param_groups, plain.lr_lambdas, strict=True):
        group["initial_lr"], group["lr"] = lr, lr * rule(plain.last_epoch)


def earlier_segments(state: dict) -> list[dict]:
    """The segments a checkpoint's run went through; one from step 0 where the file predates them."""
    return state.get("segments") or [{"from_step": 0, "num_processes": state["num_processes"]}]


def set_aside_later_checkpoints(run_dir: Path, resumed: Path) -> list[Path]:
    """Move the checkpoints past `resumed` (the future of the timeline a resume abandons, e.g. after a
    divergence) to RUN_DIR/checkpoints-abandoned/: left in place, they would count as the newest, so
    rotation would delete the resumed run's own checkpoints and `latest` would return to them."""
    found = complete_checkpoints(run_dir)  # oldest first
    resolved = [p.resolve() for p in found]
    if resumed.resolve() not in resolved:  # a checkpoint of another run folder
        return []
    later = found[resolved.index(resumed.resolve()) + 1 :]
    moved = []
    for path in later:
        target = run_dir / ABANDONED / path.name
        while target.exists():
            target = target.with_name(target.name + "+")
        target.parent.mkdir(exist_ok=True)
        moved.append(path.rename(target))
        logger.warning("resumed from %s: the later %s is moved to %s", resumed.name, path.name, target)
    return moved
