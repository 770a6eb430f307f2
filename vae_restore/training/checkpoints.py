"""Resumable training state under RUN_DIR/checkpoints/checkpoint-<step>/.

A checkpoint is written into `checkpoint-<step>.tmp` by every process and renamed into place by the
main process once all have finished, so a folder named `checkpoint-<step>` is always complete.
Besides `accelerator.save_state` (model, optimizer, scheduler, scaler, per-process RNGs) each
process stores the generator of its data stream, as safetensors rather than a pickle, and the main
process the weights' moving average when there is one (`ema.safetensors`).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from ..models.io import CHECKPOINT_STATE_FILE, WEIGHTS_NAME

logger = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = CHECKPOINT_STATE_FILE
# trainer_state.json's layout. Version 1 (files without `format_version`) may lack everything but
# global_step and num_processes; version 2 records every key of `run_state`.
FORMAT_VERSION = 2
# What a version-1 file left out reads as "not recorded": a resume checks only what the file holds.
V1_DEFAULTS = {
    "max_train_steps": None,
    "bad_steps": 0,
    "mixed_precision": None,
    "gradient_accumulation_steps": None,
    "settings": {},
    "parent": None,
}


def checkpoints_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of an interrupted save are ignored)."""
    folder = checkpoints_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_RE.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found) if (p / STATE_FILE).is_file()]


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


# What a resumed run must share with the run that wrote the checkpoint, or it would not continue it.
MUST_MATCH = {
    "num_processes": "--num_processes",
    "mixed_precision": "--mixed_precision",
    "gradient_accumulation_steps": "--gradient_accumulation_steps",
}


def run_state(
    accelerator,
    step: int,
    bad_steps: int = 0,
    settings: dict | None = None,
    parent: dict | None = None,
    max_train_steps: int | None = None,
) -> dict:
    """trainer_state.json: the counters, what a resume must match, the steps the learning-rate schedule spans,
    and the weights stage distorted started from (so that a resume needs neither the parent file nor the
    same --init_from)."""
    return {
        "format_version": FORMAT_VERSION,
        "global_step": step,
        "max_train_steps": max_train_steps,
        "bad_steps": bad_steps,
        "num_processes": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
        "gradient_accumulation_steps": accelerator.gradient_accumulation_steps,
        "settings": settings or {},
        "parent": parent,
    }


def read_state(path: Path) -> dict:
    """A checkpoint's trainer_state.json in the current layout, whatever version wrote it."""
    state = json.loads((path / STATE_FILE).read_text())
    version = state.get("format_version", 1)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path / STATE_FILE} has format_version {version}, newer than this code reads ({FORMAT_VERSION}): "
            "resume it with the version of vae-restore that wrote it"
        )
    return {**V1_DEFAULTS, **state, "format_version": FORMAT_VERSION} if version == 1 else state


def changed_settings(saved: dict, now: dict, may_change: tuple[str, ...] = ()) -> list[str]:
    """`--flag saved (this run: now)` for each setting a resume may not change (`resume_settings`)."""
    return [
        f"--{key.split('.')[-1]} {saved[key]} (this run: {now.get(key)})"
        for key in saved
        if key not in may_change and saved[key] != now.get(key)
    ]


def save_checkpoint(
    accelerator,
    run_dir: Path,
    step: int,
    data_generator: torch.Generator,
    ema=None,
    bad_steps: int = 0,
    settings: dict | None = None,
    parent: dict | None = None,
    max_train_steps: int | None = None,
) -> Path:
    """Write checkpoint-<step> atomically; every process must call this."""
    final = checkpoints_dir(run_dir) / f"checkpoint-{step}"
    tmp = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    save_file(
        {"state": data_generator.get_state()},
        str(tmp / f"data_rng_{accelerator.process_index}.safetensors"),
        metadata={"global_step": str(step)},
    )
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if ema is not None:
            ema.save(tmp)
        state = run_state(accelerator, step, bad_steps, settings, parent, max_train_steps)
        (tmp / STATE_FILE).write_text(json.dumps(state) + "\n")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    accelerator.wait_for_everyone()
    return final


def check_settings(path: Path, state: dict, settings: dict, accelerator, may_change: tuple[str, ...] = ()) -> None:
    """Refuse, before anything heavy starts, a resume whose processes, precision, accumulation or settings
    (but those of `may_change`) differ from those in the checkpoint's `state` (`read_state`)."""
    now = run_state(accelerator, state["global_step"])
    for key, flag in MUST_MATCH.items():
        if state[key] is not None and state[key] != now[key]:  # None: a version-1 file did not record it
            raise CheckpointError(
                f"{path} was written with {key} {state[key]}, this run has {now[key]}: resume with {flag} {state[key]}"
            )
    as_written = json.loads(json.dumps(settings))  # tuples are lists in the file
    changed = changed_settings(state["settings"], as_written, may_change)
    if changed:
        raise CheckpointError(
            f"{path} was written with other settings: {'; '.join(changed)}. A resume continues the same run: "
            "pass the checkpoint's values, or start a new run in another --output_dir"
        )


def load_checkpoint(accelerator, path: Path, state: dict, data_generator: torch.Generator, ema=None) -> None:
    """Restore every piece of state saved by `save_checkpoint` (`state`: its trainer_state.json, read once
    and checked by `check_settings`)."""
    accelerator.load_state(str(path))
    rng_file = path / f"data_rng_{accelerator.process_index}.safetensors"
    if not rng_file.is_file():
        raise CheckpointError(f"{rng_file} is missing: the checkpoint is incomplete")
    data_generator.set_state(load_file(str(rng_file))["state"])
    if ema is not None:
        ema.load(path)


ABANDONED = "checkpoints-abandoned"
EARLIER_RUN_FOLDERS = ("checkpoints", ABANDONED, "samples", "logs", "wandb")


def clear_earlier_run(run_dir: Path) -> None:
    """--overwrite_output_dir: what an earlier run left that the new one would mix with (checkpoints,
    weights, sample grids, tracker logs, its config.json) goes before the new run writes anything."""
    for name in EARLIER_RUN_FOLDERS:
        shutil.rmtree(run_dir / name, ignore_errors=True)
    for name in (WEIGHTS_NAME, "config.json"):
        (run_dir / name).unlink(missing_ok=True)


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


def rotate_checkpoints(run_dir: Path, keep: int | None, protect: Path | None = None) -> list[Path]:
    """Delete the oldest complete checkpoints beyond `keep`, never `protect` nor the newest one."""
    if keep is None:
        return []
    found = complete_checkpoints(run_dir)
    removable = [p for p in found[:-1] if protect is None or p.resolve() != protect.resolve()]
    excess = max(0, len(found) - keep)
    removed = removable[:excess]
    for path in removed:
        shutil.rmtree(path)
        logger.info("removed old checkpoint %s (checkpoints_total_limit=%d)", path, keep)
    return removed
