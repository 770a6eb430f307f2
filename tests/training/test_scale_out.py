"""A global batch stream: the same run on 1 or 2 processes and on two machines, resumable on another count."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from ..conftest import ACCELERATE, REPO, _free_port, launch_script, subprocess_env, write_images
from ..train_probe import read_probes

TOLERANCE = 1e-5
STEPS = 6


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    write_images(folder, 6, size=(140, 150))
    return folder


def stage_args(images: Path, out: Path, *extra: str) -> list[str]:
    """A short stage with a global batch of 8 that exercises every state a resume must carry on: the warm-up
    and cosine decay, the moving average, the data stream."""
    return [
        *("--stage", "clear", "--train_data", str(images), "--output_dir", str(out)),
        *("--global_batch_size", "8", "--max_train_steps", str(STEPS), "--checkpointing_steps", "3"),
        *("--lr_scheduler", "cosine", "--lr_warmup_steps", "2", "--ema_decay", "0.9"),
        *("--logging_steps", "1", "--validation_steps", "1000", "--val_crops_per_image", "1", "--report_to", "none"),
        *extra,
    ]


def probe_run(images: Path, out: Path, cwd: Path, processes: int, *extra: str) -> list[dict]:
    """Train through the probe; its records, after checking that `processes` distinct processes trained."""
    launch_script("tests/train_probe.py", stage_args(images, out, *extra), cwd, processes=processes)
    probes = read_probes(out / "clear")
    assert sorted(p["rank"] for p in probes) == list(range(processes))
    assert len({p["pid"] for p in probes}) == processes
    return probes


def assert_weights_close(a: Path, b: Path) -> None:
    first, second = load_file(str(a)), load_file(str(b))
    assert first.keys() == second.keys()
    for name, tensor in first.items():
        scale = tensor.abs().max().clamp_min(1.0)
        assert (tensor - second[name]).abs().max() <= TOLERANCE * scale, name


@pytest.fixture(scope="module")
def two_processes(images, tmp_path_factory) -> tuple[Path, list[dict]]:
    """An uninterrupted 2-process run (2 × 4 crops), with a checkpoint at step 3."""
    root = tmp_path_factory.mktemp("two")
    return root / "runs", probe_run(images, root / "runs", root, 2)


def test_one_process_of_eight_trains_as_two_of_four(images, two_processes, tmp_path):
    two_dir, two = two_processes
    one = probe_run(images, tmp_path / "runs", tmp_path, 1)
    assert one[0]["logged_steps"] == two[0]["logged_steps"] == list(range(1, STEPS + 1))
    for step, (a, b) in enumerate(zip(one[0]["losses"], two[0]["losses"], strict=True), 1):
        assert abs(a - b) <= TOLERANCE * abs(a), f"step {step}: {a} vs {b}"
    halves = two[0]["first_batch_sum"], two[1]["first_batch_sum"]
    assert halves[0] != halves[1] and one[0]["first_batch_sum"] == pytest.approx(sum(halves), rel=1e-12)
    assert_weights_close(tmp_path / "runs" / "clear" / "model.safetensors", two_dir / "clear" / "model.safetensors")


def test_a_two_process_checkpoint_resumes_on_one_process(images, two_processes, tmp_path):
    two_dir, _ = two_processes
    resumed = tmp_path / "runs"
    shutil.copytree(
        two_dir / "clear" / "checkpoints" / "checkpoint-3", resumed / "clear" / "checkpoints" / "checkpoint-3"
    )
    launch_script("tests/train_probe.py", stage_args(images, resumed, "--resume_from_checkpoint", "latest"), tmp_path)
    assert len(read_probes(resumed / "clear")) == 1
    assert_weights_close(resumed / "clear" / "model.safetensors", two_dir / "clear" / "model.safetensors")
    run = json.loads((resumed / "clear" / "config.json").read_text())["run"]
    assert run["segments"] == [{"from_step": 0, "num_processes": 2}, {"from_step": 3, "num_processes": 1}]


def test_a_global_batch_that_does_not_split_is_refused_by_name(images, tmp_path):
    result = launch_script(
        "launch/train.py",
        stage_args(images, tmp_path / "runs", "--global_batch_size", "7"),
        tmp_path,
        processes=2,
        check=False,
    )
    assert result.returncode != 0
    assert "--global_batch_size 7 does not split evenly over 2 processes" in result.stderr


def machine_command(rank: int, port: int, args: list[str]) -> list[str]:
    return [
        *ACCELERATE,
        *("--multi_gpu", "--num_machines", "2", "--num_processes", "2", "--machine_rank", str(rank)),
        *("--main_process_ip", "127.0.0.1", "--main_process_port", str(port)),
        *("--mixed_precision", "no", "--dynamo_backend", "no"),
        str(REPO / "tests" / "train_probe.py"),
        *args,
    ]


def test_two_machines_on_loopback_train_a_stage_to_the_end(images, tmp_path):
    """Two launchers, one per simulated machine, each with its own node-local pixel cache."""
    port, out = _free_port(), tmp_path / "runs"
    env = subprocess_env(ACCELERATE_USE_CPU="1")
    launchers = [
        subprocess.Popen(
            machine_command(
                rank,
                port,
                stage_args(images, out, "--pixel_cache", "disk", "--cache_dir", str(tmp_path / f"node{rank}")),
            ),
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    for launcher in launchers:
        _, err = launcher.communicate(timeout=300)
        assert launcher.returncode == 0, err[-3000:]
    probes = read_probes(out / "clear")
    assert [p["rank"] for p in probes] == [0, 1] and len({p["pid"] for p in probes}) == 2
    assert all(list((tmp_path / f"node{rank}").iterdir()) for rank in (0, 1))  # each machine built its cache
    run = json.loads((out / "clear" / "config.json").read_text())["run"]
    assert run["num_processes"] == 2 and run["global_step"] == STEPS


def test_every_process_slices_the_same_global_batch():
    """Rank r's crops, distortions and latent noise are rows r·B … (r+1)·B of the one-process batch."""
    from vae_restore.config import Config
    from vae_restore.training.trainer import Trainer

    def batches(processes: int) -> list:
        found = []
        for rank in range(processes):
            config = Config()
            config.train.stage, config.train.global_batch_size = "distorted", 8
            config.train.train_batch_size = 8 // processes
            generator = torch.Generator().manual_seed(3)
            fake = SimpleNamespace(
                config=config,
                sampler=SimpleNamespace(sample=lambda n, g=generator: (None, torch.rand(n, 3, 8, 8, generator=g))),
                distort=lambda x, g: x + torch.rand(x.shape, generator=g),
                generator=generator,
                latent_shape=(5,),
                accelerator=SimpleNamespace(process_index=rank),
            )
            found.append(Trainer.next_batch(fake))
        return [torch.cat(parts) for parts in zip(*found, strict=True)]

    for whole, halves in zip(batches(1), batches(2), strict=True):
        assert whole.shape[0] == 8 and torch.equal(whole, halves)


def test_resume_refusals_name_what_differs(tmp_path):
    from vae_restore.errors import CheckpointError
    from vae_restore.training.resume import check_settings

    accelerator = SimpleNamespace(num_processes=1, mixed_precision="no", gradient_accumulation_steps=1)
    state = {"num_processes": 2, "mixed_precision": "no", "gradient_accumulation_steps": 1}
    per_process = {"train.train_batch_size": 4, "train.global_batch_size": None}
    with pytest.raises(CheckpointError, match="resume with --num_processes 2 .runs with --global_batch_size"):
        check_settings(tmp_path, {**state, "settings": per_process}, per_process, accelerator)
    saved = {"train.global_batch_size": 8}
    check_settings(tmp_path, {**state, "settings": saved}, saved, accelerator)  # another count: allowed
    with pytest.raises(CheckpointError, match=r"--global_batch_size 8 \(this run: 16\)"):
        check_settings(tmp_path, {**state, "settings": saved}, {"train.global_batch_size": 16}, accelerator)
    with pytest.raises(CheckpointError, match="--num_processes 2"):
        check_settings(tmp_path, {**state, "settings": saved}, {"train.global_batch_size": None}, accelerator)
