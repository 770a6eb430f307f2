"""The original code's `.pth`, read with torch's weights-only loader.

The only file from outside the toolkit's own checkpoints that it unpickles. (A resume also loads accelerate's
`optimizer.bin`, `scheduler.bin` and `random_states_<rank>.pkl` from a checkpoint, with `weights_only=True`.)
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch

from ..errors import CheckpointError
from .io import WEIGHTS_NAME, import_original_state_dict, save_model, sha256_file


def import_original_checkpoint(pth: Path, output_dir: Path, overwrite: bool = False) -> Path:
    """Convert `vae_model.pth` (a state dict under the original names) into OUTPUT_DIR/model.safetensors."""
    if not pth.is_file():
        raise CheckpointError(f"{pth} does not exist")
    if output_dir.is_file():
        raise CheckpointError(f"{output_dir} is a file; name a run folder to create")
    taken = [output_dir / name for name in (WEIGHTS_NAME, "config.json") if (output_dir / name).exists()]
    if taken and not overwrite:
        raise CheckpointError(f"{taken[0]} exists: choose a new run folder, or pass --overwrite to replace it")
    try:
        state = torch.load(pth, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's own text advises weights_only=False, which this project forbids
        raise CheckpointError(
            f"{pth}: refused: the file holds objects other than tensors (or is no checkpoint at all), "
            "and only weights are unpickled (torch.load with weights_only=True)"
        ) from None
    except Exception as e:  # not a checkpoint at all: torch.load raises KeyError, EOFError, RuntimeError, ...
        reason = f"{type(e).__name__}: {e}".partition("\n")[0].removesuffix(": ")
        raise CheckpointError(f"{pth}: not a readable PyTorch checkpoint ({reason})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{pth}: expected a state dict of tensors, found {type(state).__name__}")
    key = next((k for k, v in state.items() if not isinstance(v, torch.Tensor)), None)
    if key is not None:
        raise CheckpointError(f"{pth}: expected a state dict of tensors, but {key!r} holds {type(state[key]).__name__}")
    model = import_original_state_dict(state)
    output_dir.mkdir(parents=True, exist_ok=True)
    weights = save_model(
        model, output_dir / WEIGHTS_NAME, {"stage": "imported", "source": str(pth), "source_sha256": sha256_file(pth)}
    )
    lineage = {"imported_from": str(pth), "sha256": sha256_file(pth)}
    config = {"model": {"preset": "original"}, "run": {"lineage": lineage}}
    (output_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return weights
