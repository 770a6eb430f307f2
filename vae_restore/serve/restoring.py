"""One upload in, one restored image out, all in memory: the part of a request that runs on a worker thread.

The output follows `vae-restore restore`'s rules (its name's format, PNG for an unknown one or a GIF, the
source's ICC profile and EXIF kept), through the same encoder, so both give the same bytes for the same file.
"""

from __future__ import annotations

import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from PIL import Image

from ..data.decode import ImageTooLarge, NotAnImage, decode_rgb, open_image
from ..data.encode import writable_format, writable_path, write_rgb
from ..errors import DataError, InferenceError
from ..inference import Restorer
from .limits import Refused

UNNAMED = "image"  # the stem of a raw-body upload's output name, whose suffix comes from its decoded format
SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif"}
UNSAFE = re.compile(r'[\x00-\x1f\x7f"]')  # characters a file name in a response header must not carry


@dataclass(frozen=True)
class Restored:
    content: bytes
    media_type: str
    filename: str
    model: str  # the model that restored it (under pretrained:auto, the router's choice)

    @property
    def disposition(self) -> str:
        """`inline` with the output's name, RFC 6266 style, so any file name survives the header."""
        ascii_name = self.filename.encode("ascii", "replace").decode().replace("?", "_")
        return f"inline; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(self.filename)}"


def multipart_file(body: bytes, content_type: str) -> tuple[bytes, str | None]:
    """The `file` field's bytes and file name from a multipart/form-data body held in memory.

    Parsed here rather than by Starlette's form parser, which spools large files to a temporary file on disk.
    """
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise Refused(400, "the multipart/form-data body has no boundary in its Content-Type")
    parts: list[dict] = []
    header = [b"", b""]

    def on_header_field(data, start, end):
        header[0] += data[start:end]

    def on_header_value(data, start, end):
        header[1] += data[start:end]

    def on_header_end():
        parts[-1]["headers"][header[0].lower()] = header[1]
        header[:] = [b"", b""]

    callbacks = {
        "on_part_begin": lambda: parts.append({"headers": {}, "data": []}),
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": lambda data, start, end: parts[-1]["data"].append(data[start:end]),
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except MultipartParseError as e:
        raise Refused(400, f"the multipart/form-data body is malformed ({e})") from None
    for part in parts:
        kind, options = parse_options_header(part["headers"].get(b"content-disposition", b""))
        if kind == b"form-data" and options.get(b"name") == b"file":
            filename = options.get(b"filename")
            return b"".join(part["data"]), filename.decode("utf-8", "replace") if filename else None
    raise Refused(400, "the form has no `file` field; send the image as the multipart field `file` or as the body")


def output_name(filename: str | None, data: bytes) -> Path:
    """The restored file's name: the upload's (its format by suffix, as `restore` names it), or for a raw
    body `image` + the suffix of the format the bytes are in."""
    base = UNSAFE.sub("_", (filename or "").replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if base.strip("."):
        return writable_path(Path(base))
    with open_image(io.BytesIO(data), sys.maxsize) as (image, _):
        detected = image.format
    return writable_path(Path(UNNAMED + SUFFIXES.get(detected, ".png")))


def restore_upload(restorer: Restorer, data: bytes, filename: str | None, max_pixels: int) -> Restored:
    """Decode from memory, restore, encode; the failures of a bad upload become 400, 413 and 415."""
    if not data:
        raise Refused(400, "the request has no image; send it as the multipart field `file` or as the body")
    label = filename or "the upload"
    try:
        pixels = decode_rgb(io.BytesIO(data), max_pixels, name=label)
    except NotAnImage:
        raise Refused(415, f"{label} is not an image in a format this server reads (PNG, JPEG, WebP, TIFF)") from None
    except ImageTooLarge:
        raise Refused(413, f"{label} has more than this server's limit of {max_pixels} pixels (--max_pixels)") from None
    except DataError as e:
        raise Refused(400, f"{e}") from None
    name = output_name(filename, data)
    try:
        restored, model = restorer.restore_named(pixels)
    except InferenceError as e:
        raise Refused(500, str(e)) from None
    format_name = writable_format(name)
    buffer = io.BytesIO()
    write_rgb(restored, buffer, format_name, io.BytesIO(data), max_pixels)
    return Restored(buffer.getvalue(), Image.MIME.get(format_name, "application/octet-stream"), name.name, model)
