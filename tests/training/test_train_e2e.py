"""The real entry point, `accelerate launch launch/train.py`, in subprocesses on the CPU."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from vae_restore import load_model
from vae_restore.models import read_metadata, sha256_file

from ..conftest import (
    ACCELERATE,
    ONE_PROCESS_LAUNCH,
    TINY_ARGS,
    launch_script,
    launch_train,
    simple_launch_command,
    subprocess_env,
    train_command,
)
from ..train_probe import read_probes

pytestmark = pytest.mark.slow


CLEAR_4_STEPS = ["--stage", "clear", "--checkpointing_steps", "2", *TINY_ARGS]


@pytest.fixture(scope="module")
def clear_run(tmp_path_factory) -> Path:
    """Stage clear for 4 steps on the embedded samples (checkpoints at 2 and 4), trained once for the tests
    that read it: its run folder. Tests that train on from it copy what they need first."""
    out = tmp_path_factory.mktemp("clear_run")
    launch_train([*CLEAR_4_STEPS, "--max_train_steps", "4", "--output_dir", str(out)], out)
    return out / "clear"


def test_two_stages_on_embedded_data(tmp_path, tiny_args, clear_run):
    out = tmp_path / "runs"
    # Stage distorted finds OUTPUT_DIR/clear/model.safetensors by itself: the shared run's weights go there.
    shutil.copytree(clear_run, out / "clear", ignore=shutil.ignore_patterns("checkpoints"))
    args = ["--stage", "distorted", "--max_train_steps", "4", "--output_dir", str(out), *tiny_args]
    launch_train(args, tmp_path, via_launcher=True)  # the README's way; other one-process tests skip the launcher
    clear, distorted = out / "clear", out / "distorted"
    for run in (clear, distorted):
        model = load_model(run)
        assert not model.training
        config = json.loads((run / "config.json").read_text())
        assert config["train"]["max_train_steps"] == 4 and config["run"]["num_processes"] == 1
        assert list((run / "samples").glob("step-*.png")), "the final validation writes a comparison grid"
    meta = read_metadata(distorted)
    assert meta["stage"] == "distorted"
    assert meta["parent"] == str((clear / "model.safetensors").resolve())
    assert meta["parent_sha256"] == sha256_file(clear / "model.safetensors")
    lineage = json.loads((distorted / "config.json").read_text())["run"]["lineage"]
    assert lineage["parent_sha256"] == meta["parent_sha256"]
    card = (distorted / "README.md").read_text()  # every run folder gets a model card
    assert card.startswith("---\nlicense: mit\n") and "preset: original" in card
    assert f"sha256 `{meta['parent_sha256']}`" in card and "## Last validation" in card and "Step 4:" in card
    assert not torch.equal(
        load_model(clear).state_dict()["decoder.fc2.weight"], load_model(distorted).state_dict()["decoder.fc2.weight"]
    )

    # With a zero learning rate the distorted stage must end exactly where it started: the clear weights.
    frozen = tmp_path / "frozen"
    launch_train(
        [
            "--stage",
            "distorted",
            "--max_train_steps",
            "1",
            "--learning_rate",
            "0",
            "--output_dir",
            str(frozen),
            "--init_from",
            str(clear),
            *tiny_args,
        ],
        tmp_path,
    )
    start, parent = load_model(frozen / "distorted").state_dict(), load_model(clear).state_dict()
    assert all(torch.equal(start[k], parent[k]) for k in parent)


def test_distorted_without_clear_stops_with_the_command_to_run(tmp_path, tiny_args):
    result = launch_train(
        ["--stage", "distorted", "--output_dir", str(tmp_path / "none"), *tiny_args], tmp_path, check=False, timeout=120
    )
    assert result.returncode != 0
    assert "launch/train.py --stage clear" in result.stderr
    assert not (tmp_path / "none" / "distorted" / "model.safetensors").exists()


def test_a_run_folders_config_json_is_a_config_that_repeats_the_run(tmp_path, tiny_args):
    """The resolved config is written so that `--config RUN/config.json` repeats the run; its `run` summary
    (steps, processes, hashes) is what that run did, not settings."""
    first, again = tmp_path / "first", tmp_path / "again"
    launch_train(["--stage", "clear", "--max_train_steps", "2", "--output_dir", str(first), *tiny_args], tmp_path)
    launch_train(["--config", str(first / "clear" / "config.json"), "--output_dir", str(again)], tmp_path)
    assert sha256_file(again / "clear" / "model.safetensors") == sha256_file(first / "clear" / "model.safetensors")
    repeated = json.loads((again / "clear" / "config.json").read_text())
    assert repeated["train"]["max_train_steps"] == 2 and repeated["run"]["global_step"] == 2


def test_two_processes_read_different_samples(tmp_path, tiny_args):
    out = tmp_path / "runs"
    args = ["--stage", "clear", "--max_train_steps", "3", "--output_dir", str(out), *tiny_args]
    launch_script("tests/train_probe.py", args, tmp_path, processes=2)
    summary = json.loads((out / "clear" / "config.json").read_text())["run"]
    processes = read_probes(out / "clear")  # what the trainer's callback saw on each process
    assert summary["num_processes"] == 2 and [p["rank"] for p in processes] == [0, 1]
    assert processes[0]["pid"] != processes[1]["pid"], "two real OS processes"
    assert processes[0]["first_batch_sum"] != processes[1]["first_batch_sum"], "each process reads its own crops"
    assert load_model(out / "clear") is not None


def test_resume_continues_from_the_checkpoint(tmp_path, clear_run):
    args = CLEAR_4_STEPS
    resumed = tmp_path / "resumed"
    launch_train([*args, "--max_train_steps", "2", "--output_dir", str(resumed)], tmp_path)
    assert (resumed / "clear" / "checkpoints" / "checkpoint-2").is_dir()
    result = launch_train(
        [*args, "--max_train_steps", "4", "--output_dir", str(resumed), "--resume_from_checkpoint", "latest"], tmp_path
    )
    assert "at step 2" in result.stdout + result.stderr
    summary = json.loads((resumed / "clear" / "config.json").read_text())["run"]
    assert summary["resumed_from"].endswith("checkpoint-2")
    assert read_metadata(resumed / "clear")["global_step"] == "4"
    assert sha256_file(resumed / "clear" / "model.safetensors") == sha256_file(clear_run / "model.safetensors")


def no_network_prefix() -> list[str]:
    """Run in a fresh network namespace (loopback only) where root and unshare allow it."""
    if shutil.which("unshare") and shutil.which("ip") and subprocess.run(["unshare", "-n", "true"]).returncode == 0:
        return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    return []


def quick_clear_run(out, tiny_args, *extra: str) -> list[str]:
    return ["--stage", "clear", "--max_train_steps", "2", "--output_dir", str(out), *tiny_args, *extra]


def test_wandb_offline_writes_under_the_run_folder(tmp_path, tiny_args):
    """No API key: W&B must log offline under the run folder, without prompting and without a network."""
    out = tmp_path / "runs"
    cmd, env = train_command(quick_clear_run(out, tiny_args, "--report_to", "wandb", "--validation_steps", "2"))
    env.pop("WANDB_MODE")
    result = subprocess.run(
        [*no_network_prefix(), *cmd],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    runs = list((out / "clear" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1, list((out / "clear").rglob("*"))
    logged = runs[0].read_bytes()
    for key in (
        b"train/loss",
        b"train/images_per_s",
        b"val/psnr",
        b"val/ssim",
        b"val/hist_corr",
        b"optim.learning_rate",
    ):
        assert key in logged, key
    assert not (tmp_path / "wandb").exists(), "nothing is written to the working directory"


def test_tensorboard_logs(tmp_path, tiny_args):
    out = tmp_path / "runs"
    launch_train(quick_clear_run(out, tiny_args, "--report_to", "tensorboard"), tmp_path)
    assert list((out / "clear" / "logs").rglob("events.out.tfevents.*"))


SHOW_LAUNCH = """
import json, os, sys
names = ("ACCELERATE_", "KMP_", "OMP_", "MKL_", "MASTER_", "PYTHONPATH")
print(json.dumps({"argv": sys.argv, "env": {k: v for k, v in os.environ.items() if k.startswith(names)}}))
"""


def test_simple_launch_command_is_what_accelerate_launch_runs(tmp_path):
    """The one-process tests run the command the launcher would run; this holds the two together."""
    script = tmp_path / "show_launch.py"
    script.write_text(SHOW_LAUNCH)
    launch_args = [*ONE_PROCESS_LAUNCH, str(script), "--stage", "clear", "--seed", "3"]
    real = subprocess.run([*ACCELERATE, *launch_args], env=subprocess_env(), capture_output=True, text=True, check=True)
    cmd, env = simple_launch_command(launch_args, subprocess_env())
    built = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    seen = json.loads(built.stdout.splitlines()[-1])
    assert seen == json.loads(real.stdout.splitlines()[-1])
    assert seen["env"]["ACCELERATE_USE_CPU"] == "True" and seen["argv"][1:] == ["--stage", "clear", "--seed", "3"]
