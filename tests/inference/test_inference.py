"""`vae_restore.inference.Restorer`: torch-free, verified, equal to the PyTorch tiled restoration."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from vae_restore import load_model
from vae_restore.errors import CheckpointError
from vae_restore.evaluation.tiled import restore_image
from vae_restore.export.pipeline import export_onnx
from vae_restore.inference import CPU, CUDA, Restorer, requested_providers
from vae_restore.models import ORIGINAL, VAE, save_model
from vae_restore.tiling import restore_tiled

from ..conftest import subprocess_env
from ..onnx_models import exported_model, torch_tile_fn


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    return exported_model(tmp_path_factory)


@pytest.fixture(scope="module")
def restorer(exported):
    return Restorer(exported[1], providers="cpu", batch_size=5)


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (max(1, height // 8), max(1, width // 8), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(base).resize((width, height), Image.BILINEAR))


def test_restorer_imports_no_torch(exported):
    code = (
        "import json, sys, numpy as np\n"
        "from vae_restore.inference import Restorer\n"
        f"r = Restorer({str(exported[1])!r})\n"
        "out = r.restore(np.zeros((150, 140, 3), np.uint8))\n"
        "print(json.dumps([r.provider, out.shape, str(out.dtype), 'torch' in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["CPUExecutionProvider", [150, 140, 3], "uint8", False]
    assert result.stderr == ""  # onnxruntime's start-up noise is silenced


@pytest.mark.parametrize("shape", [(1, 1), (37, 200), (128, 128), (300, 451)])
def test_equals_pytorch_tiled_restoration(exported, restorer, shape):
    image = smooth_image(*shape, seed=shape[1]).astype(np.float32) / 255.0
    expected = restore_tiled(image, torch_tile_fn(load_model(exported[0])), batch_size=3)
    got = restorer.restore(image)
    assert got.shape == expected.shape == (*shape, 3) and got.dtype == np.float32
    assert np.abs(got - expected).max() <= 1e-4


def test_uint8_pil_and_path_inputs_give_uint8_of_the_same_size(restorer, tmp_path):
    image = smooth_image(90, 260, seed=3)
    path = tmp_path / "x.png"
    Image.fromarray(image).save(path)
    from_array = restorer.restore(image)
    assert from_array.dtype == np.uint8 and from_array.shape == image.shape
    np.testing.assert_array_equal(restorer.restore(Image.fromarray(image)), from_array)
    np.testing.assert_array_equal(restorer.restore(path), from_array)
    np.testing.assert_array_equal(restorer.restore(str(path)), from_array)
    float_out = restorer.restore(image.astype(np.float64) / 255.0)
    assert np.abs(float_out * 255.0 - from_array).max() <= 0.5 + 1e-3


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((10, 10, 3), np.int32), "dtype int32"),
        (np.zeros((10, 10), np.uint8), "H×W×3"),
        (np.zeros((10, 10, 4), np.uint8), "H×W×3"),
        (np.full((10, 10, 3), np.nan, np.float32), "NaN"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.full((10, 10, 3), 255.0, np.float32), r"\[0, 1\]"),
        ([[0, 0, 0]], "numpy array"),
    ],
)
def test_bad_input_is_a_clear_value_error(restorer, image, message):
    with pytest.raises(ValueError, match=message):
        restorer.restore(image)


def test_unreadable_file_is_a_value_error(restorer, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png"):
        restorer.restore(bad)


def test_modified_model_or_missing_manifest_is_refused(exported, tmp_path):
    copy = tmp_path / "model.onnx"
    shutil.copy(exported[1], copy)
    with pytest.raises(CheckpointError, match="no manifest"):
        Restorer(copy)
    assert Restorer(copy, verify=False).provider == CPU
    shutil.copy(exported[1].with_name("model.onnx.json"), tmp_path / "model.onnx.json")
    Restorer(copy)
    with open(copy, "ab") as f:
        f.write(b"\0")
    with pytest.raises(CheckpointError, match="does not match model.onnx.json"):
        Restorer(copy)


def test_decoder_export_is_refused(exported, tmp_path):
    copy = tmp_path / "model.onnx"
    shutil.copy(exported[1], copy)
    manifest = json.loads(exported[1].with_name("model.onnx.json").read_text())
    (tmp_path / "model.onnx.json").write_text(json.dumps({**manifest, "part": "decoder"}))
    with pytest.raises(CheckpointError, match="'decoder' export"):
        Restorer(copy)


@pytest.mark.parametrize("overlap", [-1, 128, 200])
def test_overlap_outside_the_tile_is_a_clear_value_error(exported, overlap):
    with pytest.raises(ValueError, match="overlap must be at least 0 and less than the tile side 128"):
        Restorer(exported[1], providers="cpu", overlap=overlap)
    with pytest.raises(ValueError, match="overlap must be"):
        restore_tiled(np.zeros((200, 300, 3), np.float32), lambda tiles: tiles, overlap=overlap)


def test_default_overlap_matches_evaluation_for_another_tile_size(tmp_path):
    torch.manual_seed(0)
    preset = replace(ORIGINAL, name="tile64", image_size=64, channels=(8, 8, 16, 16), hidden_dim=32, latent_dim=16)
    model = VAE(preset).eval()
    weights = save_model(model, tmp_path / "run" / "model.safetensors", {"stage": "test"})
    restorer = Restorer(export_onnx(weights, tmp_path / "model.onnx", check_batch_sizes=(1,)).model, providers="cpu")
    assert (restorer.tile, restorer.overlap) == (64, 8)
    image = smooth_image(100, 150, seed=4).astype(np.float32) / 255.0
    assert np.abs(restorer.restore(image) - restore_image(model, image, "cpu")).max() <= 1e-4


def test_provider_choice():
    assert requested_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert requested_providers("auto", [CPU]) == [CPU]
    assert requested_providers("cpu", [CUDA, CPU]) == [CPU]
    assert requested_providers([CPU], [CPU]) == [CPU]
    assert requested_providers(f"{CUDA}, {CPU}", [CPU]) == [CUDA, CPU], "the command line's comma-separated names"
    with pytest.raises(ValueError, match="onnxruntime-gpu"):
        requested_providers("cuda", [CPU])
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda'"):
        requested_providers("tpu", [CPU])
