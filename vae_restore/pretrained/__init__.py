"""Models that travel inside the package: `vae_restore/pretrained/<name>/` holds `model.onnx` (+ its manifest),
`model.safetensors` (for fine-tuning) and a model card `README.md`. `router/` holds the damage detector and
the rule that make `pretrained:auto`, the default: each image restored by the bundled model made for its damage.

Nothing is downloaded: a name resolves to files of the installed package, or is an error naming the known ones.
This module imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CheckpointError

PRETRAINED_DIR = Path(__file__).resolve().parent
AUTO = "auto"  # `pretrained:auto`: the damage detector picks a bundled model per image (`vae_restore.routing`)
DEFAULT_MODEL = AUTO  # what `vae-restore restore`, `Restorer()` and `serve` use when no model is given
ROUTER = "router"  # the folder of the damage detector and its routing rule
ONNX_FILE = "model.onnx"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
PREFIX = "pretrained:"  # `--init_from pretrained:<name>`, `--model pretrained:<name>`


def names() -> list[str]:
    """The bundled models (folders that hold an ONNX graph), sorted."""
    return sorted(p.parent.name for p in PRETRAINED_DIR.glob(f"*/{ONNX_FILE}"))


def available() -> list[str]:
    """What `pretrained:NAME` can name in this install: the bundled models, and `auto` where a router is bundled."""
    from ..routing import RULE_FILE

    return names() + ([AUTO] if (PRETRAINED_DIR / ROUTER / RULE_FILE).is_file() else [])


def default_model() -> str | None:
    """`pretrained:DEFAULT_MODEL` when this install bundles it, else None."""
    return PREFIX + DEFAULT_MODEL if DEFAULT_MODEL in available() else None


def routing_rule():
    """The bundled routing rule (`vae_restore.routing.RoutingRule`). Raises CheckpointError without one."""
    from ..routing import RoutingRule

    if AUTO not in available():
        raise CheckpointError(f"this install bundles no router, so {PREFIX}{AUTO} is not available")
    return RoutingRule.load(PRETRAINED_DIR / ROUTER)


def model_dir(name: str) -> Path:
    """The folder of bundled model `name`.

    Raises:
        CheckpointError: no model of that name is bundled (the message lists the ones that are).
    """
    folder = PRETRAINED_DIR / name
    if name == AUTO:
        raise CheckpointError(
            f"{PREFIX}{AUTO} routes each image to one of {', '.join(names())}; name one of them here "
            f"(for example {PREFIX}{names()[0] if names() else 'general'})"
        )
    if name not in names():
        known = ", ".join(names()) or "none"
        raise CheckpointError(f"no bundled model {name!r} (bundled: {known}); pass a model file instead")
    return folder


def onnx_path(name: str) -> Path:
    """The bundled model's ONNX graph (its manifest lies beside it). Raises CheckpointError as `model_dir`."""
    return model_dir(name) / ONNX_FILE


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
