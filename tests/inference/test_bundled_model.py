"""The models that ship in the package: intact files, a real restoration out of the box, cards that tell the truth."""

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

NAME = "general"
FOLDER = pretrained.PRETRAINED_DIR / NAME
BUNDLED = ["aged", "general", "jpeg"]
ROUTER = pretrained.PRETRAINED_DIR / pretrained.ROUTER


def damaged_sample(distortion: str = "awgn25") -> tuple[np.ndarray, np.ndarray]:
    """(damaged uint8, clear uint8): a 192×256 crop of the astronaut with a named distortion, seeded."""
    clear = embedded_images()[0][1][64:256, 128:384]
    planes = clear.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
    damaged = distort(planes, distortion, 0)[0].transpose(1, 2, 0)
    return np.rint(damaged * 255).astype(np.uint8), clear


def noisy_sample() -> tuple[np.ndarray, np.ndarray]:
    """(noisy uint8, clear uint8): the astronaut crop with σ = 25 Gaussian noise."""
    return damaged_sample("awgn25")


def test_the_bundled_models_fit_the_packages_budget():
    assert pretrained.available() == [*BUNDLED, "auto"] and pretrained.default_model() == "pretrained:auto"
    files = [f for name in [*BUNDLED, pretrained.ROUTER] for f in (pretrained.PRETRAINED_DIR / name).iterdir()]
    assert sum(f.stat().st_size for f in files) < 25_000_000


@pytest.mark.parametrize("name", BUNDLED)
def test_each_bundled_models_files_match_its_manifest(name):
    folder = pretrained.PRETRAINED_DIR / name
    manifest = json.loads((folder / "model.onnx.json").read_text())
    assert manifest["sha256"] == sha256_file(folder / "model.onnx")
    assert manifest["source"]["sha256"] == sha256_file(folder / "model.safetensors")
    assert manifest["preset"]["name"] == "fullconv" and manifest["spatial"] == "dynamic"


def test_the_routers_files_match_its_manifest_and_name_bundled_models():
    manifest = json.loads((ROUTER / "detector.onnx.json").read_text())
    assert manifest["sha256"] == sha256_file(ROUTER / "detector.onnx") and "aging" in manifest["groups"]
    rule = pretrained.routing_rule()
    assert set(rule.models()) == set(BUNDLED) and rule.otherwise == "general"
    assert [r.model for r in rule.routes] == ["aged", "jpeg"], "aging is judged first, then JPEG blocking"


def test_out_of_the_box_restoration_is_deterministic_and_beats_its_input():
    from vae_restore.inference import Restorer

    noisy, clear = noisy_sample()
    (first, model), second = Restorer(providers="cpu").restore_named(noisy), Restorer(providers="cpu").restore(noisy)
    assert np.array_equal(first, second) and model == "general"
    gain = psnr(first / 255, clear / 255) - psnr(noisy / 255, clear / 255)
    assert gain >= 5.0, f"the bundled model gains only {gain:.2f} dB on a σ 25 sample"


def test_an_aged_image_goes_to_the_aged_model_which_undoes_ageing():
    from vae_restore.inference import Restorer

    aged, clear = damaged_sample("aged")
    first, second = (Restorer("pretrained:aged", providers="cpu").restore(aged) for _ in range(2))
    assert np.array_equal(first, second)
    gain = psnr(first / 255, clear / 255) - psnr(aged / 255, clear / 255)
    assert gain >= 3.0, f"the aged model gains only {gain:.2f} dB on an aged sample"
    routed, model = Restorer(providers="cpu").restore_named(aged)
    assert model == "aged" and np.array_equal(routed, first)


def test_a_low_quality_jpeg_goes_to_the_jpeg_model_which_removes_its_blocks():
    from vae_restore.inference import Restorer

    saved, clear = damaged_sample("jpeg10")
    routed, model = Restorer(providers="cpu").restore_named(saved)
    assert model == "jpeg" and np.array_equal(routed, Restorer("pretrained:jpeg", providers="cpu").restore(saved))
    gain = psnr(routed / 255, clear / 255) - psnr(saved / 255, clear / 255)
    assert gain >= 1.0, f"the jpeg model gains only {gain:.2f} dB on a quality-10 sample"


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


@pytest.mark.parametrize("name", BUNDLED)
def test_each_card_shows_its_models_scores(name):
    from benchmarks.model_scores import markdown

    folder = pretrained.PRETRAINED_DIR / name
    scores = json.loads((folder / "scores.json").read_text())
    card = (folder / "README.md").read_text()
    assert scores["model_sha256"] == json.loads((folder / "model.onnx.json").read_text())["sha256"]
    assert markdown(scores).strip() in card and card.startswith("---\nlicense: mit\n")
    assert pretrained.card_summary(name).startswith("A fully convolutional VAE")


@pytest.mark.real_data
@pytest.mark.skipif(not (SHARED_DATA / "val_photos").is_dir(), reason="needs ../shared/data/val_photos")
@pytest.mark.parametrize("name, distortion", [("general", "awgn25"), ("aged", "aged"), ("jpeg", "jpeg20")])
def test_a_cards_figure_is_what_its_evaluation_command_prints(tmp_path, name, distortion):
    from benchmarks.model_scores import MODEL, ScoreOptions, score_model

    folder = pretrained.PRETRAINED_DIR / name
    options = ScoreOptions(
        model=folder / "model.onnx",
        train_data=SHARED_DATA / "train_photos",
        val_data=SHARED_DATA / "val_photos",
        art=None,
        work=tmp_path,
        baselines=[],
        distortions=(distortion,),
    )
    again = score_model(options)["columns"][f"photos:{distortion}"][MODEL]
    bundled = json.loads((folder / "scores.json").read_text())["columns"][f"photos:{distortion}"][MODEL]
    # onnxruntime's float kernels round differently on other x86 instruction sets; the card prints 2 decimals
    assert again == pytest.approx(bundled, abs=5e-3)


def test_the_routers_card_shows_the_scores_of_the_chain_it_ships():
    from benchmarks.model_scores import markdown

    scores = json.loads((ROUTER / "scores.json").read_text())
    card = (ROUTER / "README.md").read_text()
    assert scores["routing"]["detector_sha256"] == sha256_file(ROUTER / "detector.onnx")
    assert scores["routing"]["routes"] == pretrained.routing_rule().to_dict()["routes"]
    for name in BUNDLED:
        graph = pretrained.PRETRAINED_DIR / name / "model.onnx"
        assert scores["routing"]["models_sha256"][name] == sha256_file(graph)
    assert markdown(scores).strip() in card and card.startswith("---\nlicense: mit\n")


def test_the_default_meets_the_bundled_models_targets_in_its_shipped_scores():
    """What the README claims for `auto`: above every classical method on noise, +1 dB on every distortion."""
    columns = json.loads((ROUTER / "scores.json").read_text())["columns"]

    def gain(column: str) -> float:
        return columns[column]["model"]["psnr"] - columns[column]["input"]["psnr"]

    for column in ("photos:awgn25", "photos:awgn50"):
        best = max(columns[column][b]["psnr"] for b in ("nlmeans", "tv", "cbm3d"))
        assert columns[column]["model"]["psnr"] > best, column
    assert min(gain(c) for c in columns if c.startswith("photos:")) >= 1.0
    assert gain("art:aged") >= 1.5


def test_every_bundled_file_is_package_data():
    """A file that `pip install .` would leave out works from a clone only: the patterns must name each one."""
    from fnmatch import fnmatch

    tomllib = pytest.importorskip("tomllib", reason="Python 3.11's TOML reader")
    pyproject = tomllib.loads((pretrained.PRETRAINED_DIR.parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["vae_restore.pretrained"]
    files = [
        p.relative_to(pretrained.PRETRAINED_DIR).as_posix()
        for p in pretrained.PRETRAINED_DIR.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc")
    ]
    assert len(files) >= 13 and [f for f in files if not any(fnmatch(f, p) for p in patterns)] == []
