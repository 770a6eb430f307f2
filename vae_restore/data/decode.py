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
from typing import BinaryIO, TypeVar

import numpy as np
from PIL import Image, ImageOps

from ..errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
# float data maxing out at or below this is [0, 1] (overshoot from resampling or HDR clipped), above it 0-255
FLOAT_UNIT_MAX = 1.5

T = TypeVar("T")
R = TypeVar("R")
ImageSource = str | os.PathLike | BinaryIO  # a file, or its bytes in memory (an upload, never written to disk)


class NotAnImage(DataError):
    """The bytes are no image format PIL knows (an upload of the wrong file, say)."""


class ImageTooLarge(DataError):
    """The image has more pixels than the limit allows (a guard against decompression bombs)."""


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
def open_image(path: ImageSource, max_pixels: int | None = None):
    """(image, limit): `path` (a file name or a binary file object) opened under `max_pixels` (default: PIL's
    own limit, as the user has set it).

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


def _rewound(source: ImageSource) -> ImageSource:
    """A file object read again from its start (the header is read more than once); a path as it is."""
    if hasattr(source, "seek"):
        source.seek(0)
    return source


def _decode(path: ImageSource, max_pixels: int | None = None, name: str | None = None) -> np.ndarray:
    limit = max_pixels
    name = str(path) if name is None else name
    try:
        with open_image(path, max_pixels) as (image, limit):
            if image.width * image.height > (limit or float("inf")):
                raise Image.DecompressionBombError(f"{image.width}x{image.height} pixels")
            image.load()
            rgb = to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(
            f"{name}: refused, {_header_size(_rewound(path))}more than the limit of "
            f"{limit or Image.MAX_IMAGE_PIXELS} pixels "
            "(a guard against decompression bombs); downscale the file, or if you trust it raise the limit: "
            "--max_pixels / Restorer(max_pixels=...) when restoring, PIL.Image.MAX_IMAGE_PIXELS elsewhere"
        ) from None
    except Exception as e:  # any decoder failure on a bad file is that file's problem, not the run's
        reason = "empty file" if _is_empty(path) else f"{type(e).__name__}: {e}"
        error = NotAnImage if isinstance(e, Image.UnidentifiedImageError) else DataError
        raise error(f"{name}: not a readable image ({reason})") from None
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise DataError(f"{name}: not a readable image (it has no pixels)")
    return rgb


def _is_empty(source: ImageSource) -> bool:
    if hasattr(source, "seek"):
        return source.seek(0, os.SEEK_END) == 0
    return os.path.isfile(source) and os.path.getsize(source) == 0


def _header_size(path: ImageSource) -> str:
    """ "W×H = N pixels, " from the file's header, for a refusal's message ("" when even that can't be read)."""
    try:
        with open_image(path, sys.maxsize) as (image, _):
            return f"{image.width}x{image.height} = {image.width * image.height} pixels, "
    except Exception:
        return ""


def decode_rgb(path: ImageSource, max_pixels: int | None = None, name: str | None = None) -> np.ndarray:
    """Read `path` into RGB uint8; a corrupt, truncated, empty or oversized file raises `DataError` naming it.

    `path` may be a binary file object (bytes in memory); `name` then names it in messages. `max_pixels`
    replaces PIL's decompression-bomb limit for this file: the restore command's --max_pixels. Bytes that
    are no image raise `NotAnImage`, an image over the limit `ImageTooLarge` (both `DataError`s).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return _decode(path, max_pixels, name)


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
