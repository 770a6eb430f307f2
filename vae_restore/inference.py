"""Restore images of any size with an exported model on onnxruntime. Imports no torch.

    from vae_restore.inference import Restorer
    restorer = Restorer("model.onnx")        # verifies model.onnx.json, picks CUDA then CPU
    out = restorer.restore(image)            # H×W×3 uint8 (or float in [0, 1], PIL image, path) -> same size
    Restorer()                               # the bundled default, pretrained:auto: a model chosen per image

`pretrained:auto` asks the bundled damage detector (`vae_restore.routing`) which bundled model suits each
image; every model it can choose is loaded once, up front.

Images are cut into overlapping tiles blended with smooth weights by `vae_restore.tiling` (the same code
PyTorch evaluation uses), and the tiles go through the session in batches, so memory stays bounded. A
fully convolutional export (dynamic H×W) takes a whole image in one call, reflect-padded to its multiple,
up to `max_whole_pixels`; larger images go in tiles of `tile` (default 512) pixels.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import CheckpointError, InferenceError
from .export.manifest import MULTIPLE_KEY, verify_model_file
from .tiling import MAX_WHOLE_PIXELS, Geometry, restore

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
QUIET = 3  # onnxruntime log severity: errors only (start-up info and warnings are noise to users)
SILENT = 4  # while trying CUDA: a missing CUDA library is reported by the fallback, not by a log line

ImageLike = np.ndarray | str | os.PathLike
FLOAT_SLACK = 1 / 510  # half an 8-bit level: rounding overshoot of float pixels, clipped rather than refused


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("onnxruntime is not installed; install it with `pip install 'vae-restore[infer]'`") from None
    return onnxruntime


def requested_providers(providers: str | Sequence[str], available: Sequence[str]) -> list[str]:
    """ "auto": CUDA when onnxruntime offers it, then CPU; "cpu" / "cuda"; or provider names, as a list or
    comma-separated ("TensorrtExecutionProvider,CUDAExecutionProvider")."""
    if isinstance(providers, str) and providers.endswith("ExecutionProvider"):
        providers = [p.strip() for p in providers.split(",")]
    if isinstance(providers, str):
        choice = providers.lower()
        if choice == "auto":
            return [p for p in (CUDA, CPU) if p in available] or [CPU]
        if choice == "cpu":
            return [CPU]
        if choice == "cuda":
            if CUDA not in available:
                raise ValueError(
                    f"providers='cuda' but this onnxruntime offers only {list(available)}; "
                    "install onnxruntime-gpu or use providers='auto'"
                )
            return [CUDA, CPU]
        raise ValueError(
            f"providers must be 'auto', 'cpu', 'cuda' or onnxruntime provider names such as "
            f"'CUDAExecutionProvider,CPUExecutionProvider', got {providers!r}"
        )
    return list(providers)


def open_session(path: Path, providers: str | Sequence[str], threads: int | None):
    """An onnxruntime session on `path` with quiet logs; CUDA falls back to CPU silently (callers check)."""
    ort = _import_onnxruntime()
    wanted = requested_providers(providers, ort.get_available_providers())
    options = ort.SessionOptions()
    options.log_severity_level = QUIET
    if threads:
        options.intra_op_num_threads = threads
    if CUDA in wanted:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN from pip's nvidia-* wheels, when installed
                ort.preload_dlls()
    ort.set_default_logger_severity(SILENT if CUDA in wanted else QUIET)
    try:
        return ort.InferenceSession(str(path), options, providers=wanted)
    except Exception as e:  # onnxruntime's own error types derive from Exception only
        raise InferenceError(f"onnxruntime cannot load {path}: {e}") from None
    finally:
        ort.set_default_logger_severity(QUIET)


def as_float_image(image: ImageLike, max_pixels: int | None = None) -> tuple[np.ndarray, bool]:
    """(H×W×3 float32 in [0, 1], whether the caller gets uint8 back), or a ValueError that says what is wrong.

    A file over `max_pixels` (default: PIL's decompression-bomb limit) is refused with advice to raise it.
    """
    if isinstance(image, (str, os.PathLike)):
        from .data.decode import decode_rgb

        return decode_rgb(image, max_pixels=max_pixels).astype(np.float32) / 255.0, True
    if hasattr(image, "getbands") and hasattr(image, "convert"):  # a PIL image, without importing PIL eagerly
        from .data.decode import to_rgb

        return to_rgb(image).astype(np.float32) / 255.0, True
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected an H×W×3 numpy array, a PIL image or a path, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"expected an H×W×3 RGB image, got shape {image.shape}; convert grey images with "
            "np.repeat(image[..., None], 3, axis=2) and drop alpha with image[..., :3]"
        )
    if image.size == 0:
        raise ValueError(f"the image is empty (shape {image.shape})")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0, True
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"dtype {image.dtype} is not supported: pass uint8 (0-255) or float in [0, 1]")
    if not np.isfinite(image).all():
        raise ValueError("the image contains NaN or infinite values")
    low, high = float(image.min()), float(image.max())
    if low < -FLOAT_SLACK or high > 1.0 + FLOAT_SLACK:
        raise ValueError(
            f"float images must be in [0, 1], got values in [{low:g}, {high:g}] (divide 0-255 data by 255)"
        )
    return np.clip(image, 0.0, 1.0, dtype=np.float32), False


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


class Restorer:
    """An onnxruntime session for a verified restoration-path export, restoring images of any size.

    `provider` is the provider that is ACTIVE (onnxruntime falls back silently when CUDA can't start).
    `overlap` defaults to `default_overlap(tile)`, as PyTorch evaluation does; `max_pixels` bounds image files.

    Args:
        path: an exported `model.onnx` (the restoration path), with its manifest beside it; `pretrained:NAME`:
            a bundled model; `pretrained:auto` or None: the bundled default, which routes each image to the
            bundled model for its damage (`vae_restore.routing`).
        providers: `auto`, `cpu`, `cuda`, or onnxruntime provider names.
        batch_size: tiles per session call.
        overlap: pixels shared by neighbouring tiles.
        threads: onnxruntime's intra-op threads (None: its default).
        verify: check the file against its manifest's sha256 before loading it.
        max_pixels: refuse image files with more pixels than this.
        max_whole_pixels: fully convolutional exports: whole images up to this many (padded) pixels in one
            call, tiles above it (0 always tiles, which bounds memory by `batch_size`).
        tile: fully convolutional exports: the tile side above `max_whole_pixels`.

    Raises:
        CheckpointError: no model at `path` (or none bundled), it does not match its manifest, it is not a
            restoration export, or (auto) the routing rule or its detector is missing or damaged.
        InferenceError: onnxruntime cannot load the model (or, in `restore`, fails on a batch).
        ValueError: a setting that is not a positive whole number, or an overlap the tile cannot take.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        providers: str | Sequence[str] = "auto",
        batch_size: int = 16,
        overlap: int | None = None,
        threads: int | None = None,
        verify: bool = True,
        max_pixels: int | None = None,
        max_whole_pixels: int = MAX_WHOLE_PIXELS,
        tile: int | None = None,
    ):
        from .pretrained import AUTO, PREFIX, default_model, resolve_onnx, routing_rule

        spec = default_model() if path is None else path
        if spec is None:
            raise CheckpointError("no model given and none is bundled: pass a model.onnx from `python -m export.onnx`")
        self.rule = routing_rule() if str(spec) == PREFIX + AUTO else None
        self.path = Path(resolve_onnx(PREFIX + self.rule.otherwise if self.rule else spec))
        named = self.rule or str(spec).startswith(PREFIX)
        self.name = self.path.parent.name if named else self.path.name  # what restore_named reports
        if not self.path.is_file():
            raise CheckpointError(f"no ONNX model at {self.path}; export one with `python -m export.onnx`")
        for name, value, optional in (
            ("batch_size", batch_size, False),
            ("overlap", overlap, True),
            ("max_pixels", max_pixels, True),
            ("threads", threads, True),
            ("max_whole_pixels", max_whole_pixels, False),
            ("tile", tile, True),
        ):
            if not (value is None and optional) and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_pixels is not None and max_pixels < 1:
            raise ValueError(f"max_pixels must be at least 1, got {max_pixels}")
        self.manifest = verify_model_file(self.path) if verify else {}
        if self.manifest.get("part", "restore") != "restore":
            raise CheckpointError(
                f"{self.path} is a {self.manifest['part']!r} export; Restorer needs the restoration path "
                "(export without --part)"
            )
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.session = open_session(self.path, providers, threads)
        self.providers = self.session.get_providers()
        self.provider = self.providers[0]
        if isinstance(providers, str) and providers.lower() == "cuda" and self.provider != CUDA:
            warnings.warn(
                f"CUDA was requested but onnxruntime could not start it (CUDA or cuDNN libraries missing?); "
                f"running on {self.provider}",
                RuntimeWarning,
                stacklevel=2,
            )
        model_input = self._image_input()
        self.input_name = model_input.name
        self.input_dtype = np.float16 if model_input.type == "tensor(float16)" else np.float32
        self.geometry = self._geometry(model_input.shape, overlap, max_whole_pixels, tile)
        self.tile, self.overlap, self.multiple = self.geometry.tile, self.geometry.overlap, self.geometry.multiple
        self.router, self.routed = None, {self.name: self}
        if self.rule:
            from .routing import Router

            self.router = Router(self.rule, providers, threads, verify)
            settings = (providers, batch_size, overlap, threads, verify, max_pixels, max_whole_pixels, tile)
            for name in self.rule.models()[1:]:
                self.routed[name] = Restorer(PREFIX + name, *settings)

    def describe(self) -> str:
        """What restores: the graph's path, or `pretrained:auto` and its rule."""
        return f"pretrained:auto ({self.rule.describe()})" if self.rule else str(self.path)

    def _geometry(self, shape: list, overlap: int | None, max_whole_pixels: int, tile: int | None) -> Geometry:
        """Fixed tiles from a T×T graph; whole images and aligned tiles from a dynamic-H×W one, whose multiple
        the graph's metadata records (so an unverified model needs no manifest)."""
        height, width = shape[2:]
        if isinstance(height, int) and isinstance(width, int):
            if tile not in (None, height):
                raise ValueError(f"{self.path} takes {height}×{width} tiles only; leave tile unset")
            return Geometry.fixed(height, overlap)
        multiple = self.session.get_modelmeta().custom_metadata_map.get(MULTIPLE_KEY, "")
        if not multiple.isdigit() or int(multiple) < 1:
            raise CheckpointError(
                f"{self.path} takes images of dynamic height and width ({height}×{width}) but does not record "
                f"which multiple of pixels they must be ({MULTIPLE_KEY}); re-export it with `python -m export.onnx`"
            )
        return Geometry.convolutional(int(multiple), max_whole_pixels, tile, overlap)

    def _image_input(self):
        """The graph's one N×3×T×T `image` input; other parts (a decoder export) need their own feeds."""
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != "image" or len(inputs[0].shape) != 4:
            found = ", ".join(f"{i.name} {i.shape}" for i in inputs)
            raise ValueError(
                f"{self.path} is not a restoration-path export: it takes {found} instead of one 4-D 'image' "
                "input (export without --part)"
            )
        return inputs[0]

    def run_tiles(self, tiles: np.ndarray) -> np.ndarray:
        """N×3×T×T float32 in [0, 1] (or one whole padded image) -> restored, one session call."""
        try:
            out = self.session.run(None, {self.input_name: tiles.astype(self.input_dtype, copy=False)})[0]
        except Exception as e:  # out of memory above all: say what to lower
            n, _, h, w = tiles.shape
            if self.multiple is not None and (h, w) != (self.tile, self.tile):
                what, advice = f"a whole {h}×{w} image", "a smaller max_whole_pixels (--max_whole_pixels) tiles it"
            else:
                what, advice = f"a batch of {n} tiles", "a smaller batch_size (--batch_size) needs less memory"
            raise InferenceError(f"onnxruntime failed on {what} on {self.provider} ({e}); {advice}") from None
        return np.asarray(out, dtype=np.float32)

    def restore(self, image: ImageLike) -> np.ndarray:
        """Restore an H×W×3 image of any size; uint8 (and PIL / path) input gives uint8, float gives float32."""
        return self.restore_named(image)[0]

    def restore_named(self, image: ImageLike) -> tuple[np.ndarray, str]:
        """`restore`, and the name of the model that restored the image (the router's choice under auto)."""
        pixels, integer = as_float_image(image, self.max_pixels)
        chosen = self.routed[self.router.choose(pixels)] if self.router else self
        restored = restore(pixels, chosen.run_tiles, chosen.geometry, self.batch_size)
        return (to_uint8(restored) if integer else restored), chosen.name
