"""Weights on disk: safetensors only, with the preset and lineage in the file's metadata."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..checksums import sha256_file  # noqa: F401 (re-exported; lives in the torch-free checksums)
from ..errors import CheckpointError, ConfigError
from .presets import PRESETS, Preset, get_preset
from .vae_arch import VAE

WEIGHTS_NAME = "model.safetensors"
CHECKPOINT_STATE_FILE = "trainer_state.json"  # marks a resumable training checkpoint (training/checkpoints.py)


def resolve_weights(path: str | os.PathLike) -> Path:
    """A run folder means its `model.safetensors`; anything but a safetensors file is refused, and so is a
    resumable training checkpoint, whose `model.safetensors` is accelerate's raw state: no preset, not the EMA.
    `pretrained:NAME` means a bundled model's weights."""
    from ..pretrained import resolve_weights as bundled

    path = Path(bundled(str(path)))
    if path.is_dir():
        if (path / CHECKPOINT_STATE_FILE).is_file():
            raise CheckpointError(
                f"{path} is a resumable training checkpoint, not a model (its weights carry no preset and are not "
                f"the EMA): pass the run folder {path.parent.parent} once the run has finished, or resume the run "
                "with --resume_from_checkpoint to finish it"
            )
        path = path / WEIGHTS_NAME
    if not path.exists():
        raise CheckpointError(f"no weights at {path}")
    if path.suffix != ".safetensors":
        raise CheckpointError(
            f"{path} is not a .safetensors file; weights load from safetensors only "
            "(convert a pickled original checkpoint with `vae-restore import-original`)"
        )
    return path


def save_model(
    model: VAE,
    path: str | os.PathLike,
    metadata: Mapping[str, str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write weights atomically (temporary name, then rename) with the preset in the metadata.

    Runs write fp32; a bundled model may be written in float16 to halve its size (it loads into fp32)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    meta = {"format": "pt", "preset": model.preset.name, "preset_config": json.dumps(model.preset.to_dict())}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    _sort_header(tmp)
    os.chmod(tmp, 0o666 & ~_current_umask())  # safetensors creates 0600, which serving accounts cannot read
    os.replace(tmp, path)
    return path


def _current_umask() -> int:
    """The process umask; reading it means setting it, so it is restored at once."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sort_header(path: Path) -> None:
    """Rewrite the JSON header with sorted keys: safetensors writes metadata in hash order, and the same
    weights must give the same bytes (resume is checked by sha256)."""
    with open(path, "r+b") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        raw = f.read(size)
        text = raw.decode("utf-8").rstrip(" ")
        canonical = json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if len(canonical.encode("utf-8")) != len(text.encode("utf-8")):
            return
        f.seek(8)
        f.write(canonical.encode("utf-8").ljust(size, b" "))


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    weights = resolve_weights(path)
    try:
        with safe_open(str(weights), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({e})") from None


def _preset_from_metadata(meta: Mapping[str, str], source: Path) -> Preset:
    if "preset" not in meta:
        raise CheckpointError(
            f"{source} records no preset, so its network is unknown: load weights written by the toolkit (a run "
            "folder's model.safetensors), or convert the original code's .pth with `vae-restore import-original`"
        )
    name = meta["preset"]
    if name in PRESETS:
        return get_preset(name)
    if "preset_config" in meta:
        try:
            return Preset.from_dict(json.loads(meta["preset_config"]))
        except ConfigError as e:
            raise CheckpointError(f"preset {name!r} stored in the weights: {e}") from None
    return get_preset(name)


def check_state_dict(model: VAE, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Fail with the first missing, unexpected or mis-shaped tensor named, instead of a torch traceback."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise CheckpointError(f"{source}: tensor {key!r} is missing (preset {model.preset.name!r})")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{source}: tensor {key!r} has shape {tuple(state[key].shape)}, "
                f"preset {model.preset.name!r} expects {tuple(tensor.shape)}"
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise CheckpointError(f"{source}: unexpected tensor {extra[0]!r} ({len(extra)} unexpected in all)")


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    weights = resolve_weights(path)
    try:
        return load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({e})") from None


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> VAE:
    """Build the preset recorded in the file and load its weights; the model comes back in eval mode.

    Args:
        path: a `.safetensors` file written by the toolkit, or a finished run folder (its `model.safetensors`).
        device: where the model is placed.

    Returns:
        The VAE of the recorded preset, in eval mode.

    Raises:
        CheckpointError: the path is missing, not safetensors, a resumable checkpoint rather than a model, its
            sha256 differs from the one its run recorded, or its tensors do not fit the preset or hold NaN/Inf.
    """
    weights = resolve_weights(path)
    check_recorded_sha256(weights)
    model = VAE(_preset_from_metadata(read_metadata(weights), weights))
    state = load_state_dict_file(weights)
    check_state_dict(model, state, str(weights))
    bad = next((k for k, v in state.items() if not torch.isfinite(v).all()), None)
    if bad is not None:
        raise CheckpointError(f"{weights}: tensor {bad!r} holds NaN or Inf; the weights are damaged or diverged")
    model.load_state_dict(state)
    return model.to(device).eval()


def check_recorded_sha256(weights: Path) -> None:
    """A run folder's config.json records the sha256 of the weights its run wrote: a damaged or replaced file
    must not load as if it were them."""
    config = weights.parent / "config.json"
    if weights.name != WEIGHTS_NAME or not config.is_file():
        return
    try:
        recorded = json.loads(config.read_text()).get("run", {}).get("weights_sha256")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return  # not a run's config.json
    if recorded and recorded != sha256_file(weights):
        raise CheckpointError(
            f"{weights} does not match the sha256 its run recorded in {config} ({recorded[:12]}...): the file is "
            "damaged or was replaced"
        )


ORIGINAL_PARAMETER_NAMES = tuple(
    f"{part}.{layer}.{kind}"
    for part, layers in (
        ("encoder", ("conv1", "conv2", "conv3", "conv4", "fc1", "fc21", "fc22")),
        ("decoder", ("fc1", "fc2", "conv1", "conv2", "conv3", "conv4")),
    )
    for layer in layers
    for kind in ("weight", "bias")
)


def import_original_state_dict(state: Mapping[str, torch.Tensor]) -> VAE:
    """Load a state dict saved by the original code (`ORIGINAL_PARAMETER_NAMES`, maybe `module.`-prefixed)
    into preset `original`."""
    cleaned = {k.removeprefix("module."): v for k, v in state.items()}
    model = VAE(get_preset("original"))
    check_state_dict(model, cleaned, "original state dict")
    model.load_state_dict({k: v.float() for k, v in cleaned.items()})
    return model.eval()
