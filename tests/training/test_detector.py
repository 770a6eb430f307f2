"""The damage detector's training command: seeded, exported behind its parity gate, clear about bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors import safe_open

from tests.conftest import launch_module, write_images
from vae_restore.errors import ConfigError, DataError, TrainingError
from vae_restore.training.detector_fit import DetectorConfig, train_detector

TINY = {"max_train_steps": 2, "train_batch_size": 4, "resolution": 32, "width": 4}


def quiet(*_args) -> None:
    pass


def test_the_command_trains_exports_and_gates_the_detector(tmp_path, capsys):
    import onnxruntime as ort

    flags = [f"--{k}={v}" for k, v in TINY.items()]
    assert launch_module("train_detector").main([*flags, "--output_dir", str(tmp_path)]) == 0
    assert "step 1 loss" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "detector.onnx.json").read_text())
    assert manifest["groups"] == ["aging", "gaussian_blur", "gaussian_noise", "jpeg"]
    assert manifest["parity"]["max_abs_diff"] <= manifest["parity"]["tolerance"]
    with safe_open(str(tmp_path / "detector.safetensors"), framework="pt") as f:
        assert json.loads(f.metadata()["config"])["max_train_steps"] == 2
    session = ort.InferenceSession(str(tmp_path / "detector.onnx"), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(None, {"image": np.random.default_rng(0).random((3, 3, 41, 67), np.float32)})
    assert probabilities.shape == (3, 4) and ((probabilities > 0) & (probabilities < 1)).all()


def test_one_seed_gives_one_detector():
    first, second = (train_detector(DetectorConfig(**TINY), log=quiet).state_dict() for _ in range(2))
    other = train_detector(DetectorConfig(**TINY, seed=1), log=quiet).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_bad_settings_and_data_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="damage_probability must be between 0 and 1"):
        DetectorConfig(damage_probability=1.5)
    write_images(tmp_path, 2, size=(20, 20))
    with pytest.raises(DataError, match="no image in .* is at least 32 pixels on its short side; lower --resolution"):
        train_detector(DetectorConfig(**TINY, train_data_dir=str(tmp_path)), log=quiet)
    with pytest.raises(TrainingError, match="loss is nan at step 1; lower --learning_rate"):
        train_detector(DetectorConfig(**TINY, learning_rate=math.inf), log=quiet)
