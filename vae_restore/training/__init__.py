"""The Accelerate training loop, its checkpoints and its trackers."""

from .trainer import Trainer, TrainingCallback, resolve_parent, train

__all__ = ["Trainer", "TrainingCallback", "resolve_parent", "train"]
