"""Resumable training state under RUN_DIR/checkpoints/checkpoint-<step>/: writing, reading, rotating
(what a resume does with it is `resume`).

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
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from ..models.io import CHECKPOINT_STATE_FILE, WEIGHTS_NAME

logger = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = CHECKPOINT_STATE_FILE
# trainer_state.json's layout. Version 1 (files without `format_version`) may lack everything but
# global_step and num_processes; version 2 records every key of `CheckpointState.to_json`.
FORMAT_VERSION = 2
# What a version-1 file left out reads as "not recorded": a resume checks only what the file holds.
V1_DEFAULTS = {
    "max_train_steps": None,
    "bad_steps": 0,
    "mixed_precision": None,
    "gradient_accumulation_steps": None,
    "settings": {},
    "parent": None,
    "segments": None,
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


@dataclass(frozen=True)
class CheckpointState:
    """What trainer_state.json holds besides the processes' layout: the counters, the settings a resume must
    match (`resume.resume_settings`), the steps the learning-rate schedule spans, and the weights stage
    distorted started from (so that a resume needs neither the parent file nor the same --init_from), and
    the run's segments: the step each start or resume began at, with its process count."""

    global_step: int
    bad_steps: int = 0
    settings: dict = field(default_factory=dict)
    parent: dict | None = None
    max_train_steps: int | None = None
    segments: list[dict] | None = None

    def to_json(self, accelerator) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "global_step": self.global_step,
            "max_train_steps": self.max_train_steps,
            "bad_steps": self.bad_steps,
            "num_processes": accelerator.num_processes,
            "mixed_precision": accelerator.mixed_precision,
            "gradient_accumulation_steps": accelerator.gradient_accumulation_steps,
            "settings": self.settings,
            "parent": self.parent,
            "segments": self.segments,
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


def save_checkpoint(
    accelerator, run_dir: Path, state: CheckpointState, data_generator: torch.Generator, ema=None
) -> Path:
    """Write checkpoint-<step> atomically; every process must call this."""
    step = state.global_step
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
        (tmp / STATE_FILE).write_text(json.dumps(state.to_json(accelerator)) + "\n")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(
    accelerator, path: Path, data_generator: torch.Generator, ema=None, shared_stream: bool = False
) -> None:
    """Restore every piece of state saved by `save_checkpoint` but trainer_state.json (`read_state`).
    `shared_stream`: every process drew from one data stream, so each reads process 0's (the count may differ)."""
    accelerator.load_state(str(path))
    rng_file = path / f"data_rng_{0 if shared_stream else accelerator.process_index}.safetensors"
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
