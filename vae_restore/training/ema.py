"""Exponential moving average of the weights: smoother than the last step's weights, usually better images.

The average lives in a copy of the model on the training device, is updated after every optimizer step,
and is saved in each checkpoint (as safetensors) so a resumed run continues it bit for bit. When it is
enabled, validation, `model.safetensors` and therefore export and evaluation use the averaged weights.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import CheckpointError

EMA_FILE = "ema.safetensors"


def ema_decay_at(decay: float, step: int) -> float:
    """min(decay, (1 + step) / (10 + step)): early steps follow the weights closely, so short runs are not
    dominated by the initial weights (the warm-up diffusers' EMAModel uses without `use_ema_warmup`)."""
    return min(decay, (1 + step) / (10 + step))


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """average ← average + (1 - d)·(weights - average), d = `ema_decay_at(decay, updates)`."""
        d = ema_decay_at(self.decay, self.updates)
        averaged = [p for p in self.model.parameters()]
        current = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(averaged, current, 1.0 - d)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {k: v.detach().contiguous() for k, v in self.model.state_dict().items()}
        state["__updates__"] = torch.tensor(self.updates, dtype=torch.int64)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        self.updates = int(state.pop("__updates__"))
        self.model.load_state_dict(state)

    def save(self, folder: Path) -> None:
        save_file({k: v.cpu() for k, v in self.state_dict().items()}, str(folder / EMA_FILE))

    def load(self, folder: Path) -> None:
        path = folder / EMA_FILE
        if not path.is_file():
            raise CheckpointError(
                f"{path} is missing: the checkpoint was written without --ema_decay; resume it with --ema_decay 0"
            )
        device = next(self.model.parameters()).device
        self.load_state_dict({k: v.to(device) for k, v in load_file(str(path)).items()})
