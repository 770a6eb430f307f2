"""Training on real layouts through `accelerate launch`: the run summary, strict_data, recipes, two processes."""

import json
import re

import pytest
import torch

from vae_restore.models import ORIGINAL, VAE, save_model

from ..conftest import REPO, launch_train, write_images

pytestmark = pytest.mark.slow


@pytest.fixture
def parent(tmp_path):
    """Clear-stage weights to start stage distorted from (training a clear stage is tested elsewhere)."""
    torch.manual_seed(0)
    return save_model(VAE(ORIGINAL), tmp_path / "parent.safetensors", {"stage": "clear"})


@pytest.fixture
def kaggle_like(tmp_path):
    """The original project's naming, one clear image with two distorted versions, one broken and one small file."""
    root = tmp_path / "art"
    names = [f"image ({i})" for i in (1, 2, 3, 12)]
    write_images(root / "clear", 4, size=(140, 160), names=[n + ".jpg" for n in names])
    write_images(root / "distorted", 4, size=(140, 160), seed=1, names=[n + "_blur.jpg" for n in names])
    write_images(root / "distorted", 1, size=(140, 160), seed=2, names=["image (12) (1).jpg"])
    write_images(root / "clear", 1, size=(60, 90), seed=3, names=["image (4).png"])
    write_images(root / "distorted", 1, size=(60, 90), seed=4, names=["image (4)_noise.png"])
    (root / "clear" / "image (5).png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    write_images(root / "distorted", 1, size=(140, 160), seed=5, names=["image (5)_blur.png"])
    return root


def distorted_stage(data, parent, out, *extra: str) -> list[str]:
    """Flags of a two-step stage distorted run on `data`, starting from `parent`, writing under `out`."""
    return ["--stage", "distorted", "--train_data", str(data), "--init_from", str(parent), "--output_dir", str(out),
            "--max_train_steps", "2", *extra]  # fmt: skip


def test_paired_original_naming_trains_and_reports_skipped_and_padded_files(tmp_path, kaggle_like, parent, tiny_args):
    out = tmp_path / "runs"
    args = distorted_stage(kaggle_like, parent, out, "--val_data", str(kaggle_like), "--synthetic_ratio", "0.5")
    args += tiny_args
    launch_train(args, cwd=tmp_path)
    saved = json.loads((out / "distorted" / "config.json").read_text())
    summary = saved["run"]
    assert summary["num_train_images"] == 6  # 7 pairs, the one with the broken clear file skipped
    assert any("image (5).png" in s for s in summary["skipped_files"])
    assert [p.rsplit("/", 1)[1] for p in summary["padded_files"]] == ["image (4).png"]
    assert saved["data"]["synthetic_ratio"] == 0.5


def test_strict_data_stops_before_training_naming_the_file(tmp_path, kaggle_like, parent, tiny_args):
    out = tmp_path / "runs"
    args = [*distorted_stage(kaggle_like, parent, out, "--strict_data", "true"), *tiny_args]
    result = launch_train(args, cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert "strict_data is on" in result.stderr and "image (5).png" in result.stderr
    assert not (out / "distorted" / "model.safetensors").exists()
    assert not (out / "distorted" / "checkpoints").exists()


def test_clear_only_data_with_the_artwork_recipe(tmp_path, parent, tiny_args):
    write_images(tmp_path / "photos", 4, size=(150, 170))
    out = tmp_path / "runs"
    recipe = str(REPO / "configs" / "distorted_art.yaml")
    args = [*distorted_stage(tmp_path / "photos", parent, out, "--config", recipe), *tiny_args]
    launch_train(args, cwd=tmp_path)
    saved = json.loads((out / "distorted" / "config.json").read_text())
    assert saved["distortions"]["p_cracks"] == 0.2 and saved["distortions"]["p_scratches"] == 0.3
    assert list((out / "distorted" / "samples").glob("step-*.png"))


def test_two_processes_share_one_pixel_cache_and_split_the_images(tmp_path, tiny_args):
    write_images(tmp_path / "photos", 7, size=(140, 150))
    out = tmp_path / "runs"
    args = [
        "--stage",
        "clear",
        "--train_data",
        str(tmp_path / "photos"),
        "--output_dir",
        str(out),
        "--max_train_steps",
        "2",
        *tiny_args,
    ]
    result = launch_train(args, cwd=tmp_path, processes=2)
    log = result.stdout + result.stderr
    assert len(re.findall(r"decoding 6 images into the pixel cache", log)) == 1  # once per machine, not per process
    assert len(list((out / "cache").glob("pixels-*"))) == 2  # training and validation images
    summary = json.loads((out / "clear" / "config.json").read_text())["run"]
    assert summary["num_train_images"] == 6 and summary["num_processes"] == 2


def test_a_data_error_while_the_main_process_builds_the_cache_stops_every_process_clearly(tmp_path, tiny_args):
    """The other processes wait while the main one builds the disk cache: they must stop with its message."""
    write_images(tmp_path / "photos", 4, size=(140, 150))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"not an image")
    data = ["--train_data", str(tmp_path / "photos"), "--val_data", str(tmp_path / "bad"), "--pixel_cache", "disk"]
    args = ["--stage", "clear", *data, "--output_dir", str(tmp_path / "runs"), "--max_train_steps", "2", *tiny_args]
    result = launch_train(args, cwd=tmp_path, processes=2, check=False)
    # Each process prints the error unless torchrun stops it first, once the other has exited.
    assert result.returncode != 0 and "error: none of the 1 images could be read" in result.stderr
    assert "broken.png: not a readable image" in result.stderr
    assert "vae_restore/" not in result.stderr, "no worker traceback (the launcher's own names no file of ours)"
