"""Write restored RGB images: the format from the suffix, the source's colour profile and EXIF kept."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from .decode import ImageSource, open_image

ORIENTATION = 0x0112  # EXIF tag; the decoded pixels are already upright
FORMAT_OPTIONS = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"quality": 95}}  # 4:4:4: no chroma loss
PALETTE_ONLY = {"GIF"}  # 256 colours at most: a restoration written there would be quantised
# A TIFF's "EXIF" is its own first IFD, which describes its pixels (size, bit depth, colour type, samples,
# strips, compression..., and its ICC profile, 34675): carried over to the RGB output, they would make it
# unreadable or misdescribe its colours (an RGB source's profile is passed on as icc_profile).
TIFF_PIXEL_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325, 338, 339, 530, 532}
    | {34675}
)


def writable_format(path: Path) -> str | None:
    """The format PIL writes for `path`'s suffix, or None (no suffix, or one PIL cannot write)."""
    name = Image.registered_extensions().get(path.suffix.lower())
    return name if name in Image.SAVE else None


def writable_path(path: Path) -> Path:
    """`path`, or `path` + ".png" when its suffix names no format PIL can write, or one of 256 colours."""
    keep = writable_format(path) not in PALETTE_ONLY | {None}
    return path if keep else path.with_name(path.name + ".png")


def source_metadata(source: ImageSource, max_pixels: int | None = None) -> dict:
    """Save options that carry over from an RGB source file: its ICC profile and EXIF (orientation reset).

    A profile of another colour space (CMYK, grey) would misdescribe the RGB output, so it is dropped.
    The file is opened under the same pixel limit as its pixels were.
    """
    try:
        with open_image(source, max_pixels) as (image, _):
            options = {}
            if image.mode in ("RGB", "RGBA") and image.info.get("icc_profile"):
                options["icc_profile"] = image.info["icc_profile"]
            exif = image.getexif()
            if image.format == "TIFF":
                for tag in TIFF_PIXEL_TAGS & set(exif):
                    del exif[tag]
            if exif:
                if ORIENTATION in exif:
                    exif[ORIENTATION] = 1
                options["exif"] = exif.tobytes()
            return options
    except Exception:  # the pixels were read, so this is only metadata: write without it
        return {}


def write_rgb(
    image: np.ndarray,
    target: Path | BinaryIO,
    format_name: str,
    source: ImageSource | None = None,
    max_pixels: int | None = None,
) -> None:
    """Encode H×W×3 uint8 as `format_name` into a file or a file object, with the source's metadata when given.

    One encoder for `vae-restore restore` and the service, so both give the same bytes for the same input.
    """
    options = {**FORMAT_OPTIONS.get(format_name, {}), **(source_metadata(source, max_pixels) if source else {})}
    Image.fromarray(image).save(target, format=format_name, **options)


def save_rgb(image: np.ndarray, path: Path, source: Path | None = None, max_pixels: int | None = None) -> None:
    """Write H×W×3 uint8 to `path` (its folders made), with the source's metadata when given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_rgb(image, path, writable_format(path), source, max_pixels)
