"""The original code's recipe, as it did it: whole images squeezed to 128×128, BCE + KL (β = 1), Adam 1e-3,
fp32, stage clear then stage distorted, and restoration by resizing to 128×128 and back.

Images are resized once up front (the same PIL resize the original DataLoader did every epoch: only
faster), and drawn uniformly with replacement. Stage distorted uses the toolkit's distortion mixture of
each stage-distorted config, one fine-tune per config as the toolkit rows get, so the comparison is
about the recipe, not the data.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from vae_restore.config import LossConfig
from vae_restore.config_io import build_config
from vae_restore.data.files import list_images
from vae_restore.distortions import DistortionMixture
from vae_restore.losses import vae_loss
from vae_restore.models import ORIGINAL, VAE

from .reference_loop import ResizedImages, readable_files

LOSS = LossConfig(reconstruction="bce", kl_weight=1.0)
LEARNING_RATE = 1e-3


def resized_images(folder: Path, device: torch.device, size: int = 128) -> torch.Tensor:
    """Every image of `folder`, whole, resized to size×size: N×3×S×S float in [0, 1] on `device`."""
    dataset = ResizedImages(readable_files(list_images(folder)), size)
    return torch.stack([dataset[i] for i in range(len(dataset))]).to(device)


Distort = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def mixture_of(config: Path) -> DistortionMixture:
    """The distortion mixture a stage-distorted config trains the toolkit on."""
    c = build_config(config)
    return DistortionMixture.from_config(c.distortions, c.data.noise_sigma)


def train_stage(
    model: VAE,
    images: torch.Tensor,
    steps: int | None,
    minutes: float | None,
    batch_size: int,
    distort: Distort | None,
    generator: torch.Generator,
) -> dict:
    """One stage: a fresh Adam, `steps` steps or as many as fit in `minutes`; `distort` None = stage clear."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    deadline = None if minutes is None else time.perf_counter() + 60 * minutes
    model.train()
    start, done = time.perf_counter(), 0
    while (steps is None or done < steps) and (deadline is None or time.perf_counter() < deadline):
        index = torch.randint(len(images), (batch_size,), generator=generator, device=images.device)
        clear = images[index]
        source = clear if distort is None else distort(clear, generator)
        terms = vae_loss(LOSS, model(source), clear)
        optimizer.zero_grad()
        terms.loss.backward()
        optimizer.step()
        done += 1
    seconds = time.perf_counter() - start
    return {"stage": "clear" if distort is None else "distorted", "steps": done, "seconds": round(seconds, 1)}


def train_original_code(
    train: Path,
    steps: int | None,
    minutes: float | None,
    batch_size: int,
    mixtures: list[Path],
    device: torch.device,
    seed: int = 0,
) -> tuple[dict[Path, VAE], list[dict]]:
    """Stage clear once, then stage distorted on each mixture from its weights.

    Returns the fine-tuned model of every mixture (eval mode) and what each stage did.
    """
    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    images = resized_images(train, device, ORIGINAL.image_size)
    clear = VAE(ORIGINAL).to(device)
    print("[quality] original code: stage clear", flush=True)
    stages = [train_stage(clear, images, steps, minutes, batch_size, None, generator)]
    models = {}
    for mixture in mixtures:
        print(f"[quality] original code: stage distorted ({mixture.name})", flush=True)
        models[mixture] = copy.deepcopy(clear)
        distort = mixture_of(mixture)
        stages.append(
            {
                **train_stage(models[mixture], images, steps, minutes, batch_size, distort, generator),
                "config": str(mixture),
            }
        )
        models[mixture].eval()
    return models, stages


def resize_restorer(model: VAE, device: torch.device):
    """Restore a whole H×W×3 image the original way: resize to 128×128, run the model, resize back."""
    size = model.preset.image_size

    def restore(image: np.ndarray) -> np.ndarray:
        from PIL import Image

        h, w = image.shape[:2]
        pixels = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
        small = np.asarray(Image.fromarray(pixels).resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
        batch = torch.from_numpy(small).permute(2, 0, 1)[None].to(device)
        restored = model.restore(batch).float()
        back = F.interpolate(restored, size=(h, w), mode="bilinear", align_corners=False)
        return back[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy().astype(np.float64)

    return restore
