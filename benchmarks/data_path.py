"""Images per second of the data path alone: pixel cache -> random crops -> distortions, on one device.

No model runs, so the numbers are the ceiling the data path puts on training speed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from vae_restore.config import DistortionConfig
from vae_restore.data.files import find_records
from vae_restore.data.sampler import CropSampler
from vae_restore.data.stage_data import clear_only, decode_in_memory, place
from vae_restore.distortions import DistortionMixture, distortions_from_config


@dataclass
class Row:
    name: str
    images_per_s: float  # wall clock, median batch
    ms_per_batch: float
    images_per_cpu_s: float  # per second of this process's CPU time: steadier than wall time on a shared machine


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batches(
    step: Callable[[], torch.Tensor], device: torch.device, steps: int, warmup: int
) -> tuple[float, float]:
    """(median wall seconds, mean process CPU seconds) per call of `step`, after `warmup` calls."""
    for _ in range(warmup):
        step()
    _sync(device)
    walls, cpu = [], time.process_time()
    for _ in range(steps):
        start = time.perf_counter()
        step()
        _sync(device)
        walls.append(time.perf_counter() - start)
    return statistics.median(walls), (time.process_time() - cpu) / steps


def benchmark_data_path(
    data: str | Path,
    device: str = "cpu",
    batch_size: int = 256,
    steps: int = 10,
    warmup: int = 2,
    crop_size: int = 128,
    mixtures: dict[str, DistortionConfig] | None = None,
    noise_sigma: tuple[float, float] = (5.0, 50.0),
    seed: int = 0,
) -> tuple[dict[str, float], list[Row]]:
    """(decode figures, one row per pipeline): crops only, each distortion alone, each named mixture."""
    dev = torch.device(device)
    records = clear_only(find_records(data))
    start = time.perf_counter()
    decoded = decode_in_memory(records, crop_size)
    decode_s = time.perf_counter() - start
    bank = place(decoded.target, dev)
    _sync(dev)
    info = {
        "images": len(bank),
        "decode_s": decode_s,
        "decode_images_per_s": len(bank) / decode_s,
        "cache_mb": bank.nbytes / 1e6,
    }
    generator = torch.Generator(dev).manual_seed(seed)
    sampler = CropSampler(bank, crop_size, generator)
    pipelines: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None] = {"crops only": None}
    pipelines.update({f"crops + {n}": fn for n, fn in distortions_from_config(DistortionConfig(), noise_sigma).items()})
    for name, config in (mixtures or {}).items():
        pipelines[f"crops + mixture {name}"] = DistortionMixture.from_config(config, noise_sigma)

    rows = []
    for name, distort in pipelines.items():

        def step(distort=distort) -> torch.Tensor:
            clear = sampler.sample(batch_size)[1]
            return clear if distort is None else distort(clear, generator)

        wall, cpu = time_batches(step, dev, steps, warmup)
        rows.append(Row(name, batch_size / wall, 1000 * wall, batch_size / cpu))
    return info, rows


def markdown_table(rows: list[Row]) -> str:
    lines = ["| pipeline | images/s | ms per batch | images per CPU-second |", "|---|---:|---:|---:|"]
    lines += [f"| {r.name} | {r.images_per_s:,.0f} | {r.ms_per_batch:.1f} | {r.images_per_cpu_s:,.0f} |" for r in rows]
    return "\n".join(lines)
