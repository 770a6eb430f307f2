import argparse
import subprocess
import sys

import pytest

from vae_restore.config import Config
from vae_restore.config_cli import add_config_arguments, config_from_args
from vae_restore.config_io import build_config, load_yaml
from vae_restore.errors import ConfigError

from ..conftest import REPO, subprocess_env


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
        ({"val_crops_per_image": 0}, "val_crops_per_image must be >= 1"),
        ({"learning_rate": "-1"}, "learning_rate must be finite and >= 0"),
        ({"learning_rate": "nan"}, "learning_rate must be finite"),
        ({"adam_beta1": "2"}, "adam_beta1 and adam_beta2 must be in"),
        ({"adam_beta2": "-0.1"}, "adam_beta1 and adam_beta2 must be in"),
        ({"adam_epsilon": "0"}, "adam_epsilon must be > 0"),
        ({"seed": "-1"}, "seed must be in"),
        ({"seed": str(2**32)}, "seed must be in"),
        ({"lr_warmup_steps": "-5"}, "lr_warmup_steps must be >= 0"),
        ({"adam_weight_decay": "-1"}, "adam_weight_decay must be finite and >= 0"),
        ({"adam_weight_decay": "nan"}, "adam_weight_decay must be finite"),
        ({"synthetic_ratio": "0.25", "train_batch_size": "2"}, "rounds to no crop"),
        ({"loss_reduction": "median"}, "loss_reduction must be one of sum, mean"),
    ],
)
def test_bad_values_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_config(None, overrides)


def test_flat_config_has_scalar_values_for_trackers():
    assert all(isinstance(v, int | float | str | bool) for v in Config().flat().values())


@pytest.mark.parametrize(
    "yaml_text,message",
    [
        ("train:\n  mixed_precision: no\n", "quote the value, e.g. mixed_precision: 'no'"),
        ("train:\n  output_dir: null\n", "'train.output_dir': cannot read None \\(expected a string"),
        ("train:\n  output_dir: [a, b]\n", "'train.output_dir': cannot read \\['a', 'b'\\]"),
        ("train:\n  report_to: {a: 1}\n", "'train.report_to': cannot read"),
        ("train:\n  compile: 2\n", "'train.compile': cannot read 2 \\(expected true or false"),
        ("train:\n  compile: 0.5\n", "'train.compile': cannot read 0.5"),
        ("train:\n  compile: [1]\n", "'train.compile': cannot read \\[1\\]"),
        ("train:\n  max_train_steps: true\n", "expected int, not a boolean"),
        ("optim:\n  learning_rate: true\n", "expected float, not a boolean"),
        ("data:\n  noise_sigma: [true, 5]\n", "expected float, not a boolean"),
    ],
)
def test_wrong_yaml_types_are_errors_not_coerced(tmp_path, yaml_text, message):
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message):
        build_config(path)


def test_yaml_values_that_fit_are_accepted(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  mixed_precision: 'no'\n  compile: 1\n  channels_last: 0\n  tracker_project_name: 7\n")
    config = build_config(path, {"learning_rate": "1e-3", "report_to": "none", "cudnn_benchmark": "no"})
    assert config.train.mixed_precision == "no" and config.train.tracker_project_name == "7"
    assert config.train.compile is True and config.train.channels_last is False
    assert config.optim.learning_rate == 1e-3 and config.train.cudnn_benchmark is False


def test_bad_yaml_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="is not a file"):
        load_yaml(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  seed: 1\n bad: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml, line 3, column \d+: not valid YAML"):
        load_yaml(path)


def test_help_says_the_yaml_may_set_the_default():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    help_text = " ".join(parser.format_help().split())
    assert "(optim.learning_rate; default: the YAML config's, else 0.001)" in help_text


def test_help_shows_each_keys_comment_and_boolean_flags_stand_alone():
    """The comments beside the dataclass fields are the flags' help; `--compile` alone is true."""
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    help_text = " ".join(parser.format_help().split())
    assert "keep the newest N checkpoints; None: keep all (train.checkpoints_total_limit;" in help_text
    assert "torch.compile the model (inductor); true or false (alone: true) (train.compile;" in help_text
    args = parser.parse_args(["--compile", "--channels_last", "false"])
    config = config_from_args(args, None)
    assert config.train.compile is True and config.train.channels_last is False


def test_unknown_stage_lists_the_stages():
    result = subprocess.run(
        [sys.executable, str(REPO / "launch" / "train.py"), "--stage", "bogus"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "stage must be one of ('clear', 'distorted'), got 'bogus'" in result.stderr
    assert "does not exist" not in result.stderr


def test_a_finished_stage_names_the_next_command():
    from vae_restore.training.preemption import next_command

    clear = build_config(
        None,
        {
            "stage": "clear",
            "output_dir": "runs/photos",
            "train_data": "/data/my photos",
            "preset": "fullres",
            "seed": 3,
            "reconstruction": "l1",
            "kl_weight": 0.01,
            "global_batch_size": 64,
        },
    )
    assert next_command(clear, 2, "bf16", cpu=False) == (  # the data, its split, the network, loss and batch
        "accelerate launch --multi_gpu --num_processes 2 launch/train.py --stage distorted --output_dir=runs/photos "
        "'--train_data=/data/my photos' --seed=3 --preset=fullres --reconstruction=l1 --kl_weight=0.01 "
        "--global_batch_size=64 --mixed_precision=bf16"
    )
    assert next_command(build_config(None, {"stage": "clear"})) == (
        "accelerate launch --cpu --num_processes 1 launch/train.py --stage distorted --mixed_precision=no"
    )
    distorted = build_config(None, {"stage": "distorted", "output_dir": "runs/photos"})
    export = "python -m export.onnx --checkpoint runs/photos/distorted --output runs/photos/model.onnx"
    assert next_command(distorted) == export


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"synthetic_ratio": "nan"}, "synthetic_ratio must be finite"),
        ({"kl_weight": "inf"}, "kl_weight must be finite"),
        ({"blur_sigma": "inf,inf"}, "blur_sigma must be finite"),
        ({"stage": "distorted", "p_motion_blur": "0.5", "motion_length": "5,5000"}, "motion_length .* beyond the crop"),
        ({"noise_sigma": "-50,-40"}, "noise_sigma must be .low, high. with 0 <= low"),
    ],
)
def test_values_that_cannot_work_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_config(None, overrides)


def test_ranges_of_distortions_not_in_use_are_not_bound_by_the_crop():
    assert build_config(None, {"stage": "clear", "motion_length": "5,5000"}).distortions.motion_length[1] == 5000
    assert build_config(None, {"stage": "distorted", "p_cracks": "0", "crack_cell": "10,900"}).data.crop_size == 128
