"""The one place that unpickles: the original code's `.pth`, read with torch's weights-only loader."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch

from ..errors import CheckpointError
from .io import WEIGHTS_NAME, import_original_state_dict, save_model, sha256_file


def import_original_checkpoint(pth: Path, output_dir: Path) -> Path:
    """Convert `vae_model.pth` (a state dict under the original names) into OUTPUT_DIR/model.safetensors."""
    if not pth.is_file():
        raise CheckpointError(f"{pth} does not exist")
    try:
        state = torch.load(pth, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        raise CheckpointError(f"{pth}: refused, not a plain state dict of tensors ({str(e).splitlines()[0]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{pth}: expected a state dict of tensors, found {type(state).__name__}")
    model = import_original_state_dict(state)
    output_dir.mkdir(parents=True, exist_ok=True)
    weights = save_model(
        model, output_dir / WEIGHTS_NAME, {"stage": "imported", "source": str(pth), "source_sha256": sha256_file(pth)}
    )
    config = {"model": {"preset": "original"}, "lineage": {"imported_from": str(pth), "sha256": sha256_file(pth)}}
    (output_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return weights
