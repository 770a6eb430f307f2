"""A real JPEG round trip: encode at a quality drawn per image, decode, continue in float.

JPEG is inherently one image at a time. On the CPU it runs through PIL (libjpeg-turbo; measured
about 7× faster than torchvision's CPU encoder at 128×128, whose image I/O is deprecated since 0.29).
On CUDA tensors it uses torchvision's nvJPEG encoder (one call per distinct quality) and one batched
decode, and falls back to the CPU when that is not available.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

logger = logging.getLogger(__name__)


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


def jpeg_roundtrip_torchvision(images: torch.Tensor, qualities: list[int]) -> torch.Tensor:
    """The same with torchvision's codec on the images' device (nvJPEG on CUDA tensors).

    The encoder takes one quality per call, so images are encoded in groups of equal quality; the
    decoder reads host bytes, so ALL encoded images then cross to the host in one copy (one
    synchronisation per batch, not one per quality) and are decoded in one batched call.
    """
    from torchvision.io import decode_jpeg, encode_jpeg

    by_quality: dict[int, list[int]] = {}
    for i, q in enumerate(qualities):
        by_quality.setdefault(int(q), []).append(i)
    encoded: list[torch.Tensor] = [images.new_empty(0)] * len(qualities)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for q, idx in by_quality.items():
            for i, data in zip(idx, encode_jpeg([images[i].contiguous() for i in idx], quality=q), strict=True):
                encoded[i] = data
        host = torch.cat(encoded).cpu().split([len(e) for e in encoded])
        return torch.stack(decode_jpeg(list(host), device=images.device))


_cuda_jpeg_failed = False


def jpeg_compression(x: torch.Tensor, quality: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """JPEG-compress each image at an integer quality drawn uniformly from `quality` (inclusive)."""
    global _cuda_jpeg_failed
    lo, hi = int(quality[0]), int(quality[1])
    qualities = torch.randint(lo, hi + 1, (x.shape[0],), generator=generator, device=x.device).tolist()
    images = quantise(x)
    if x.is_cuda and not _cuda_jpeg_failed:
        try:
            return jpeg_roundtrip_torchvision(images, qualities).to(x.dtype).div_(255.0)
        except (RuntimeError, NotImplementedError, ValueError) as e:
            _cuda_jpeg_failed = True
            logger.warning("torchvision's GPU JPEG is unavailable (%s): JPEG runs on the CPU", e)
    return jpeg_roundtrip_cpu(images.cpu(), qualities).to(x.device, x.dtype).div_(255.0)
