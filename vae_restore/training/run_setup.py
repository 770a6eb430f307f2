"""Building a training stage before its first step: the Accelerator, the weights it starts from, the data
on the training device, the model, its optimiser and its learning-rate schedule."""

from __future__ import annotations

import copy
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, TorchDynamoPlugin, gather_object, set_seed

from .. import pretrained
from ..config import Config
from ..data.sampler import CropSampler
from ..data.stage_data import Shard, TrainingData, load_training_data
from ..distortions import DistortionMixture
from ..errors import ConfigError, DataError, TrainingError
from ..models import VAE, WEIGHTS_NAME, Preset, get_preset, load_model, sha256_file
from ..models.channel_padding import set_channel_padding
from ..tracking import prepare_tracker_env
from .optim import build_optimizer, build_scheduler
from .precision import resolve_mixed_precision
from .preflight import check_output_dir, required_bytes
from .validation import ValidationSet, build_validation_set

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parent:
    """The weights stage distorted starts from, and their sha256 (its lineage)."""

    path: Path
    sha256: str


def resolve_parent(config: Config) -> Parent | None:
    """The weights a stage starts from: `--init_from` (a run folder, weights or a bundled `pretrained:NAME`), else
    for stage distorted the clear run's weights (without them it stops before any work); stage clear without
    `--init_from` starts from random weights."""
    init_from = config.train.init_from and pretrained.resolve_weights(config.train.init_from)
    if config.train.stage == "clear" and not init_from:
        return None
    path = Path(init_from or Path(config.train.output_dir) / "clear" / WEIGHTS_NAME)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if not path.is_file() and config.train.init_from:
        raise TrainingError(f"--init_from {config.train.init_from}: {path} does not exist")
    if not path.is_file():
        raise TrainingError(
            f"stage distorted starts from clear-stage weights, but {path} does not exist. Run "
            f"`accelerate launch launch/train.py --stage clear --output_dir {config.train.output_dir}` first, "
            "or pass --init_from PATH"
        )
    return Parent(path.resolve(), sha256_file(path))


def load_parent(path: Path, preset: Preset) -> VAE:
    """The clear stage's weights, which must be of the preset this stage trains."""
    parent = load_model(path)
    if parent.preset != preset:
        raise ConfigError(
            f"{path} holds preset {parent.preset.name!r} but this stage trains {preset.name!r}: "
            f"pass --preset {parent.preset.name}, or start from weights of preset {preset.name!r}"
        )
    return parent


def resolved_config(config: Config, mixed_precision: str, parent: Parent | None) -> Config:
    """The config with what was left to defaults made explicit, so that `--config RUN_DIR/config.json`
    repeats the run elsewhere: the precision `accelerate launch` gave, the weights stage distorted started from."""
    resolved = copy.deepcopy(config)
    resolved.train.mixed_precision = mixed_precision
    resolved.train.resume_from_checkpoint, resolved.train.overwrite_output_dir = None, False  # how, not what
    if parent is not None:
        resolved.train.init_from = str(parent.path)
    return resolved


def compile_plugin(mode: str) -> TorchDynamoPlugin:
    """Static shapes: training's batch never changes, and validation's shorter last chunk gets a static graph
    of its own instead of a dynamic-shape recompilation (slower kernels)."""
    return TorchDynamoPlugin(backend="inductor", mode=mode, dynamic=False)


def build_accelerator(config: Config) -> Accelerator:
    """The Accelerator of this stage, its trackers' files under the run folder."""
    t, run_dir = config.train, config.run_dir
    prepare_tracker_env(t.report_to, run_dir)
    return Accelerator(
        mixed_precision=resolve_mixed_precision(t.mixed_precision),
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        log_with=None if t.report_to == "none" else t.report_to,
        dynamo_plugin=compile_plugin(t.compile_mode) if t.compile else None,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
    )


def build_model(config: Config, parent: Parent | None) -> VAE:
    """The seeded network of the configured preset, with `parent`'s weights when given; refused when the
    crop does not fit it, or when the run folder's disk cannot hold what the run will write."""
    t = config.train
    set_seed(t.seed, device_specific=True)
    model = VAE(get_preset(config.model.preset))
    if parent is not None:
        model.load_state_dict(load_parent(parent.path, model.preset).state_dict())
    crop, preset = config.data.crop_size, model.preset
    if not preset.fits(crop, crop):
        fix = f"a multiple of {preset.multiple}" if preset.fully_convolutional else str(preset.image_size)
        raise ConfigError(f"crop_size {crop} does not fit preset {preset.name!r}: pass --crop_size {fix}")
    needed = required_bytes(
        sum(p.numel() for p in model.parameters()),
        t.max_train_steps,
        t.checkpointing_steps,
        t.checkpoints_total_limit,
        ema=config.optim.ema_decay > 0,
    )
    check_output_dir(config.run_dir, needed)
    return model


def prepare_training(config: Config, accelerator: Accelerator, model: VAE):
    """(model, optimizer, scheduler) on the training device, wrapped by Accelerate."""
    t = config.train
    if set_channel_padding(model, t.pad_channels_to):
        logger.info("padding the RGB layers' channels to %d on the fly", t.pad_channels_to)
    memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
    model = model.to(accelerator.device, memory_format=memory_format)
    if accelerator.device.type == "cuda":
        torch.backends.cudnn.benchmark = t.cudnn_benchmark
    optimizer = build_optimizer(model.parameters(), config.optim, fused=accelerator.device.type == "cuda")
    scheduler = build_scheduler(optimizer, config.optim, t.max_train_steps, accelerator.num_processes)
    if config.optim.lr_warmup_steps >= t.max_train_steps:
        logger.warning(
            "lr_warmup_steps %d >= max_train_steps %d: the learning rate never reaches %g and never decays",
            config.optim.lr_warmup_steps,
            t.max_train_steps,
            config.optim.learning_rate,
        )
    return accelerator.prepare(model, optimizer, scheduler)


def data_summary(data: TrainingData, accelerator: Accelerator) -> tuple[list[str], list[str], int]:
    """(skipped files, padded files, image count) over all processes."""
    if data.summary_is_global:
        return data.skipped, data.padded, data.num_images
    skipped, padded = (list(dict.fromkeys(gather_object(files))) for files in (data.skipped, data.padded))
    return skipped, padded, sum(gather_object([data.num_images]))


@contextmanager
def local_main_first(accelerator: Accelerator):
    """The local main process runs the block first while the others wait, then they run it. When it fails,
    the others stop with its message instead of with a broken connection once it has exited."""
    failure = None
    if accelerator.is_local_main_process:
        try:
            yield
        except DataError as e:
            failure = str(e)
    accelerator.wait_for_everyone()
    failures = [f for f in gather_object([failure]) if f]
    if failures:
        if failure:
            raise DataError(failure)
        raise DataError(f"the local main process failed: {failures[0]}")
    if not accelerator.is_local_main_process:
        yield


def per_process_batch(config: Config, num_processes: int) -> int:
    """The crops each process trains on per micro-batch: `train_batch_size`, or its share of the global batch."""
    total = config.train.global_batch_size
    if total is None:
        return config.train.train_batch_size
    if total % num_processes:
        raise ConfigError(
            f"--global_batch_size {total} does not split evenly over {num_processes} processes: "
            f"pass a multiple of {num_processes}"
        )
    return total // num_processes


def data_generator(config: Config, accelerator: Accelerator) -> torch.Generator:
    """Each process gets its own stream, so processes read different crops; with a global batch all share
    one stream (each draws the whole batch and keeps its slice)."""
    g = torch.Generator(device=accelerator.device)
    rank = 0 if config.train.global_batch_size else accelerator.process_index
    g.manual_seed(config.train.seed * 1_000_003 + rank)
    return g


@dataclass
class DataStream:
    """The stage's data on the training device: the crop stream, its distortions, the validation crops."""

    sampler: CropSampler
    generator: torch.Generator
    mixture: DistortionMixture
    val: ValidationSet
    skipped_files: list[str]
    padded_files: list[str]
    num_train_images: int


def build_stage_data(config: Config, accelerator: Accelerator) -> DataStream:
    """Decode once, keep the pixels on the training device, fix the validation crops."""
    c, acc = config, accelerator
    distorted_stage = c.train.stage == "distorted"
    data = load_training_data(
        c.data,
        c.train.seed,
        acc.device,
        c.data.cache_dir or Path(c.train.output_dir) / "cache",
        Shard(acc.process_index, acc.num_processes, keep_all=c.train.global_batch_size is not None),
        lambda: local_main_first(acc),
        pairs=distorted_stage,
    )
    skipped, padded, count = data_summary(data, acc)
    mixture = DistortionMixture.from_config(c.distortions, c.data.noise_sigma)
    generator = data_generator(c, acc)
    sampler = CropSampler(data.target, c.data.crop_size, generator, data.source)
    val = build_validation_set(
        data.val,
        c.data.crop_size,
        c.data.val_crops_per_image,
        c.train.seed,
        mixture if distorted_stage else None,
        use_pairs=distorted_stage,
    )
    return DataStream(sampler, generator, mixture, val, skipped, padded, count)
