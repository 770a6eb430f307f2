"""Checks that fail before training rather than after an hour of it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..errors import TrainingError

ADAM_COPIES = 2  # exp_avg and exp_avg_sq beside the weights in every checkpoint


def required_bytes(
    num_parameters: int,
    max_train_steps: int,
    checkpointing_steps: int,
    checkpoints_kept: int | None,
    ema: bool = False,
) -> int:
    """Disk the run can fill: the checkpoints alive at once, plus the final weights (EMA ones when enabled).

    A checkpoint holds fp32 weights, the Adam state and the EMA copy when enabled. The run writes one
    per `checkpointing_steps` and may write one more when preempted; rotation runs after a save, so
    up to `checkpoints_kept + 1` exist at once.
    """
    weights = num_parameters * 4
    per_checkpoint = weights * (1 + ADAM_COPIES + int(ema))
    written = max_train_steps // checkpointing_steps + 1
    alive = written if checkpoints_kept is None else min(written, checkpoints_kept + 1)
    return per_checkpoint * alive + weights


def check_output_dir(run_dir: Path, needed: int) -> None:
    """The run folder must be creatable, writable and have room for the checkpoints.

    Every process of a run checks at once, so each writes a probe of its own (a shared name would be
    deleted by one process while another still uses it).
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_dir, prefix=".write-test-") as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
    except OSError as e:
        raise TrainingError(
            f"output folder {run_dir} is not writable ({e.strerror or e}); choose another with --output_dir"
        ) from None
    free = shutil.disk_usage(run_dir).free
    if free < needed:
        raise TrainingError(
            f"output folder {run_dir} has {free / 2**20:.0f} MiB free; this run needs about "
            f"{needed / 2**20:.0f} MiB for its checkpoints and weights. Free space, lower "
            "--checkpoints_total_limit or choose another --output_dir"
        )
