"""Train the damage detector that routes images between the bundled models.

Clear images -> random crops -> each damage group applied to a crop independently (the training mixture's
own distortions) -> 8-bit rounding -> one binary label per group. No Accelerate: the network is small and
trains on a CPU in minutes. `launch/train_detector.py` is its command.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save
from torch.nn import functional as F

from ..config import DistortionConfig
from ..data.decode import decode_rgb
from ..data.embedded import embedded_images
from ..data.listing import list_images
from ..distortions import distortions_from_config
from ..errors import ConfigError, DataError, TrainingError
from ..models.damage_detector_arch import DamageDetector

DETECTOR_WEIGHTS = "detector.safetensors"
LOG = functools.partial(print, flush=True)  # progress lines reach a log file as they happen


@dataclass
class DetectorConfig:
    """The damage detector's training: what it sees and for how long."""

    train_data_dir: str | None = None  # folder of clear images (searched recursively); default: the embedded samples
    output_dir: str = "runs/detector"  # folder for detector.safetensors and detector.onnx (+ manifest)
    max_train_steps: int = 1500  # optimiser steps
    train_batch_size: int = 32  # crops per step
    resolution: int = 128  # side of the square training crops, in pixels
    learning_rate: float = 1e-3  # Adam's learning rate
    damage_probability: float = 0.35  # chance that a crop gets each damage group, drawn per group
    noise_sigma: tuple[float, float] = (5.0, 50.0)  # range of gaussian noise sigma, in 8-bit levels
    jpeg_quality: tuple[int, int] = (10, 60)  # range of JPEG quality
    width: int = 24  # channels of the first convolutions (doubled at 1/2 scale, quadrupled below)
    seed: int = 0  # seeds the weights, the crops and the damage: one seed, one detector

    def __post_init__(self) -> None:
        for name in ("max_train_steps", "train_batch_size", "resolution", "width"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.resolution < 8:
            raise ConfigError(f"resolution must be at least 8 (the detector works at 1/8 scale), got {self.resolution}")
        if not 0.0 < self.damage_probability < 1.0:
            raise ConfigError(f"damage_probability must be between 0 and 1, got {self.damage_probability}")


def load_images(config: DetectorConfig) -> list[np.ndarray]:
    """The clear images (uint8 H×W×3) a crop fits in; a folder without any is an error that says so."""
    if config.train_data_dir is None:
        images = [image for _, image in embedded_images()]
    else:
        images = [decode_rgb(path) for path in list_images(Path(config.train_data_dir))]
    fitting = [image for image in images if min(image.shape[:2]) >= config.resolution]
    if not fitting:
        source = config.train_data_dir or "the embedded samples"
        raise DataError(
            f"no image in {source} is at least {config.resolution} pixels on its short side; "
            "lower --resolution or add larger images"
        )
    return fitting


def damaged_batch(images: list[np.ndarray], config: DetectorConfig, functions: dict, generator: torch.Generator):
    """(N×3×S×S crops in [0, 1], N×groups labels): each group's damage applied to the crops its label marks."""
    size, crops = config.resolution, []
    for _ in range(config.train_batch_size):
        image = images[int(torch.randint(len(images), (1,), generator=generator))]
        top = int(torch.randint(image.shape[0] - size + 1, (1,), generator=generator))
        left = int(torch.randint(image.shape[1] - size + 1, (1,), generator=generator))
        crops.append(image[top : top + size, left : left + size])
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
    groups = list(functions)
    labels = torch.rand(len(crops), len(groups), generator=generator) < config.damage_probability
    for k, name in enumerate(groups):
        chosen = labels[:, k].nonzero().squeeze(1)
        if chosen.numel():
            x = x.index_copy(0, chosen, functions[name](x.index_select(0, chosen), generator))
    return (x * 255).round() / 255, labels.float()  # as an 8-bit image file would hold it


def train_detector(config: DetectorConfig, log=LOG) -> DamageDetector:
    """Train from `config.seed` (the same config gives the same weights) and return the model in eval mode.

    Raises:
        DataError: no usable training image.
        TrainingError: the loss became NaN or infinite.
    """
    images = load_images(config)
    all_functions = distortions_from_config(DistortionConfig(jpeg_quality=config.jpeg_quality), config.noise_sigma)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = DamageDetector(config.width)
    functions = {name: all_functions[name] for name in model.groups}
    optimizer = torch.optim.Adam(model.parameters(), config.learning_rate)
    start = time.perf_counter()
    for step in range(config.max_train_steps):
        x, labels = damaged_batch(images, config, functions, generator)
        loss = F.binary_cross_entropy_with_logits(model(x), labels)
        if not torch.isfinite(loss):
            raise TrainingError(f"the detector's loss is {loss.item()} at step {step}; lower --learning_rate")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == config.max_train_steps - 1:
            log(f"step {step} loss {loss.item():.4f} ({time.perf_counter() - start:.0f} s)")
    return model.eval()


def save_detector(model: DamageDetector, config: DetectorConfig) -> Path:
    """Write the weights atomically, with the groups, the width and the training config in the metadata."""
    path = Path(config.output_dir) / DETECTOR_WEIGHTS
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "groups": json.dumps(list(model.groups)),
        "width": str(config.width),
        "config": json.dumps(dataclasses.asdict(config), sort_keys=True),
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(save({k: v.contiguous() for k, v in model.state_dict().items()}, metadata=metadata))
    os.replace(tmp, path)
    return path
