"""Where one training step's time goes: the trainer's own step (data path, model, loss, optimizer), timed
whole and data-only, then one `torch.profiler` table of its kernels, heaviest first.

The throughput benchmark says how fast; this says which kernels to look at next.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from vae_restore.training import Trainer

from .in_process import reset_accelerate_state
from .throughput import benchmark_config


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def mean_ms(fn: Callable[[], object], repeats: int) -> float:
    _sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync()
    return (time.perf_counter() - start) / repeats * 1e3


def profile_step(
    data: Path,
    batch_size: int,
    compile_mode: str | None,
    workdir: Path,
    mixture_yaml: Path | None = None,
    warmup: int = 30,
    timed: int = 50,
    profiled: int = 10,
    row_limit: int = 35,
    pad_channels_to: int = 0,
) -> str:
    """A report: ms per full step and per data-only step, then the kernels of `profiled` steps by self time."""
    cuda = torch.cuda.is_available()
    steps = warmup + 2 * timed + profiled
    mixed = "bf16" if cuda else "no"
    config = benchmark_config(data, batch_size, steps, mixed, compile_mode, workdir, mixture_yaml, pad_channels_to)
    reset_accelerate_state()
    trainer = Trainer(config)
    trainer.model.train()
    for _ in range(warmup):
        trainer.train_step()
    step_ms, data_ms = mean_ms(trainer.train_step, timed), mean_ms(trainer.next_batch, timed)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(profiled):
            trainer.train_step()
        _sync()
    table = prof.key_averages().table(
        sort_by="self_device_time_total" if cuda else "self_cpu_time_total",
        row_limit=row_limit,
        max_name_column_width=90,
    )
    return (
        f"batch {batch_size}, {'compiled (' + compile_mode + ')' if compile_mode else 'eager'}"
        f"{f', RGB channels padded to {pad_channels_to}' if pad_channels_to else ''}: "
        f"full step {step_ms:.2f} ms ({batch_size / step_ms * 1e3:,.0f} images/s), data path alone {data_ms:.2f} ms\n"
        f"kernels of {profiled} steps:\n{table}"
    )
