"""W&B environment per run: the user's values are kept, ours follow each run in the process."""

import os

import pytest

from vae_restore import tracking

NAMES = ("WANDB_DIR", "WANDB_MODE", "WANDB_SILENT", "WANDB_API_KEY")


@pytest.fixture
def clean_env(monkeypatch):
    """No W&B variables and no key; setting each first makes monkeypatch restore whatever the test writes."""
    for name in NAMES:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setattr(tracking, "_SET_HERE", {})
    monkeypatch.setattr(tracking, "wandb_api_key_available", lambda: False)


def test_second_run_in_a_process_gets_its_own_wandb_dir(clean_env, tmp_path):
    tracking.prepare_tracker_env("wandb", tmp_path / "clear")
    assert os.environ["WANDB_DIR"] == str((tmp_path / "clear").resolve())
    tracking.prepare_tracker_env("wandb", tmp_path / "distorted")
    assert os.environ["WANDB_DIR"] == str((tmp_path / "distorted").resolve())
    assert os.environ["WANDB_MODE"] == "offline"


def test_user_set_values_are_kept(clean_env, monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    for stage in ("clear", "distorted"):
        tracking.prepare_tracker_env("wandb", tmp_path / stage)
        assert os.environ["WANDB_DIR"] == str(tmp_path / "mine")
        assert os.environ["WANDB_MODE"] == "disabled"


def test_other_trackers_leave_the_environment_alone(clean_env, tmp_path):
    tracking.prepare_tracker_env("tensorboard", tmp_path / "run")
    assert not any(name in os.environ for name in NAMES)
