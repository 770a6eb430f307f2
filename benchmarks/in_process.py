"""Several training runs in one Python process, each step's logged metrics kept (benchmarks, tests).

`accelerate launch` starts one process per run; a benchmark that trains run after run in one process
must first forget Accelerate's process-wide singletons, or the next `Accelerator` inherits the last.
"""

from __future__ import annotations

from collections.abc import Iterable

from accelerate.state import AcceleratorState, GradientState

from vae_restore.config import Config
from vae_restore.training import Trainer, TrainingCallback


class LoggedSteps(list):
    """A trainer callback that keeps every logged step's metrics (`step` included), oldest first."""

    def __call__(self, step: int, logs: dict[str, float]) -> None:
        self.append({"step": step, **logs})


def reset_accelerate_state() -> None:
    """Forget Accelerate's process-wide singletons, so another `Trainer` can start in this process."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def fit_in_process(config: Config, callbacks: Iterable[TrainingCallback] = ()) -> Trainer:
    """Run one stage after others in the same process; returns the finished trainer."""
    reset_accelerate_state()
    trainer = Trainer(config, callbacks=callbacks)
    trainer.fit()
    return trainer
