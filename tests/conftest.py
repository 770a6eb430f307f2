"""Shared fixtures: subprocess launches of the real entry points, with the CPU kept to one thread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with `slow` tests (training subprocesses, tens of seconds each) run first, each module kept whole:
    with `-n 2` the many short tests then fill in at the end, so both workers finish together instead of one
    training through the last minutes alone."""
    slow_modules = {item.module for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module not in slow_modules)  # stable: collection order within each group


def subprocess_env(**extra: str) -> dict[str, str]:
    """One thread per process (2 cores are oversubscribed otherwise), this checkout first on the path."""
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        WANDB_MODE="offline",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
    )
    env.pop("WANDB_API_KEY", None)
    env.update(extra)
    return env


def launch_module(name: str):
    """launch/NAME.py loaded as the script file it is (launch/ is not a package): its module, for `main`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"launch_{name}", REPO / "launch" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LAUNCH_COMMON = ("--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no")
ONE_PROCESS_LAUNCH = ("--cpu", "--num_processes", "1", *LAUNCH_COMMON)


def launch_command(
    script: str, args: list[str], processes: int = 1, via_launcher: bool = False
) -> tuple[list[str], dict[str, str]]:
    """`accelerate launch SCRIPT ARGS` (SCRIPT relative to the repo) on the CPU with 1 or N processes, and its env.

    One process runs as `simple_launch_command` builds it unless `via_launcher` asks for the launcher itself."""
    if processes == 1 and not via_launcher:
        return simple_launch_command([*ONE_PROCESS_LAUNCH, str(REPO / script), *args], subprocess_env())
    if processes == 1:
        return [*ACCELERATE, *ONE_PROCESS_LAUNCH, str(REPO / script), *args], subprocess_env()
    launcher = [
        *ACCELERATE,
        "--multi_gpu",
        "--num_processes",
        str(processes),
        *LAUNCH_COMMON,
        "--main_process_port",
        str(_free_port()),
    ]
    return [*launcher, str(REPO / script), *args], subprocess_env(ACCELERATE_USE_CPU="1")


def simple_launch_command(launch_args: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The command and environment that `accelerate launch LAUNCH_ARGS` gives its one process, built with
    Accelerate's own functions: its simple launcher only sets a few variables and runs `python SCRIPT ARGS`, so
    building them here spares every one-process launch the launcher's interpreter and torch import (~2 s).
    `test_simple_launch_command_is_what_accelerate_launch_runs` holds it to the real launcher."""
    from unittest import mock

    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_simple_launcher_cmd_env

    with mock.patch.dict(os.environ, env, clear=True):
        parsed, _, _ = _validate_launch_command(launch_command_parser().parse_args(launch_args))
        return prepare_simple_launcher_cmd_env(parsed)


def train_command(args: list[str], processes: int = 1, **kwargs) -> tuple[list[str], dict[str, str]]:
    """`accelerate launch launch/train.py ARGS` on the CPU with 1 or N real processes, and its environment."""
    return launch_command("launch/train.py", args, processes, **kwargs)


def launch_script(
    script: str,
    args: list[str],
    cwd: Path,
    processes: int = 1,
    timeout: float = 600,
    check: bool = True,
    env: dict[str, str] | None = None,
    via_launcher: bool = False,
) -> subprocess.CompletedProcess:
    """Run `launch_command` and fail with the end of its output when it fails (unless `check` is False)."""
    cmd, default_env = launch_command(script, args, processes, via_launcher)
    result = subprocess.run(cmd, cwd=cwd, env=env or default_env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{error_lines(result.stderr)}"
            f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        )
    return result


def error_lines(stderr: str) -> str:
    """Each process's one-line `error: ...`, which another rank's long traceback would push out of the tail."""
    found = [line for line in stderr.splitlines() if "error: " in line and "Error: " not in line]
    return "".join(f"{line}\n" for line in found[:20])


def launch_train(args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    """`accelerate launch launch/train.py ARGS` (see `launch_script`)."""
    return launch_script("launch/train.py", args, cwd, **kwargs)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_images(
    folder: Path, count: int, size: tuple[int, int] = (160, 200), seed: int = 0, names: list[str] | None = None
) -> list[Path]:
    """Small smooth random RGB images (JPEG-friendly), reproducible from the seed."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        base = rng.integers(0, 256, size=(size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((size[1], size[0]), Image.BILINEAR)
        path = folder / (names[i] if names else f"img_{i:03d}.png")
        image.save(path)
        paths.append(path)
    return paths


# Flags that keep a subprocess training run to seconds.
TINY_ARGS = (
    "--train_batch_size",
    "4",
    "--logging_steps",
    "2",
    "--validation_steps",
    "1000",
    "--val_crops_per_image",
    "1",
    "--report_to",
    "none",
)


@pytest.fixture
def tiny_args() -> list[str]:
    """TINY_ARGS, as a list a test may extend."""
    return list(TINY_ARGS)
