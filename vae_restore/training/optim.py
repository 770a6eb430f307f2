"""Optimizer and learning-rate schedule (linear warm-up, then constant, linear or cosine decay)."""

from __future__ import annotations

import math

import torch

from ..config import OptimConfig


def build_optimizer(params, config: OptimConfig, fused: bool) -> torch.optim.Optimizer:
    """Adam or AdamW; the fused CUDA kernel is used when the parameters live on a GPU."""
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(
        params,
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_epsilon,
        weight_decay=config.adam_weight_decay,
        fused=fused or None,
    )


def lr_multiplier(step: int, warmup: int, total: int, kind: str) -> float:
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if kind == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int, num_processes: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Accelerate steps a prepared scheduler once per process per optimizer step; the rate follows optimizer
    steps (its count divided by the processes), so the schedule is the same on any process count."""
    warmup, kind = config.lr_warmup_steps, config.lr_scheduler
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda count: lr_multiplier(count // num_processes, warmup, total_steps, kind)
    )
