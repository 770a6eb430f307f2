"""W&B environment per run: the user's values are kept, ours follow each run in the process."""

import os
import subprocess
import sys

import pytest

from vae_restore import tracking
from vae_restore.errors import ConfigError

from ..conftest import REPO, subprocess_env

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


@pytest.mark.parametrize("mode", ["", "offline-ish", "OFFLINE"])
def test_an_invalid_wandb_mode_is_refused_naming_the_valid_ones(clean_env, monkeypatch, tmp_path, mode):
    monkeypatch.setenv("WANDB_MODE", mode)
    with pytest.raises(ConfigError, match=r"WANDB_MODE=.* online, offline, disabled") as raised:
        tracking.prepare_tracker_env("wandb", tmp_path / "run")
    assert "\n" not in str(raised.value)


def test_an_invalid_wandb_mode_does_not_matter_without_wandb(clean_env, monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "")
    tracking.prepare_tracker_env("none", tmp_path / "run")
    assert os.environ["WANDB_MODE"] == ""


def test_training_with_an_empty_wandb_mode_stops_at_once_with_one_line(tmp_path):
    env = subprocess_env(WANDB_MODE="")
    result = subprocess.run(
        [sys.executable, str(REPO / "launch" / "train.py"), "--stage", "clear", "--output_dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "WANDB_MODE=''" in errors[0] and "offline" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "clear" / "checkpoints").exists()
