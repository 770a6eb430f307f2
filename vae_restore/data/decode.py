"""Decode any image file to RGB uint8 H×W×3, or say clearly why it can't be."""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, ImageOps

from ..errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def to_rgb(image: Image.Image) -> np.ndarray:
    """EXIF rotation applied, alpha composited on white, 16-bit and CMYK/palette modes converted."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if array.max(initial=0) > 255 or image.mode.startswith("I;16") else 255.0
        gray = np.clip(np.round(array / scale * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def decode_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read `path` into RGB uint8; a corrupt, truncated or oversized file raises `DataError` naming it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{path}: refused, image is larger than PIL's decompression-bomb limit ({e})") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None
