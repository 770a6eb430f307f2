"""Checks that fail before training rather than after an hour of it."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import TrainingError

ADAM_COPIES = 2  # exp_avg and exp_avg_sq beside the weights in every checkpoint


def required_bytes(num_parameters: int, checkpoints_kept: int | None) -> int:
    """fp32 weights + Adam state per checkpoint (one more kept while the next is written), plus the final weights."""
    per_checkpoint = num_parameters * 4 * (1 + ADAM_COPIES)
    kept = (checkpoints_kept or 1) + 1
    return per_checkpoint * kept + num_parameters * 4


def check_output_dir(run_dir: Path, needed: int) -> None:
    """The run folder must be creatable, writable and have room for the checkpoints."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"\0" * 4096)
        probe.unlink()
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
