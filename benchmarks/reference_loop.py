"""The original project's way of feeding the model, kept as the baseline the trainer is measured against:
PIL open + resize of whole images in a DataLoader, fp32, batch 64, Gaussian noise added on the device."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, RandomSampler

from vae_restore.config import LossConfig
from vae_restore.data.stage_data import header_sizes
from vae_restore.errors import DataError
from vae_restore.losses import vae_loss
from vae_restore.models import VAE

logger = logging.getLogger(__name__)


def readable_files(files: list[Path]) -> list[Path]:
    """The files whose header opens. The original loop would stop at the first bad file; the trainer skips
    bad files, so the baselines it is compared with skip them too."""
    sizes = header_sizes(files)
    readable = [p for p in files if sizes[p] is not None]
    if len(readable) < len(files):
        bad = next(p for p in files if sizes[p] is None)
        logger.warning("skipping %d unreadable file(s), e.g. %s", len(files) - len(readable), bad)
    if not readable:
        raise DataError(f"none of the {len(files)} image file(s) opens")
    return readable


class ResizedImages(Dataset):
    def __init__(self, files: list[Path], size: int = 128):
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.files[i]) as image:
            array = np.asarray(image.convert("RGB").resize((self.size, self.size), Image.BILINEAR))
        return torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255.0


def reference_throughput(
    files: list[Path],
    device: torch.device,
    batch_size: int = 64,
    workers: int | None = None,
    warmup_steps: int | None = None,
    measure_steps: int = 50,
    sigma: float = 25.0,
) -> dict:
    """Images/s of the original-style loop in steady state, after `warmup_steps` (default: as many as are
    timed, at most 10: the loader's workers and the allocator settle within a few batches)."""
    workers = os.cpu_count() if workers is None else workers
    warmup_steps = min(10, measure_steps) if warmup_steps is None else warmup_steps
    dataset = ResizedImages(files)
    total = warmup_steps + measure_steps
    sampler = RandomSampler(dataset, replacement=True, num_samples=total * batch_size)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers)
    model = VAE().to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_config = LossConfig(reconstruction="bce", kl_weight=1.0)
    steps, start = 0, time.perf_counter()
    for steps, clear in enumerate(loader, start=1):
        clear = clear.to(device)
        noisy = (clear + torch.randn_like(clear) * sigma / 255.0).clamp(0, 1)
        loss = vae_loss(loss_config, model(noisy), clear).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()  # the original loop read the loss every step
        if steps == warmup_steps:
            start = time.perf_counter()
    seconds = time.perf_counter() - start
    if steps != total:
        raise RuntimeError(f"reference loop ran {steps} steps, expected {total}")
    return {
        "pipeline": "original-style (PIL open+resize in DataLoader, fp32)",
        "batch_size": batch_size,
        "workers": workers,
        "images_per_s": measure_steps * batch_size / seconds,
        "timed_steps": measure_steps,
    }
