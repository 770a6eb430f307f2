"""`accelerate launch launch/evaluate.py` with one and with two CPU processes gives the same per-image CSV."""

from __future__ import annotations

import json

import pytest
import torch

from vae_restore.models import VAE, save_model

from ..conftest import launch_script, write_images


@pytest.mark.slow
def test_two_processes_merge_to_the_one_process_csv(tmp_path):
    torch.manual_seed(0)
    save_model(VAE(), tmp_path / "run" / "model.safetensors", {"stage": "distorted"})
    write_images(tmp_path / "data", 5, size=(140, 150), seed=11)
    common = [
        "--checkpoint",
        str(tmp_path / "run"),
        "--data",
        str(tmp_path / "data"),
        "--distortion",
        "jpeg20",
        "--num_comparisons",
        "3",
    ]
    launch_script(
        "launch/evaluate.py",
        [*common, "--output", str(tmp_path / "one"), "--report_to", "wandb"],
        tmp_path,
        processes=1,
        timeout=300,
    )
    two = launch_script(
        "launch/evaluate.py", [*common, "--output", str(tmp_path / "two")], tmp_path, processes=2, timeout=300
    )

    one_summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    two_summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert one_summary["num_processes"] == 1 and one_summary["images_per_process"] == [5]
    assert two_summary["num_processes"] == 2 and two_summary["images_per_process"] == [3, 2]
    one_csv = (tmp_path / "one" / "per_image.csv").read_text()
    assert one_csv.count("\n") == 6
    assert (tmp_path / "two" / "per_image.csv").read_text() == one_csv
    assert two_summary["metrics"] == one_summary["metrics"]
    for folder in ("one", "two"):
        names = sorted(p.name for p in (tmp_path / folder / "comparisons").iterdir())
        assert names == ["0000_img_000.png", "0001_img_001.png", "0002_img_002.png"]
    assert two.stdout.count("images (jpeg20) scored") == 1, "only the main process reports"

    tables = list((tmp_path / "one" / "wandb").glob("offline-run-*/files/media/table/**/*.table.json"))
    assert len(tables) == 1, "the comparison table goes to the (offline) W&B run"
    table = json.loads(tables[0].read_text())
    assert [row[0] for row in table["data"]] == ["img_000.png", "img_001.png", "img_002.png"]
