"""Model cards: front matter, the training table, lineage and the sections a published model adds."""

from __future__ import annotations

import json

from vae_restore.config import Config
from vae_restore.model_card import CardContent, render_card, write_run_card


def run_config(stage: str = "distorted") -> dict:
    config = Config().to_dict()
    config["train"]["stage"] = stage
    config["model"]["preset"] = "fullconv"
    config["distortions"]["p_jpeg"] = 0.3
    config["run"] = {
        "global_step": 120,
        "lineage": {"parent": "/x/clear/model.safetensors", "parent_sha256": "ab" * 32},
        "weights_sha256": "cd" * 32,
        "mixed_precision": "bf16",
        "num_processes": 2,
    }
    return config


def test_card_carries_front_matter_training_settings_lineage_and_sections():
    content = CardContent(
        title="general",
        summary="Restores photos and paintings.",
        datasets=["BSDS500"],
        commands=["accelerate launch launch/train.py --stage clear"],
        evaluation="| column | input |\n|---|---|\n| photos:awgn25 | 20.4 |",
        limitations=["8-bit RGB only"],
        data_terms="BSDS500: non-commercial research and education.",
    )
    card = render_card(content, run_config(), {"step": 120, "psnr": 27.5})
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert "license: mit" in front and "datasets: [BSDS500]" in front and f"base_model_sha256: {'ab' * 32}" in front
    assert body.lstrip().startswith("# general\n\nRestores photos and paintings.")
    assert "| steps | 120 of batch 32, crops 128² |" in body and "| precision | bf16 |" in body
    assert "gaussian_noise 1, jpeg 0.3" in body and f"(sha256 `{'ab' * 32}`)" in body
    assert "Step 120: psnr 27.5" in body and "| photos:awgn25 | 20.4 |" in body
    assert "- 8-bit RGB only" in body and "non-commercial" in body


def test_a_clear_run_without_parent_or_validation_says_so(tmp_path):
    config = run_config("clear")
    config["run"]["lineage"] = {}
    (tmp_path / "config.json").write_text(json.dumps(config))
    card = write_run_card(tmp_path).read_text()
    assert "started from random weights" in card and "distortions" not in card and "Last validation" not in card
    assert "base_model_sha256" not in card and not list(tmp_path.glob(".*.tmp"))


def test_bundled_weights_are_named_only_when_they_are_not_the_runs_file():
    content = CardContent(title="aged", summary="Old photos.")
    converted = render_card(content, run_config(), bundled_weights=("ef" * 32, "float16"))
    assert f"- bundled weights sha256: `{'ef' * 32}` (the run's weights stored as float16)" in converted
    same = render_card(content, run_config(), bundled_weights=("cd" * 32, "float32"))
    assert "bundled weights" not in same and same == render_card(content, run_config())
