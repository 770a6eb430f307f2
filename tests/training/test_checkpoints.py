import json
import shutil
from collections import namedtuple

import pytest

from vae_restore.errors import CheckpointError, TrainingError
from vae_restore.training import checkpoints, preflight, resume
from vae_restore.training.preemption import resume_command


def make_checkpoint(run_dir, step, complete=True):
    path = checkpoints.checkpoints_dir(run_dir) / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if complete:
        (path / checkpoints.STATE_FILE).write_text(json.dumps({"global_step": step, "num_processes": 1}))
    return path


def test_latest_ignores_temporary_and_incomplete_folders(tmp_path):
    make_checkpoint(tmp_path, 2)
    make_checkpoint(tmp_path, 10)
    make_checkpoint(tmp_path, 12, complete=False)
    (checkpoints.checkpoints_dir(tmp_path) / "checkpoint-14.tmp").mkdir()
    assert resume.resolve_resume(tmp_path, "latest").name == "checkpoint-10"
    assert [p.name for p in checkpoints.complete_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-10"]
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        resume.resolve_resume(tmp_path, str(checkpoints.checkpoints_dir(tmp_path) / "checkpoint-12"))
    assert resume.resolve_resume(tmp_path / "empty", "latest") is None
    with pytest.raises(CheckpointError, match=r"checkpoint-7 does not exist; complete ones: \['checkpoint-2'"):
        resume.resolve_resume(tmp_path, "checkpoint-7")
    with pytest.raises(CheckpointError, match="checkpoint-12 is not a complete checkpoint"):
        resume.resolve_resume(tmp_path, "checkpoint-12")  # by name, from anywhere


def test_a_state_without_format_version_reads_as_version_1(tmp_path):
    """Checkpoints written before trainer_state.json had a format_version still resume: what they did not
    record is not checked."""
    state = checkpoints.read_state(make_checkpoint(tmp_path, 2))
    assert state["format_version"] == checkpoints.FORMAT_VERSION
    assert state["settings"] == {} and state["parent"] is None and state["mixed_precision"] is None
    Accelerator = namedtuple("Accelerator", "num_processes mixed_precision gradient_accumulation_steps")
    resume.check_settings(tmp_path, state, {"train.seed": 1}, Accelerator(1, "bf16", 4))
    with pytest.raises(CheckpointError, match="num_processes 1, this run has 2"):
        resume.check_settings(tmp_path, state, {}, Accelerator(2, "no", 1))
    newer = make_checkpoint(tmp_path, 4, complete=False)
    (newer / checkpoints.STATE_FILE).write_text(json.dumps({"format_version": 99, "global_step": 4}))
    with pytest.raises(CheckpointError, match="newer than this code reads"):
        checkpoints.read_state(newer)


def test_rotation_keeps_the_resumed_checkpoint_and_the_newest(tmp_path):
    resumed = make_checkpoint(tmp_path, 2)
    for step in (4, 6, 8):
        make_checkpoint(tmp_path, step)
    removed = checkpoints.rotate_checkpoints(tmp_path, keep=1, protect=resumed)
    assert [p.name for p in removed] == ["checkpoint-4", "checkpoint-6"]
    assert [p.name for p in checkpoints.complete_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-8"]


def test_rotation_never_deletes_the_only_complete_checkpoint(tmp_path):
    only = make_checkpoint(tmp_path, 4)
    make_checkpoint(tmp_path, 6, complete=False)
    assert checkpoints.rotate_checkpoints(tmp_path, keep=1) == []
    assert only.is_dir()
    shutil.rmtree(only)
    assert checkpoints.rotate_checkpoints(tmp_path, keep=1) == []


def test_full_disk_is_refused_before_training(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda _: usage(10**9, 10**9 - 2**20, 2**20))
    with pytest.raises(TrainingError, match=r"has 1 MiB free; this run needs about \d+ MiB"):
        preflight.check_output_dir(tmp_path / "run", preflight.required_bytes(18_371_523, 300, 100, 2))


def test_disk_estimate_counts_only_the_checkpoints_the_run_can_write():
    weights = 1000 * 4
    checkpoint = 3 * weights
    assert preflight.required_bytes(1000, 10, 1000, 2) == checkpoint + weights  # only a preemption checkpoint
    assert preflight.required_bytes(1000, 300, 100, None) == 4 * checkpoint + weights
    assert preflight.required_bytes(1000, 300, 100, 1) == 2 * checkpoint + weights
    assert preflight.required_bytes(1000, 300, 100, 1, ema=True) == 2 * 4 * weights + weights


def test_resume_command_replaces_an_earlier_resume_flag():
    argv = ["launch/train.py", "--stage", "clear", "--resume_from_checkpoint", "runs/x", "--seed", "3"]
    assert resume_command(argv=argv) == (
        "accelerate launch --num_processes 1 launch/train.py --stage clear --seed 3 "
        "--mixed_precision no --resume_from_checkpoint latest"
    )


def test_resume_command_restores_what_accelerate_launch_was_given():
    """Under `accelerate launch`, sys.argv holds only the script's arguments: the process count and the
    precision come from the running Accelerator instead."""
    argv = ["launch/train.py", "--stage", "clear", "--mixed_precision=fp16"]
    assert resume_command(4, "bf16", argv) == (
        "accelerate launch --multi_gpu --num_processes 4 launch/train.py --stage clear "
        "--mixed_precision bf16 --resume_from_checkpoint latest"
    )


def test_resume_command_keeps_a_cpu_run_on_the_cpu():
    """A default accelerate config (or a GPU) would otherwise move the resumed run, or make two CPU processes
    two separate one-process runs that refuse the checkpoint."""
    argv = ["launch/train.py", "--stage", "clear"]
    assert resume_command(1, "no", argv, cpu=True).startswith("accelerate launch --cpu --num_processes 1 launch/")
    assert resume_command(2, "no", argv, cpu=True).startswith(
        "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 launch/"
    )


def test_the_first_ctrl_c_asks_for_a_checkpoint_and_the_second_stops_at_once():
    import os
    import signal

    from vae_restore.training.preemption import PreemptionGuard

    before = signal.getsignal(signal.SIGINT)
    with PreemptionGuard() as guard:
        os.kill(os.getpid(), signal.SIGINT)
        assert guard.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_processes_checking_one_output_folder_at_once_do_not_trip_over_each_other(tmp_path):
    """Every rank of a multi-process run checks the same folder at the same moment: each needs its own probe."""
    from concurrent.futures import ThreadPoolExecutor

    run_dir = tmp_path / "run" / "distorted"

    def check(_):
        for _ in range(100):
            preflight.check_output_dir(run_dir, 0)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(check, range(8)))  # re-raises a worker's TrainingError
    assert list(run_dir.iterdir()) == [], "no probe file is left behind"
