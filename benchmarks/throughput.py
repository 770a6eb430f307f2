"""Training throughput: the original-style loop and the toolkit's trainer on the same files, in one run.

The trainer is measured through `Trainer.fit` itself (real data path, loss window, checkpoint and
validation logic): the first logging window is the warm-up (and compilation), the second is timed.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from vae_restore.config import COMPILE_MODES, Config, DataConfig, TrainConfig
from vae_restore.config_io import build_config
from vae_restore.data.files import list_images
from vae_restore.errors import ConfigError
from vae_restore.models import VAE, save_model

from .in_process import LoggedSteps, fit_in_process
from .reference_loop import readable_files, reference_throughput

logger = logging.getLogger(__name__)

MIXED_PRECISIONS = ("no", "bf16", "fp16")
PRECISION_NAMES = {"no": "fp32"}


def benchmark_config(
    data: Path,
    batch_size: int,
    steps: int,
    mixed_precision: str,
    compile_mode: str | None,
    workdir: Path,
    mixture_yaml: Path | None = None,
    pad_channels_to: int = 0,
) -> Config:
    """Stage distorted for `steps` steps with nothing but training: Gaussian noise (σ = 25), or the
    distortion mixture of `mixture_yaml`'s `distortions` section; `compile_mode` None is eager."""
    parent = workdir / "parent" / "model.safetensors"
    if not parent.exists():
        save_model(VAE(), parent, {"stage": "clear"})
    config = build_config(mixture_yaml) if mixture_yaml else Config()
    config.train = replace(
        TrainConfig(),
        stage="distorted",
        output_dir=str(workdir / f"bs{batch_size}"),
        init_from=str(parent),
        max_train_steps=steps,
        logging_steps=steps,
        checkpointing_steps=10**9,
        validation_steps=10**9,
        train_batch_size=batch_size,
        mixed_precision=mixed_precision,
        report_to="none",
        overwrite_output_dir=True,  # every row of one batch size trains in the same folder
        compile=compile_mode is not None,
        compile_mode=compile_mode or "default",
        pad_channels_to=pad_channels_to,
    )
    sigma = config.data.noise_sigma if mixture_yaml else (25.0, 25.0)
    config.data = replace(DataConfig(), train_data=str(data), val_crops_per_image=1, noise_sigma=sigma)
    return config.validate()


def trainer_throughput(config: Config, steps: int, pipeline: str) -> dict:
    """Steady-state images/s of `config` through `Trainer.fit`: a first window of `steps` (warm-up,
    compilation), then a timed one."""
    config.train.max_train_steps, config.train.logging_steps = 2 * steps, steps
    fresh_start()
    history = LoggedSteps()
    fit_in_process(config, [history])
    measured = history[1]
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    return {
        "pipeline": pipeline,
        "batch_size": config.train.train_batch_size,
        "mixed_precision": config.train.mixed_precision,
        "images_per_s": measured["train/images_per_s"],
        "timed_steps": steps,
        "gpu_memory_peak_gib": peak,
    }


def pipeline_name(compile_mode: str | None, mixture_yaml: Path | None, pad_channels_to: int = 0) -> str:
    return (
        "vae-restore trainer"
        + (f" + torch.compile ({compile_mode})" if compile_mode else "")
        + (f" + RGB channels padded to {pad_channels_to}" if pad_channels_to else "")
        + (f", mixture of {mixture_yaml.name}" if mixture_yaml else ", Gaussian noise")
    )


def fresh_start() -> None:
    """Every row starts from an empty compiler cache and free GPU memory.

    Each Accelerator wraps the model's forward in its own autocast, so every compiled trainer compiles
    anew, and graphs of trainers already gone still count towards dynamo's recompile limit (8): without
    a reset, later rows would silently run eager, or with a dynamic-batch graph, under a compiled label.
    """
    torch.compiler.reset()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def run_throughput(
    data: Path,
    batch_sizes: list[int],
    steps: int,
    compile_batch_sizes: list[int],
    reference_steps: int,
    output: Path | None,
    mixture_yaml: Path | None = None,
    compile_modes: tuple[str, ...] = ("default",),
    pad_channels: tuple[int, ...] = (0,),
    mixed_precisions: tuple[str, ...] | None = None,
) -> dict:
    """Reference loop, then the trainer with Gaussian noise at each batch size (eager, then compiled in
    each of `compile_modes`; all of it for each of `pad_channels`, 0 being unpadded, and for each of
    `mixed_precisions`, by default bf16 on a GPU and fp32 on the CPU), then the same with the mixture of
    `mixture_yaml` when given. Precisions are compared in one run so that both rows see the same load."""
    unknown = sorted(set(compile_modes) - set(COMPILE_MODES))
    if unknown:
        raise ConfigError(f"unknown --compile_modes {unknown}; choose from {', '.join(COMPILE_MODES)}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precisions = mixed_precisions or ("bf16" if device.type == "cuda" else "no",)
    unknown = sorted(set(precisions) - set(MIXED_PRECISIONS))
    if unknown:
        raise ConfigError(f"unknown --mixed_precision {unknown}; choose from {', '.join(MIXED_PRECISIONS)}")
    files = readable_files(list_images(data))
    report = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "data": str(data),
        "num_images": len(files),
        "rows": [],
    }
    reference = reference_throughput(files, device, measure_steps=reference_steps)
    _add_row(report, reference, output)
    runs = [
        (bs, mode, pad, mixed)
        for pad in pad_channels
        for bs, mode in [(bs, None) for bs in batch_sizes]
        + [(bs, mode) for bs in compile_batch_sizes for mode in compile_modes]
        for mixed in precisions
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for mixture in [None, mixture_yaml] if mixture_yaml else [None]:
            for bs, mode, pad, mixed in runs:
                name = pipeline_name(mode, mixture, pad)
                try:
                    config = benchmark_config(data, bs, steps, mixed, mode, Path(tmp), mixture, pad)
                    row = trainer_throughput(config, steps, name)
                except Exception as e:  # noqa: BLE001 - one row a device refuses must not cost the rows after it
                    logger.exception("row %s, batch %d failed", name, bs)
                    row = {"pipeline": name, "batch_size": bs, "mixed_precision": mixed, "error": repr(e)}
                _add_row(report, row, output)
    return report


def failed_rows(report: dict) -> list[dict]:
    return [row for row in report["rows"] if "error" in row]


def _add_row(report: dict, row: dict, output: Path | None) -> None:
    """Print the row and rewrite the JSON at once, so a run stopped by a time limit keeps what it measured."""
    report["rows"].append(row)
    if "error" in row:
        precision = PRECISION_NAMES.get(row["mixed_precision"], row["mixed_precision"])
        print(f"{row['pipeline']:<72} {precision:<4} batch {row['batch_size']:>5}  FAILED: {row['error']}", flush=True)
    else:
        reference = report["rows"][0]["images_per_s"]
        row["ratio_to_reference"] = row["images_per_s"] / reference
        _print_row(row, reference)
    if output is not None:
        output.write_text(json.dumps(report, indent=2) + "\n")


def _print_row(row: dict, reference: float) -> None:
    memory = row.get("gpu_memory_peak_gib")
    memory_text = f"  peak {memory:.1f} GiB" if memory else ""
    precision = PRECISION_NAMES.get(row.get("mixed_precision") or "no", row.get("mixed_precision"))
    print(
        f"{row['pipeline']:<72} {precision:<4} batch {row['batch_size']:>5}  {row['images_per_s']:>10,.0f} img/s  "
        f"x{row['images_per_s'] / reference:.2f}{memory_text}",
        flush=True,
    )
