"""Decode any image file to RGB uint8 H×W×3, or say clearly why it can't be.

Every failure of the decoder on a bad file (corrupt, truncated, empty, not an image, too large)
becomes a `DataError` that names the file, so callers can skip it or stop, never crash.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps

from ..errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
# float data maxing out at or below this is [0, 1] (overshoot from resampling or HDR clipped), above it 0-255
FLOAT_UNIT_MAX = 1.5

T = TypeVar("T")
R = TypeVar("R")


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def _wide_gray(image: Image.Image) -> np.ndarray:
    """16/32-bit integer and float greyscale scaled to 8 bits (an `I` image above 255 is taken as 16-bit).

    A float image is [0, 1] data up to a maximum of `FLOAT_UNIT_MAX`, so one pixel slightly above 1
    does not switch the whole image to a 0-255 scale (and make it almost black).
    """
    array = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        scale = 1.0 if array.max(initial=0.0) <= FLOAT_UNIT_MAX else 255.0
    elif image.mode in SIXTEEN_BIT_MODES or array.max(initial=0) > 255:
        scale = 65535.0
    else:
        scale = 255.0
    return _gray_to_rgb(np.clip(np.round(array / scale * 255.0), 0, 255).astype(np.uint8))


def to_rgb(image: Image.Image) -> np.ndarray:
    """EXIF rotation applied, alpha (or a transparent colour) composited on white, every mode made 8-bit RGB."""
    image = ImageOps.exif_transpose(image)
    if image.mode in (*SIXTEEN_BIT_MODES, "I", "F"):
        return _wide_gray(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


_PIL_LIMIT_LOCK = threading.Lock()


@contextmanager
def open_image(path: str | os.PathLike, max_pixels: int | None = None):
    """(image, limit): `path` opened under `max_pixels` (default: PIL's own limit, as the user has set it).

    PIL checks a module global when it opens a file. Every open holds one lock, with the global set to
    this call's limit, so no thread ever opens under another thread's limit; opening reads the header
    only, and the slow decode that follows runs outside the lock.
    """
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        limit = saved if max_pixels is None else max_pixels
        Image.MAX_IMAGE_PIXELS = limit
        try:
            image = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    with image:
        yield image, limit


def _decode(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    limit = max_pixels
    try:
        with open_image(path, max_pixels) as (image, limit):
            if image.width * image.height > (limit or float("inf")):
                raise Image.DecompressionBombError(f"{image.width}x{image.height} pixels")
            image.load()
            rgb = to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(
            f"{path}: refused, {_header_size(path)}more than the limit of {limit or Image.MAX_IMAGE_PIXELS} pixels "
            "(a guard against decompression bombs); downscale the file, or if you trust it raise the limit: "
            "--max_pixels / Restorer(max_pixels=...) when restoring, PIL.Image.MAX_IMAGE_PIXELS elsewhere"
        ) from None
    except Exception as e:  # any decoder failure on a bad file is that file's problem, not the run's
        reason = "empty file" if os.path.isfile(path) and os.path.getsize(path) == 0 else f"{type(e).__name__}: {e}"
        raise DataError(f"{path}: not a readable image ({reason})") from None
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise DataError(f"{path}: not a readable image (it has no pixels)")
    return rgb


def _header_size(path: str | os.PathLike) -> str:
    """ "W×H = N pixels, " from the file's header, for a refusal's message ("" when even that can't be read)."""
    try:
        with open_image(path, sys.maxsize) as (image, _):
            return f"{image.width}x{image.height} = {image.width * image.height} pixels, "
    except Exception:
        return ""


def decode_rgb(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read `path` into RGB uint8; a corrupt, truncated, empty or oversized file raises `DataError` naming it.

    `max_pixels` replaces PIL's decompression-bomb limit for this file: the restore command's --max_pixels.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return _decode(path, max_pixels)


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def map_ordered(
    fn: Callable[[T], R], items: Iterable[T], handle: Callable[[R], None], workers: int | None = None
) -> None:
    """`handle(fn(item))` for each item in order, `fn` on threads (PIL releases the GIL while decoding).

    At most a few results wait at a time, so memory stays bounded on datasets larger than memory.
    PIL's decompression-bomb warnings are errors while this runs (set once here: not thread-safe per call).
    """
    workers = workers or default_workers()
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        if workers == 1:
            for item in items:
                handle(fn(item))
            return
        with ThreadPoolExecutor(workers) as pool:
            pending: deque[Future] = deque()
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= 2 * workers:
                    handle(pending.popleft().result())
            while pending:
                handle(pending.popleft().result())
