import argparse

import pytest

from vae_restore.config import Config, add_config_arguments, build_config, config_from_args
from vae_restore.errors import ConfigError


def parse(argv, yaml_path=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(argv), yaml_path)


def test_yaml_then_flags_override_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  max_train_steps: 7\n  seed: 3\noptim:\n  learning_rate: 1.0e-4\n")
    config = parse(["--seed", "5", "--noise_sigma", "1", "2", "--max_grad_norm", "none"], path)
    assert config.train.max_train_steps == 7 and config.train.seed == 5
    assert config.optim.learning_rate == 1e-4 and config.optim.max_grad_norm is None
    assert config.data.noise_sigma == (1.0, 2.0)
    assert config.train.train_batch_size == Config().train.train_batch_size


def test_shipped_stage_configs_load():
    for stage in ("clear", "distorted"):
        assert build_config(f"configs/{stage}.yaml").train.stage == stage


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"stage": "blurry"}, "stage must be one of"),
        ({"reconstruction": "ssim2"}, "unknown reconstruction loss"),
        ({"train_batch_size": "many"}, "train_batch_size"),
        ({"optim.nonexistent": 1}, "unknown config key"),
        ({"max_train_steps": 2.5}, "expected an integer"),
    ],
)
def test_bad_values_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_config(None, overrides)


def test_flat_config_has_scalar_values_for_trackers():
    assert all(isinstance(v, int | float | str | bool) for v in Config().flat().values())
