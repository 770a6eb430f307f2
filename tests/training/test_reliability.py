"""Kills, preemption, NaNs and teardown: a run can be stopped at any moment and resumed bit-exactly."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from vae_restore.models import VAE, get_preset, save_model, sha256_file

from ..conftest import REPO, TINY_ARGS, launch_script, launch_train, subprocess_env, train_command, write_images
from ..processes import TrainingProcess
from ..train_probe import read_probes

pytestmark = pytest.mark.slow

STEPS = 10
# The guarantees do not depend on the network or the crop: a small network (a 20 MB checkpoint where `original`
# writes 220 MB) on 32-pixel crops keeps the dozens of launches, kills and resumes below to seconds each, bf16
# included where the CPU only emulates it.
FAST = [
    *("--preset", "fullconv", "--crop_size", "32"),
    *TINY_ARGS,
    *("--logging_steps", "1", "--checkpointing_steps", "2", "--max_train_steps", str(STEPS)),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Clear-only images, a paired clear/distorted layout, and a random parent model for stage distorted."""
    root = tmp_path_factory.mktemp("data")
    write_images(root / "clear_only", 5, size=(140, 150))
    write_images(root / "paired" / "clear", 5, size=(140, 150), seed=1)
    write_images(root / "paired" / "distorted", 5, size=(140, 150), seed=2)
    save_model(VAE(get_preset("fullconv")), root / "parent" / "model.safetensors", {"stage": "clear"})
    return root


def stage_args(data: dict | Path, kind: str, out: Path) -> list[str]:
    train_data = data / ("clear_only" if kind == "synthetic" else "paired")
    return [
        "--stage",
        "distorted",
        "--train_data",
        str(train_data),
        "--init_from",
        str(data / "parent"),
        "--output_dir",
        str(out),
        *FAST,
    ]


def final_hash(out: Path) -> str:
    return sha256_file(out / "distorted" / "model.safetensors")


@pytest.fixture(scope="module")
def straight_hash(data, tmp_path_factory):
    """sha256 of an uninterrupted run's final weights, trained once per (processes, data kind, precision)
    and reused by every test that compares an interrupted run against it (its folder is deleted: only the
    hash is read)."""
    hashes: dict[tuple[int, str, str], str] = {}

    def straight(processes: int = 1, kind: str = "synthetic", precision: str = "no") -> str:
        key = (processes, kind, precision)
        if key not in hashes:
            out = tmp_path_factory.mktemp("straight")
            args = [*stage_args(data, kind, out), "--mixed_precision", precision]
            launch_train(args, out, processes=processes)
            hashes[key] = final_hash(out)
            shutil.rmtree(out)
        return hashes[key]

    return straight


# Two processes on either kind of data, one on paired data, all in fp32, and one on synthetic data in bf16. One
# process on synthetic data in fp32 is killed (while saving) and resumed by the torn-checkpoint test below.
@pytest.mark.parametrize(
    "processes,kind,precision",
    [
        (1, "paired", "no"),
        (2, "synthetic", "no"),
        (2, "paired", "no"),
        (1, "synthetic", "bf16"),
    ],
)
def test_sigkill_at_random_moments_then_resume_is_bit_exact(tmp_path, data, straight_hash, processes, kind, precision):
    """bf16 too: the CPU's autocast kernels are as deterministic as its fp32 ones (the training script's
    own --mixed_precision, so it runs in bf16 whether or not the CPU has native bf16)."""
    mixed = ["--mixed_precision", precision]
    rng = random.Random(f"{processes}-{kind}")
    killed = tmp_path / "killed"
    args = [*stage_args(data, kind, killed), *mixed]
    # Kill between checkpoints (an odd step) and at a random later step, resuming each time; two processes once,
    # at a random odd step (their launches cost twice the interpreters, and the resume repeats a lost step too).
    kills = (3, rng.randint(5, STEPS - 3)) if processes == 1 else (rng.choice(range(3, STEPS - 2, 2)),)
    for kill_at in kills:
        cmd, env = train_command([*args, "--resume_from_checkpoint", "latest"], processes)
        run = TrainingProcess(cmd, env, tmp_path)
        run.wait_for_step(kill_at)
        run.kill()
        assert not (killed / "distorted" / "model.safetensors").exists()
    launch_script("tests/train_probe.py", [*args, "--resume_from_checkpoint", "latest"], tmp_path, processes=processes)
    summary = json.loads((killed / "distorted" / "config.json").read_text())["run"]
    assert summary["resumed_from"] and summary["num_processes"] == processes
    assert len({p["pid"] for p in read_probes(killed / "distorted")}) == processes
    assert summary["mixed_precision"] == precision
    assert final_hash(killed) == straight_hash(processes, kind, precision)


SLOW_SAVE = """
import os, time, pathlib
import safetensors.torch as st
_save = st.save_file
def save_file(tensors, filename, metadata=None):
    if "data_rng_" in str(filename) and ".tmp" in str(filename) and "checkpoint-4" in str(filename):
        pathlib.Path(os.environ["SAVE_STARTED"]).touch()
        time.sleep(60)
    return _save(tensors, filename, metadata=metadata)
st.save_file = save_file
"""


def test_kill_while_saving_never_leaves_a_torn_checkpoint(tmp_path, data, straight_hash):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SLOW_SAVE)
    out = tmp_path / "run"
    args = stage_args(data, "synthetic", out)
    cmd, env = train_command(args)
    env.update(PYTHONPATH=f"{hook}:{REPO}", SAVE_STARTED=str(tmp_path / "started"))
    run = TrainingProcess(cmd, env, tmp_path)
    run.wait_for_path(tmp_path / "started")
    run.kill()
    checkpoints = out / "distorted" / "checkpoints"
    assert (checkpoints / "checkpoint-4.tmp").is_dir(), "the kill hit the save of checkpoint-4"
    assert not (checkpoints / "checkpoint-4").exists()
    result = launch_train([*args, "--resume_from_checkpoint", "latest"], tmp_path)
    assert "checkpoint-2 at step 2" in result.stdout + result.stderr, "latest skips the torn checkpoint"
    assert final_hash(out) == straight_hash()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_preemption_signal_checkpoints_prints_resume_command_and_exits_nonzero(tmp_path, data, straight_hash, signum):
    out = tmp_path / "run"
    args = [*stage_args(data, "synthetic", out), "--checkpointing_steps", "1000"]
    run = TrainingProcess([sys.executable, str(REPO / "launch" / "train.py"), *args], subprocess_env(), tmp_path)
    run.wait_for_step(3)
    run.signal_all(signum)
    rc = run.wait()
    assert rc == 128 + signum, run.output[-3000:]
    saved = sorted((out / "distorted" / "checkpoints").glob("checkpoint-*"))
    assert len(saved) == 1 and saved[0].name != "checkpoint-1000"
    resume = printed_resume_command(run.output)
    assert resume.startswith(f"accelerate launch --cpu --num_processes 1 {REPO / 'launch' / 'train.py'} ")
    run_printed(resume, tmp_path)
    assert final_hash(out) == straight_hash()


def printed_resume_command(output: str) -> str:
    command = output.split("resume with:")[1].strip().splitlines()[0]
    assert command.endswith("--resume_from_checkpoint latest")
    return command


def run_printed(command: str, cwd: Path) -> None:
    """Run a printed command line as a user pastes it into a shell."""
    result = subprocess.run(["bash", "-c", command], cwd=cwd, env=subprocess_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def test_ctrl_c_stops_two_processes_at_one_step_and_the_printed_command_resumes_them(tmp_path, data):
    """A terminal's Ctrl-C reaches the launcher only (torchrun gives each worker a session of its own); it
    passes the signal on, and both workers must agree on the step, checkpoint it, and say how to go on."""
    out = tmp_path / "run"
    args = [*stage_args(data, "synthetic", out), "--checkpointing_steps", "1000"]
    cmd, env = train_command(args, processes=2)
    run = TrainingProcess(cmd, env, tmp_path)
    run.wait_for_step(3)
    assert len([pid for pid in run.pids() if "launch/train.py" in Path(f"/proc/{pid}/cmdline").read_text()]) == 3
    run.proc.send_signal(signal.SIGINT)
    assert run.wait() != 0
    stops = [line.split("checkpoint: ")[1] for line in run.output.splitlines() if "stopped by SIGINT at step" in line]
    assert len(stops) == 2 and len(set(stops)) == 1, run.output[-3000:]  # each worker, the same checkpoint
    checkpoint = stops[0]
    assert sorted((out / "distorted" / "checkpoints").glob("checkpoint-*")) == [Path(checkpoint)]
    assert {p.name for p in Path(checkpoint).glob("data_rng_*")} == {"data_rng_0.safetensors", "data_rng_1.safetensors"}
    resume = printed_resume_command(run.output)
    assert resume.startswith("ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 ")
    run_printed(resume, tmp_path)
    summary = json.loads((out / "distorted" / "config.json").read_text())["run"]
    assert summary["global_step"] == STEPS and summary["num_processes"] == 2
    assert summary["resumed_from"] == checkpoint


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_nan_loss_stops_with_the_step_and_last_good_checkpoint(tmp_path, data, precision):
    out = tmp_path / "run"
    args = [
        "--stage",
        "clear",
        "--train_data",
        str(data / "clear_only"),
        "--output_dir",
        str(out),
        *FAST,
        "--max_train_steps",
        "40",
        "--learning_rate",
        "1e4",
        "--max_grad_norm",
        "none",
        "--mixed_precision",
        precision,
    ]
    result = launch_train(args, tmp_path, check=False)
    assert result.returncode != 0
    message = result.stderr.split("error: ")[-1]
    assert "loss became" in message and "at step" in message and "last good checkpoint" in message
    step = int(message.split("at step ")[1].split(";")[0])
    good = sorted((out / "clear" / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if good:
        assert int(good[-1].name.split("-")[1]) < step
        assert str(good[-1]) in message
    assert not (out / "clear" / "model.safetensors").exists()


NAN_AT_STEP_3 = """
import os
import vae_restore.losses as losses
_loss = losses.vae_loss
calls = {"n": 0}
def vae_loss(config, output, target, *args):
    calls["n"] += 1
    terms = _loss(config, output, target, *args)
    if calls["n"] == 3 and os.environ.get("RANK", "0") in os.environ.get("NAN_RANKS", "0"):
        terms = terms._replace(loss=terms.loss * float("nan"))
    return terms
losses.vae_loss = vae_loss
import vae_restore.training.trainer as trainer
trainer.vae_loss = vae_loss
"""


def test_max_bad_steps_skips_a_transient_nan(tmp_path, data):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(NAN_AT_STEP_3)
    out = tmp_path / "run"
    args = ["--stage", "clear", "--train_data", str(data / "clear_only"), "--output_dir", str(out), *FAST]
    env = subprocess_env(PYTHONPATH=f"{hook}:{REPO}")
    failed = subprocess.run(
        [sys.executable, str(REPO / "launch" / "train.py"), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert failed.returncode == 2 and "at step 3" in failed.stderr
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "launch" / "train.py"),
            *args,
            "--max_bad_steps",
            "1",
            "--output_dir",
            str(tmp_path / "skipping"),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "optimizer step skipped (1 of at most 1)" in result.stderr
    summary = json.loads((tmp_path / "skipping" / "clear" / "config.json").read_text())["run"]
    assert summary["bad_steps"] == 1 and summary["global_step"] == STEPS


def test_a_nan_on_one_process_stops_every_process_with_the_same_message(tmp_path, data):
    """The NaN check averages the window over the processes first, so rank 0 does not carry on into a
    collective that rank 1 has left (a gloo traceback, or a hang under NCCL)."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(NAN_AT_STEP_3)
    args = ["--stage", "clear", "--train_data", str(data / "clear_only"), "--output_dir", str(tmp_path / "run"), *FAST]
    cmd, env = train_command(args, processes=2)
    env.update(PYTHONPATH=f"{hook}:{REPO}", NAN_RANKS="1")
    result = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert result.stderr.count("error: loss became nan at step 3") == 2, result.stderr[-3000:]  # one per process
    # neither rank was left in a collective (gloo's "Connection closed by peer") or stopped by the launcher
    assert "Connection closed" not in result.stderr and "then checkpointing" not in result.stderr


def test_two_process_runs_exit_cleanly_three_times(tmp_path, data):
    """Three in the suite (each run is a launcher and two training processes), on top of the two dozen
    other two-process launches whose tests assert a clean exit too; docs/RELIABILITY.md's figures come
    from repeating it."""
    args = ["--stage", "clear", "--train_data", str(data / "clear_only"), *FAST, "--max_train_steps", "2"]
    for i in range(3):
        result = launch_train([*args, "--output_dir", str(tmp_path / f"run{i}")], tmp_path, processes=2, check=False)
        assert result.returncode == 0, f"run {i}: {result.stderr[-3000:]}"
        assert "terminate called" not in result.stderr
        assert json.loads((tmp_path / f"run{i}" / "clear" / "config.json").read_text())["run"]["num_processes"] == 2
        shutil.rmtree(tmp_path / f"run{i}")  # small CI disks


def test_unwritable_output_folder_fails_before_training(tmp_path, data):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = launch_train(
        ["--stage", "clear", "--train_data", str(data / "clear_only"), "--output_dir", str(blocker / "runs"), *FAST],
        tmp_path,
        check=False,
    )
    assert result.returncode != 0
    assert "is not writable" in result.stderr and "stage clear:" not in result.stderr
