"""The model that ships in the package: intact files, a real restoration out of the box, a card that tells the truth."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import SHARED_DATA, subprocess_env
from vae_restore import pretrained
from vae_restore.checksums import sha256_file
from vae_restore.data.embedded import embedded_images
from vae_restore.export.quantize import distort
from vae_restore.image_scores import psnr

NAME = pretrained.DEFAULT_MODEL
FOLDER = pretrained.PRETRAINED_DIR / NAME


def noisy_sample() -> tuple[np.ndarray, np.ndarray]:
    """(noisy uint8, clear uint8): a 192×256 crop of the astronaut with σ = 25 Gaussian noise, seeded."""
    clear = embedded_images()[0][1][64:256, 128:384]
    planes = clear.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
    noisy = distort(planes, "awgn25", 0)[0].transpose(1, 2, 0)
    return np.rint(noisy * 255).astype(np.uint8), clear


def test_the_default_model_is_bundled_and_its_files_match_the_manifest():
    assert NAME in pretrained.names() and pretrained.default_onnx() == FOLDER / "model.onnx"
    manifest = json.loads((FOLDER / "model.onnx.json").read_text())
    assert manifest["sha256"] == sha256_file(FOLDER / "model.onnx")
    assert manifest["source"]["sha256"] == sha256_file(FOLDER / "model.safetensors")
    assert manifest["preset"]["name"] == "fullconv" and manifest["spatial"] == "dynamic"
    assert sum(p.stat().st_size for p in FOLDER.iterdir()) < 25 * 2**20


def test_out_of_the_box_restoration_is_deterministic_and_beats_its_input():
    from vae_restore.inference import Restorer

    noisy, clear = noisy_sample()
    first, second = Restorer(providers="cpu").restore(noisy), Restorer(providers="cpu").restore(noisy)
    assert np.array_equal(first, second)
    gain = psnr(first / 255, clear / 255) - psnr(noisy / 255, clear / 255)
    assert gain >= 5.0, f"the bundled model gains only {gain:.2f} dB on a σ 25 sample"


def test_a_bundled_model_is_named_pretrained_name():
    from vae_restore.inference import Restorer

    assert Restorer(f"pretrained:{NAME}", providers="cpu").path == FOLDER / "model.onnx"


def test_restore_command_uses_the_bundled_model_without_torch(tmp_path):
    from PIL import Image

    Image.fromarray(noisy_sample()[0]).save(tmp_path / "photo.png")
    code = (
        "import sys\n"
        "from vae_restore.cli import main\n"
        f"code = main(['restore', {str(tmp_path / 'photo.png')!r}, '--output', {str(tmp_path / 'out')!r}])\n"
        "print(code, 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["0", "False"] and (tmp_path / "out" / "photo.png").is_file()


def test_the_card_shows_the_bundled_scores():
    from benchmarks.model_scores import markdown

    scores = json.loads((FOLDER / "scores.json").read_text())
    card = (FOLDER / "README.md").read_text()
    assert scores["model_sha256"] == json.loads((FOLDER / "model.onnx.json").read_text())["sha256"]
    assert markdown(scores).strip() in card and card.startswith("---\nlicense: mit\n")
    assert pretrained.card_summary(NAME).startswith("A fully convolutional VAE")


@pytest.mark.real_data
@pytest.mark.skipif(not (SHARED_DATA / "val_photos").is_dir(), reason="needs ../shared/data/val_photos")
def test_the_cards_awgn25_figure_is_what_its_evaluation_command_prints(tmp_path):
    from benchmarks.model_scores import MODEL, ScoreOptions, score_model

    options = ScoreOptions(
        model=FOLDER / "model.onnx",
        train_data=SHARED_DATA / "train_photos",
        val_data=SHARED_DATA / "val_photos",
        art=None,
        work=tmp_path,
        baselines=[],
        distortions=("awgn25",),
    )
    again = score_model(options)["columns"]["photos:awgn25"][MODEL]
    bundled = json.loads((FOLDER / "scores.json").read_text())["columns"]["photos:awgn25"][MODEL]
    # onnxruntime's float kernels round differently on other x86 instruction sets; the card prints 2 decimals
    assert again == pytest.approx(bundled, abs=5e-3)
