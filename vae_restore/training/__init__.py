"""The Accelerate training loop, its checkpoints and its trackers."""

from .trainer import Trainer, resolve_parent, train

__all__ = ["Trainer", "resolve_parent", "train"]
