"""What every entry point shares: the toolkit's own errors end the program with one clear line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import Preempted, VAERestoreError

# Import names of the `train` extra: without them only restoring works (the `infer` install).
TRAINING_MODULES = frozenset(
    {"torch", "torchvision", "accelerate", "safetensors", "yaml", "tqdm", "skimage", "pywt", "wandb", "tensorboard"}
    | {"onnx", "onnxscript"}  # the export
)


def run_with_clear_errors(main: Callable[[], int]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    try:
        return main()
    except Preempted as e:
        print(str(e), file=sys.stderr)
        return e.exit_code
    except VAERestoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in TRAINING_MODULES:
            raise
        print(
            f"error: {e.name} is not installed; this command needs the train extra: pip install 'vae-restore[train]' "
            "(in a clone of the repository: pip install -e '.[train,infer]')",
            file=sys.stderr,
        )
        return 2


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    return _int_at_least(text, 1, "at least 1")


def count_or_zero(text: str) -> int:
    """An argparse type: 0 (none, off) or a count."""
    return _int_at_least(text, 0, "0 or a positive count")


def _int_at_least(text: str, low: int, what: str) -> int:
    value = int(text)
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
    return value


def positive_int_list(text: str) -> list[int]:
    """An argparse type: `256,1024` -> [256, 1024], each at least 1."""
    return [positive_int(v) for v in text.split(",") if v.strip()]


def new_file(text: str) -> Path:
    """An argparse type: a file to write, checked before any work (not a folder, in a folder that exists)."""
    path = Path(text)
    if path.is_dir() or not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder or not in an existing folder")
    return path


def true_or_false(text: str) -> bool:
    """`true`/`false` (or 1/0, yes/no): how every boolean flag and config value is spelled."""
    if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"expected true or false, got {text!r}")
    return text.lower() in ("true", "1", "yes")


def add_switch(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    """A boolean flag spelled as every boolean of the toolkit: alone (true), or followed by true or false."""
    parser.add_argument(name, nargs="?", const=True, default=False, type=true_or_false, metavar="true|false", help=help)


def image_file(text: str) -> Path:
    """An argparse type: an image file to write, its format named by its suffix."""
    from .data.encode import writable_format

    path = Path(text)
    if path.is_dir() or text.endswith(("/", "\\")):
        raise argparse.ArgumentTypeError(f"{text} is a folder; name the image file, e.g. {path / 'image.png'}")
    if writable_format(path) is None:
        raise argparse.ArgumentTypeError(f"{text}: name the image format by its suffix, e.g. .png or .jpg")
    return path
