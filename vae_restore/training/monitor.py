"""Loss terms kept on the device between logging points, so reading the loss never synchronises the loop.

Other per-step synchronisations: a distortion mixture with uncertain distortions, and `--max_bad_steps`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from ..errors import TrainingError

TERMS = ("loss", "reconstruction", "kl")


class LossWindow:
    """The per-step (loss, reconstruction, kl) since the last flush, with the wall time they took."""

    def __init__(self, first_step: int):
        self.reset(first_step)

    def reset(self, first_step: int) -> None:
        self.first_step = first_step
        self.steps: list[torch.Tensor] = []
        self.clock = time.perf_counter()

    def add(self, terms: torch.Tensor) -> None:
        self.steps.append(terms)

    def flush(
        self, next_step: int, across_processes: Callable[[torch.Tensor], torch.Tensor] = lambda t: t
    ) -> tuple[torch.Tensor, float, int] | None:
        """(stacked terms, seconds, steps) since the last flush, or None when empty; raises on a NaN/Inf loss.

        `across_processes` averages the terms over the processes before the check: a NaN on any process is
        then a NaN on all of them, so every process stops at the same step with the same message.
        """
        if not self.steps:
            return None
        stacked = across_processes(torch.stack(self.steps))
        bad = (~torch.isfinite(stacked[:, 0])).nonzero()
        if len(bad):
            raise NonFiniteLoss(self.first_step + int(bad[0]), float(stacked[int(bad[0]), 0]))
        result = stacked, time.perf_counter() - self.clock, len(self.steps)
        self.reset(next_step)
        return result


class NonFiniteLoss(TrainingError):
    def __init__(self, step: int, value: float):
        super().__init__(f"loss became {value} at step {step}")
        self.step = step
