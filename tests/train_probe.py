"""`launch/train.py` with a trainer callback that records who trained, for tests under `accelerate launch`.

Each process writes RUN_DIR/probe-<rank>.json at the end: its rank, its OS process id, the steps its
callback saw with their losses, and the sum of the first batch it read (a fingerprint: processes must read
their own crops).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from vae_restore.cli_common import run_with_clear_errors

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def read_probes(run_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(run_dir.glob("probe-*.json"))]


def main() -> int:
    from vae_restore.config_cli import add_config_arguments, config_from_args, stage_yaml
    from vae_restore.training import Trainer

    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_config_arguments(parser)
    args = parser.parse_args()
    config = config_from_args(args, stage_yaml(CONFIGS, getattr(args, "stage", "clear")))
    logged: list[tuple[int, float]] = []
    trainer = Trainer(config, callbacks=[lambda step, logs: logged.append((step, logs["train/loss"]))])
    first: list[float] = []
    next_batch = trainer.next_batch

    def fingerprinted_batch():
        batch = next_batch()
        if not first:
            first.append(float(batch.source.double().sum()))
        return batch

    trainer.next_batch = fingerprinted_batch
    trainer.fit()
    rank = trainer.accelerator.process_index
    probe = {
        "rank": rank,
        "pid": os.getpid(),
        "logged_steps": [step for step, _ in logged],
        "losses": [loss for _, loss in logged],
        "first_batch_sum": first[0] if first else None,
    }
    (config.run_dir / f"probe-{rank}.json").write_text(json.dumps(probe))
    return 0


if __name__ == "__main__":
    sys.exit(run_with_clear_errors(main))
