"""Loss terms kept on the device between logging points, so reading the loss never synchronises the loop.

Other per-step synchronisations: a distortion mixture with uncertain distortions, and `--max_bad_steps`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from ..errors import TrainingError

TERMS = ("loss", "reconstruction", "kl")


class AccumulationWindow:
    """Every micro-batch's terms summed over a gradient-accumulation window, so a NaN in any of them is seen."""

    def __init__(self, micro_batches: int):
        self.micro_batches = micro_batches
        self.total: torch.Tensor | None = None

    def add(self, terms, window_ends: bool) -> torch.Tensor | None:
        """Add one micro-batch's `LossTerms`; at the window's end, the window's mean (loss, reconstruction, kl)."""
        stacked = torch.stack([terms.loss.detach(), terms.reconstruction.detach(), terms.kl.detach()])
        self.total = stacked if self.total is None else self.total + stacked
        if not window_ends:
            return None
        mean, self.total = self.total / self.micro_batches, None
        return mean


def agreed_finite(accelerator, loss: torch.Tensor) -> bool:
    """Whether the loss is finite on every process (costs a synchronisation, hence only with --max_bad_steps)."""
    finite = accelerator.reduce(torch.isfinite(loss.detach()).float(), reduction="sum").item()
    return bool(finite == accelerator.num_processes)


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
