"""Randomly initialised weights and their ONNX export, made once per test session (an export takes seconds)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from filelock import FileLock

from vae_restore.models import ORIGINAL, VAE, get_preset, save_model

from .conftest import REPO, subprocess_env

_CACHE: dict[str, tuple[Path, Path, str]] = {}
TAIL_SCALE = 0.2  # fullconv_model's tail: corrections of about 13/255 on average


def random_weights(folder: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return save_model(VAE(ORIGINAL).eval(), folder / "model.safetensors", {"stage": "test"})


def exported_model(tmp_path_factory) -> tuple[Path, Path, str]:
    """(weights, model.onnx, stdout) from a real `python -m export.onnx` run, shared by the test files and, under
    pytest-xdist, by the worker processes too (the first one to get the lock exports; the others read it)."""
    if "model" not in _CACHE:
        shared = tmp_path_factory.getbasetemp()
        if os.environ.get("PYTEST_XDIST_WORKER"):
            shared = shared.parent  # the base folder every worker's own folder sits in
        with FileLock(shared / "export.lock"):
            _CACHE["model"] = _export_once(shared / "export")
    return _CACHE["model"]


def _export_once(root: Path) -> tuple[Path, Path, str]:
    weights, output, log = root / "run" / "model.safetensors", root / "out" / "model.onnx", root / "export.log"
    if not log.is_file():
        random_weights(weights.parent)
        cmd = [
            sys.executable,
            "-m",
            "export.onnx",
            "--checkpoint",
            str(weights.parent),
            "--output",
            str(output),
            "--check_batch_sizes",
            "1,3",
        ]
        result = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        log.write_text(result.stdout)  # last: a failed export leaves no log, so the next worker tries again
    return weights, output, log.read_text()


def torch_tile_fn(model: VAE):
    """The PyTorch per-tile function that `restore_tiled` calls, as evaluation would use it."""
    return lambda tiles: model.restore(torch.from_numpy(tiles)).numpy()


def fullconv_model(seed: int = 0) -> VAE:
    """A random `fullconv` whose restoration is not the identity: its tail, zero at initialisation (the residual
    preset starts as the identity), is drawn at random too (TAIL_SCALE)."""
    torch.manual_seed(seed)
    model = VAE(get_preset("fullconv")).eval()
    with torch.no_grad():
        model.decoder.tail.reset_parameters()
        model.decoder.tail.weight.mul_(TAIL_SCALE)
    return model


def fullconv_weights(folder: Path, seed: int = 0) -> Path:
    return save_model(fullconv_model(seed), folder / "model.safetensors", {"stage": "test"})
