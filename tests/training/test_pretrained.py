"""The bundled-model registry: names, paths, card summaries and `--init_from pretrained:NAME`."""

from __future__ import annotations

import pytest
import torch

from vae_restore import pretrained
from vae_restore.config_io import build_config
from vae_restore.errors import CheckpointError
from vae_restore.models import VAE, get_preset, save_model
from vae_restore.training.run_setup import resolve_parent


@pytest.fixture()
def bundle(tmp_path, monkeypatch):
    """A registry folder holding one model `demo` (fullconv weights, a stand-in graph file, a card)."""
    folder = tmp_path / "demo"
    folder.mkdir()
    torch.manual_seed(0)
    save_model(VAE(get_preset("fullconv")), folder / pretrained.WEIGHTS_FILE)
    (folder / pretrained.ONNX_FILE).write_bytes(b"graph")
    (folder / pretrained.CARD_FILE).write_text(
        "---\nlicense: mit\n---\n# demo\n\nRestores  noisy\nphotos.\n\n## More\n"
    )
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    monkeypatch.setattr(pretrained, "DEFAULT_MODEL", "demo")
    return folder


def test_names_paths_and_card_summary(bundle, tmp_path):
    (tmp_path / "weights_only").mkdir()  # a folder without a graph is not a bundled model
    assert pretrained.names() == ["demo"]
    assert pretrained.onnx_path("demo") == bundle / "model.onnx"
    assert pretrained.available() == ["demo"] and pretrained.default_model() == "pretrained:demo"
    assert pretrained.card_summary("demo") == "Restores noisy photos."
    assert pretrained.resolve_weights("pretrained:demo") == str(bundle / "model.safetensors")
    assert pretrained.resolve_weights("runs/clear") == "runs/clear"
    assert pretrained.resolve_onnx("pretrained:demo") == bundle / "model.onnx"
    assert pretrained.resolve_onnx(tmp_path / "model.onnx") == tmp_path / "model.onnx"
    with pytest.raises(CheckpointError, match="no bundled model 'other' \\(bundled: demo\\)"):
        pretrained.onnx_path("other")


def test_no_default_model_when_none_is_bundled(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    assert pretrained.names() == [] and pretrained.default_model() is None


@pytest.mark.parametrize("stage", ["clear", "distorted"])
def test_init_from_a_bundled_model_starts_either_stage_from_its_weights(bundle, tmp_path, stage):
    overrides = {"stage": stage, "init_from": "pretrained:demo", "output_dir": str(tmp_path / "out")}
    parent = resolve_parent(build_config(None, overrides))
    assert parent is not None and parent.path == (bundle / "model.safetensors").resolve()
    assert resolve_parent(build_config(None, {"stage": "clear", "output_dir": str(tmp_path / "out")})) is None
    with pytest.raises(CheckpointError, match="no bundled model 'nope'"):
        resolve_parent(build_config(None, {**overrides, "init_from": "pretrained:nope"}))


def test_models_command_lists_the_bundled_models(bundle, capsys):
    from vae_restore.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("demo (default): Restores noisy photos.")
    assert "restore with --model pretrained:demo; fine-tune with --init_from pretrained:demo" in out


def test_restorer_without_a_model_needs_a_bundled_one(tmp_path, monkeypatch):
    from vae_restore.inference import Restorer

    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="no model given and none is bundled"):
        Restorer()


def test_restorer_and_restore_command_name_a_bundled_model(bundle, tmp_path, capsys):
    from vae_restore.cli import main
    from vae_restore.inference import Restorer

    with pytest.raises(CheckpointError, match="no bundled model 'nope' \\(bundled: demo\\)"):
        Restorer("pretrained:nope")
    (tmp_path / "in.png").write_bytes(b"")
    assert (
        main(["restore", str(tmp_path / "in.png"), "--model", "pretrained:nope", "--output", str(tmp_path / "o")]) != 0
    )
    assert "no bundled model 'nope' (bundled: demo)" in capsys.readouterr().err
