"""Models that travel inside the package: `vae_restore/pretrained/<name>/` holds `model.onnx` (+ its manifest),
`model.safetensors` (for fine-tuning) and a model card `README.md`.

Nothing is downloaded: a name resolves to files of the installed package, or is an error naming the known ones.
This module imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CheckpointError

PRETRAINED_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = "general"  # what `vae-restore restore`, `Restorer()` and `serve` use when no model is given
ONNX_FILE = "model.onnx"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
PREFIX = "pretrained:"  # `--init_from pretrained:<name>`, `--model pretrained:<name>`


def names() -> list[str]:
    """The bundled models (folders that hold an ONNX graph), sorted."""
    return sorted(p.parent.name for p in PRETRAINED_DIR.glob(f"*/{ONNX_FILE}"))


def model_dir(name: str | None = None) -> Path:
    """The folder of bundled model `name` (None: DEFAULT_MODEL).

    Raises:
        CheckpointError: no model of that name is bundled (the message lists the ones that are).
    """
    name = name or DEFAULT_MODEL
    folder = PRETRAINED_DIR / name
    if name not in names():
        known = ", ".join(names()) or "none"
        raise CheckpointError(f"no bundled model {name!r} (bundled: {known}); pass a model file instead")
    return folder


def onnx_path(name: str | None = None) -> Path:
    """The bundled model's ONNX graph (its manifest lies beside it). Raises CheckpointError as `model_dir`."""
    return model_dir(name) / ONNX_FILE


def default_onnx() -> Path | None:
    """The default bundled ONNX graph, or None when this install bundles none."""
    return PRETRAINED_DIR / DEFAULT_MODEL / ONNX_FILE if DEFAULT_MODEL in names() else None


def _resolve(spec: str | os.PathLike, file: str) -> str | os.PathLike:
    """`pretrained:<name>` -> that bundled model's `file`; anything else is returned as it is."""
    text = str(spec)
    return model_dir(text[len(PREFIX) :]) / file if text.startswith(PREFIX) else spec


def resolve_onnx(spec: str | os.PathLike) -> str | os.PathLike:
    """`pretrained:<name>` -> the bundled ONNX graph's path; any other path is returned as it is."""
    return _resolve(spec, ONNX_FILE)


def resolve_weights(spec: str) -> str:
    """`pretrained:<name>` -> the bundled safetensors path; any other string is returned as it is."""
    return str(_resolve(spec, WEIGHTS_FILE))


def card_summary(name: str) -> str:
    """The model card's first paragraph after its front matter and title (one line), or '' without a card."""
    card = PRETRAINED_DIR / name / CARD_FILE
    if not card.is_file():
        return ""
    text = card.read_text(encoding="utf-8")
    if text.startswith("---"):
        text = text.split("---", 2)[2]
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip() and not p.lstrip().startswith("#")]
    return " ".join(paragraphs[0].split()) if paragraphs else ""
