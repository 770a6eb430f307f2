"""One training stage on Accelerate: files -> cache -> device crops -> distortion -> VAE -> loss -> checkpoint."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, gather_object, set_seed
from PIL import Image
from tqdm.auto import tqdm

from ..config import Config, save_config
from ..data.cache import PixelBank
from ..data.dataset import load_train_val
from ..data.sampler import CropSampler
from ..distortions import gaussian_noise
from ..errors import TrainingError
from ..losses import vae_loss
from ..models import VAE, WEIGHTS_NAME, get_preset, load_model, save_model, sha256_file
from . import checkpoints
from .optim import build_optimizer, build_scheduler
from .tracking import log_image, prepare_tracker_env
from .validation import build_validation_set, run_validation

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parent:
    path: Path
    sha256: str


def resolve_parent(config: Config) -> Parent | None:
    """Stage distorted starts from a clear run's weights; without them it stops before any work."""
    if config.train.stage != "distorted":
        return None
    path = Path(config.train.init_from or Path(config.train.output_dir) / "clear" / WEIGHTS_NAME)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if not path.is_file():
        raise TrainingError(
            f"stage distorted starts from clear-stage weights, but {path} does not exist. Run "
            f"`accelerate launch launch/train.py --stage clear --output_dir {config.train.output_dir}` first, "
            "or pass --init_from PATH"
        )
    return Parent(path.resolve(), sha256_file(path))


def data_generator(config: Config, accelerator: Accelerator) -> torch.Generator:
    """Each process gets its own stream, so processes read different crops."""
    g = torch.Generator(device=accelerator.device)
    g.manual_seed(config.train.seed * 1_000_003 + accelerator.process_index)
    return g


class Trainer:
    def __init__(self, config: Config):
        self.config = config
        self.run_dir = config.run_dir
        t = config.train
        prepare_tracker_env(t.report_to, self.run_dir)
        self.accelerator = Accelerator(
            mixed_precision=t.mixed_precision,
            gradient_accumulation_steps=t.gradient_accumulation_steps,
            log_with=None if t.report_to == "none" else t.report_to,
            project_config=ProjectConfiguration(project_dir=str(self.run_dir), logging_dir=str(self.run_dir / "logs")),
        )
        self.parent = resolve_parent(config)
        set_seed(t.seed, device_specific=True)
        acc = self.accelerator
        if acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)

        train_images, val_images = load_train_val(config.data, t.seed)
        self.skipped_files = train_images.skipped
        self.paired = train_images.paired and t.stage == "distorted"
        self.generator = data_generator(config, acc)
        target = PixelBank(train_images.clear, config.data.crop_size).to(acc.device)
        source = PixelBank(train_images.distorted, config.data.crop_size).to(acc.device) if self.paired else None
        self.sampler = CropSampler(target, config.data.crop_size, self.generator, source)
        distort = self.distort if t.stage == "distorted" and not self.paired else None
        self.val = build_validation_set(
            val_images,
            config.data.crop_size,
            config.data.val_crops_per_image,
            t.seed,
            distort if val_images.paired is False else None,
        )
        self.num_train_images = len(train_images)

        model = VAE(get_preset(config.model.preset))
        if self.parent is not None:
            model.load_state_dict(load_model(self.parent.path).state_dict())
        model = model.to(acc.device, memory_format=torch.channels_last)
        optimizer = build_optimizer(model.parameters(), config.optim, fused=acc.device.type == "cuda")
        scheduler = build_scheduler(optimizer, config.optim, t.max_train_steps, acc.num_processes)
        self.model, self.optimizer, self.scheduler = acc.prepare(model, optimizer, scheduler)
        self.global_step = 0
        self.resumed_from: Path | None = None
        self.first_batch_sum: torch.Tensor | None = None

    def distort(self, clear: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return gaussian_noise(clear, self.config.data.noise_sigma, generator)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        source, target = self.sampler.sample(self.config.train.train_batch_size)
        if source is None:
            source = self.distort(target, self.generator) if self.config.train.stage == "distorted" else target
        return source, target

    def maybe_resume(self) -> None:
        t = self.config.train
        path = checkpoints.resolve_resume(self.run_dir, t.resume_from_checkpoint)
        if t.resume_from_checkpoint is not None and path is None:
            logger.warning(
                "no complete checkpoint under %s: starting a new run", checkpoints.checkpoints_dir(self.run_dir)
            )
            return
        if path is not None:
            self.global_step = checkpoints.load_checkpoint(self.accelerator, path, self.generator)
            self.resumed_from = path
            self.accelerator.print(f"resumed from {path} at step {self.global_step}")

    def train_step(self) -> torch.Tensor:
        acc, t = self.accelerator, self.config
        with acc.accumulate(self.model):
            source, target = self.next_batch()
            if self.first_batch_sum is None:
                self.first_batch_sum = source.detach().double().sum()
            terms = vae_loss(t.loss, self.model(source), target)
            acc.backward(terms.loss)
            if acc.sync_gradients and t.optim.max_grad_norm is not None:
                acc.clip_grad_norm_(self.model.parameters(), t.optim.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        return torch.stack([terms.loss.detach(), terms.reconstruction.detach(), terms.kl.detach()])

    def save_checkpoint(self) -> None:
        checkpoints.save_checkpoint(self.accelerator, self.run_dir, self.global_step, self.generator)
        if self.accelerator.is_main_process:
            checkpoints.rotate_checkpoints(self.run_dir, self.config.train.checkpoints_total_limit, self.resumed_from)

    def validate(self) -> dict[str, float]:
        acc = self.accelerator
        self.model.eval()
        metrics, grid = run_validation(acc, acc.unwrap_model(self.model), self.val)
        self.model.train()
        if acc.is_main_process:
            samples = self.run_dir / "samples"
            samples.mkdir(exist_ok=True)
            Image.fromarray(grid).save(samples / f"step-{self.global_step:07d}.png")
            log_image(acc, "validation/samples", grid, self.global_step)
        acc.log({f"val/{k}": v for k, v in metrics.items()}, step=self.global_step)
        return metrics

    def check_finite(self, window: torch.Tensor, first_step: int) -> None:
        bad = ~torch.isfinite(window[:, 0])
        if bad.any():
            step = first_step + int(bad.nonzero()[0])
            last = checkpoints.complete_checkpoints(self.run_dir)
            raise TrainingError(
                f"loss became {window[bad.nonzero()[0], 0].item()} at step {step}; last good checkpoint: "
                f"{last[-1] if last else 'none'}. Lower --learning_rate or --max_grad_norm and resume."
            )

    def fit(self) -> Path:
        acc, t = self.accelerator, self.config.train
        self.maybe_resume()
        if acc.is_main_process:
            acc.init_trackers(t.tracker_project_name, config=self.config.flat())
        images_per_step = t.train_batch_size * t.gradient_accumulation_steps * acc.num_processes
        progress = tqdm(
            total=t.max_train_steps,
            initial=self.global_step,
            disable=not acc.is_local_main_process,
            desc=f"stage {t.stage}",
            dynamic_ncols=True,
        )
        self.model.train()
        window, window_start, clock = [], self.global_step + 1, time.perf_counter()
        while self.global_step < t.max_train_steps:
            terms = self.train_step()
            if not acc.sync_gradients:
                continue
            self.global_step += 1
            window.append(terms)
            progress.update(1)
            if self.global_step % t.logging_steps == 0 or self.global_step == t.max_train_steps:
                stacked = torch.stack(window)
                self.check_finite(stacked, window_start)
                mean = acc.reduce(stacked.mean(0), reduction="mean").tolist()
                elapsed = time.perf_counter() - clock
                speed = len(window) * images_per_step / elapsed
                logs = {
                    "train/loss": mean[0],
                    "train/reconstruction": mean[1],
                    "train/kl": mean[2],
                    "train/lr": self.scheduler.get_last_lr()[0],
                    "train/images_per_s": speed,
                }
                acc.log(logs, step=self.global_step)
                progress.set_postfix(loss=f"{mean[0]:.4g}", img_s=f"{speed:.0f}")
                window, window_start, clock = [], self.global_step + 1, time.perf_counter()
            if self.global_step % t.checkpointing_steps == 0:
                self.save_checkpoint()
            if self.global_step % t.validation_steps == 0 or self.global_step == t.max_train_steps:
                self.validate()
        progress.close()
        return self.finish()

    def describe_processes(self) -> list[dict]:
        """Who trained: one entry per process, with a fingerprint of the first batch it read."""
        first = None if self.first_batch_sum is None else float(self.first_batch_sum)
        mine = {"rank": self.accelerator.process_index, "pid": os.getpid(), "first_batch_sum": first}
        return gather_object([mine])

    def finish(self) -> Path:
        """Final fp32 weights with their lineage, and the resolved config with a summary of the run."""
        acc = self.accelerator
        processes = self.describe_processes()
        weights = self.run_dir / WEIGHTS_NAME
        if acc.is_main_process:
            lineage = {}
            if self.parent is not None:
                lineage = {"parent": str(self.parent.path), "parent_sha256": self.parent.sha256}
            meta = {"stage": self.config.train.stage, "global_step": str(self.global_step), **lineage}
            save_model(acc.unwrap_model(self.model), weights, meta)
            summary = {
                "lineage": lineage,
                "weights_sha256": sha256_file(weights),
                "global_step": self.global_step,
                "resumed_from": str(self.resumed_from) if self.resumed_from else None,
                "num_processes": acc.num_processes,
                "processes": processes,
                "mixed_precision": acc.mixed_precision,
                "num_train_images": self.num_train_images,
                "skipped_files": self.skipped_files,
            }
            save_config(self.config, self.run_dir / "config.json", summary)
            acc.print(
                f"stage {self.config.train.stage} done: weights in {weights}, samples in {self.run_dir / 'samples'}"
            )
        acc.wait_for_everyone()  # no process may tear down the process group while another still uses it
        acc.end_training()
        return weights


def train(config: Config) -> Path:
    """Run one stage and return the path of its final `model.safetensors`."""
    return Trainer(config).fit()


__all__ = ["Trainer", "resolve_parent", "train"]
