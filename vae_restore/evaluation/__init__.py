"""Evaluation: full-resolution tiled restoration, shared metrics, baselines and reports."""

from .runner import EvalOptions, evaluate

__all__ = ["EvalOptions", "evaluate"]
