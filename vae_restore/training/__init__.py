"""The Accelerate training loop, its checkpoints and its trackers."""

from .trainer import Trainer, fit_in_process, reset_accelerate_state, resolve_parent, train

__all__ = ["Trainer", "fit_in_process", "reset_accelerate_state", "resolve_parent", "train"]
