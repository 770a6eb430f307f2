"""A JPEG round trip at a quality drawn per image (4:2:0 chroma, as cameras save), continuing in float.

On the CPU it is the real thing: Pillow's libjpeg-turbo, one image per thread (measured about 7× faster
than torchvision's CPU encoder at 128×128). On the GPU, `jpeg_codec` does JPEG's lossy steps to the whole
batch in torch, the same damage within a fraction of a level, with no copy to the host and no
synchronisation.
"""

from __future__ import annotations

import functools
import io
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

from .jpeg_codec import jpeg_roundtrip


def quantise(x: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] -> uint8, rounded (what a JPEG encoder is given)."""
    return (x.float() * 255.0).round_().clamp_(0, 255).to(torch.uint8)


def _roundtrip_one(image: np.ndarray, quality: int, out: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        out[...] = np.asarray(decoded.convert("RGB"))


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """libjpeg releases the GIL, so one thread per core encodes and decodes in parallel."""
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="jpeg")


def jpeg_roundtrip_cpu(images: torch.Tensor, qualities: list[int]) -> torch.Tensor:
    """uint8 (B, 3, H, W) CPU images through JPEG at the given qualities (4:2:0 chroma, as cameras save).

    Each image's result depends only on itself and its quality, so the threads keep it deterministic.
    """
    hwc = images.permute(0, 2, 3, 1).contiguous().numpy()
    out = np.empty_like(hwc)
    list(_pool().map(_roundtrip_one, hwc, [int(q) for q in qualities], out))
    return torch.from_numpy(out).permute(0, 3, 1, 2)


def jpeg_compression(x: torch.Tensor, quality: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """JPEG-compress each image at an integer quality drawn uniformly from `quality` (inclusive)."""
    qualities = torch.randint(int(quality[0]), int(quality[1]) + 1, (x.shape[0],), generator=generator, device=x.device)
    images = quantise(x)
    if x.is_cuda:
        return jpeg_roundtrip(images, qualities).to(x.dtype).div_(255.0)
    return jpeg_roundtrip_cpu(images, qualities.tolist()).to(x.dtype).div_(255.0)
