"""`launch/bundle_model.py`: a run goes into the package with a graph exported from the weights it bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import launch_module
from vae_restore import pretrained
from vae_restore.checksums import sha256_file
from vae_restore.models import VAE, get_preset, load_model, read_metadata, save_model


def saved_run(folder: Path) -> VAE:
    torch.manual_seed(0)
    model = VAE(get_preset("fullconv"))
    save_model(model, folder / pretrained.WEIGHTS_FILE, metadata={"stage": "distorted"})
    return model


def test_float32_weights_are_bundled_byte_for_byte(tmp_path):
    saved_run(tmp_path / "run")
    run_weights = tmp_path / "run" / "model.safetensors"
    launch_module("bundle_model").copy_weights(run_weights, tmp_path / "copy.safetensors", "float32")
    assert sha256_file(tmp_path / "copy.safetensors") == sha256_file(tmp_path / "run" / "model.safetensors")


@pytest.mark.slow  # an export with its parity checks
def test_float16_weights_are_half_the_runs_and_the_graph_is_exported_from_them(tmp_path, monkeypatch):
    run = tmp_path / "run"
    model = saved_run(run)
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "pretrained")

    assert launch_module("bundle_model").main(["--run", str(run), "--name", "demo", "--weights_dtype", "float16"]) == 0

    folder = tmp_path / "pretrained" / "demo"
    weights = folder / pretrained.WEIGHTS_FILE
    assert {t.dtype for t in load_file(str(weights)).values()} == {torch.float16}
    assert read_metadata(weights)["stage"] == "distorted" and read_metadata(weights)["preset"] == "fullconv"
    ratio = weights.stat().st_size / (run / pretrained.WEIGHTS_FILE).stat().st_size
    assert ratio == pytest.approx(0.5, abs=0.01)
    manifest = json.loads((folder / "model.onnx.json").read_text())
    assert manifest["source"]["sha256"] == sha256_file(weights) and manifest["sha256"] == sha256_file(
        folder / pretrained.ONNX_FILE
    )
    assert manifest["float16_stored_initializers"] > 0 and manifest["parity"]["passed"]
    assert (folder / pretrained.ONNX_FILE).stat().st_size < 0.6 * (run / pretrained.WEIGHTS_FILE).stat().st_size
    loaded = load_model(weights).state_dict()  # an fp32 model, equal to the run's weights rounded to float16
    for key, value in model.state_dict().items():
        assert loaded[key].dtype == torch.float32 and torch.equal(loaded[key], value.half().float())
