"""One training stage on Accelerate: files -> cache -> device crops -> distortion -> VAE -> loss -> checkpoint.

Building the stage is `run_setup`, what a resume does is `resume`; this module is the loop: step, log,
validate, checkpoint, finish.
"""

from __future__ import annotations

import functools
import logging
import signal
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image
from tqdm.auto import tqdm

from ..config import Config
from ..config_io import save_config
from ..errors import Preempted, TrainingError
from ..losses import loss_means, vae_loss
from ..model_card import write_run_card
from ..models import VAE, WEIGHTS_NAME, save_model, sha256_file
from ..tracking import log_image
from . import checkpoints, resume
from .ema import EMA
from .monitor import TERMS, AccumulationWindow, LossWindow, NonFiniteLoss, agreed_finite
from .preemption import PreemptionGuard, next_command, resume_command
from .run_setup import (
    build_accelerator,
    build_model,
    build_stage_data,
    per_process_batch,
    prepare_training,
    resolve_parent,
    resolved_config,
)
from .validation import NonFiniteRestoration, run_validation

logger = logging.getLogger(__name__)


# Called on every process with each logged step's number and metrics (`train/loss`, `train/images_per_s`, ...).
TrainingCallback = Callable[[int, dict[str, float]], None]


class Batch(NamedTuple):
    """One process's micro-batch."""

    source: torch.Tensor  # the model's input
    target: torch.Tensor  # the clear crops
    noise: torch.Tensor | None  # the reparameterisation's draw, for a global batch stream; None: the model's own


class Trainer:
    """One stage: built by `run_setup`, resumed by `resume`, trained by `fit`."""

    def __init__(self, config: Config, callbacks: Iterable[TrainingCallback] = ()):
        config = config.validate()  # a config built or edited in code gets the checks a YAML gets
        self.run_dir = config.run_dir
        self.accelerator = build_accelerator(config)
        t = replace(config.train, train_batch_size=per_process_batch(config, self.accelerator.num_processes))
        self.config = config = replace(config, train=t)
        self.resume_plan = resume.plan_resume(config, self.accelerator)  # refused here, before anything heavy
        self.resumed_from = None if self.resume_plan is None else self.resume_plan.path
        self.parent = (self.resume_plan and self.resume_plan.parent) or resolve_parent(config)
        # A resume's weights come from its checkpoint.
        model = build_model(config, self.parent if self.resume_plan is None else None)
        self.build_data()
        self.model, self.optimizer, self.scheduler = prepare_training(config, self.accelerator, model)
        # Accelerate compiles the model only; the loss's elementwise passes over the batch fuse too.
        self.loss_means = torch.compile(loss_means, dynamic=False) if t.compile else loss_means
        decay = config.optim.ema_decay
        self.ema = EMA(self.plain_model, decay) if decay > 0 else None
        crop = config.data.crop_size
        self.latent_shape = self.plain_model.latent_shape(crop, crop) if t.global_batch_size else None
        self.global_step = 0
        self.segments: list[dict] = []  # (start step, process count) of each start and resume: `start`
        self.bad_steps = 0
        self.accumulated = AccumulationWindow(t.gradient_accumulation_steps)
        self.callbacks = list(callbacks)
        self.last_validation: dict[str, float] | None = None  # for the run's model card
        self.images_per_step = t.train_batch_size * t.gradient_accumulation_steps * self.accelerator.num_processes

    def build_data(self) -> None:
        """Decode once, keep the pixels on the training device, fix the validation crops."""
        data = build_stage_data(self.config, self.accelerator)
        self.sampler, self.generator, self.mixture, self.val = data.sampler, data.generator, data.mixture, data.val
        self.skipped_files, self.padded_files = data.skipped_files, data.padded_files
        self.num_train_images = data.num_train_images

    def distort(self, clear: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.mixture(clear, generator)

    def next_batch(self) -> Batch:
        """Clear crops, distorted on the fly where the data has no distorted side. With a global batch every
        process draws the whole of it from the same stream, and keeps its own slice: the crops, distortions
        and latent noise of a sample do not depend on the process count (the data work does, N-fold)."""
        t = self.config.train
        batch_size = t.global_batch_size or t.train_batch_size
        distorted, clear = self.sampler.sample(batch_size)
        if not self.config.train.channels_last:
            clear = clear.contiguous()
            distorted = None if distorted is None else distorted.contiguous()
        if distorted is None:
            distorted = self.distort(clear, self.generator) if self.config.train.stage == "distorted" else clear
        elif synthetic := round(self.config.data.synthetic_ratio * batch_size):
            distorted = torch.cat([self.distort(clear[:synthetic], self.generator), distorted[synthetic:]])
        if not t.global_batch_size:
            return Batch(distorted, clear, None)
        noise = torch.randn((batch_size, *self.latent_shape), generator=self.generator, device=clear.device)
        start = self.accelerator.process_index * t.train_batch_size
        return Batch(*(x[start : start + t.train_batch_size] for x in (distorted, clear, noise)))

    def start(self) -> None:
        """Continue the checkpoint being resumed, or start a new run (see `resume`)."""
        plan = self.resume_plan
        segment = {"from_step": 0, "num_processes": self.accelerator.num_processes}
        if plan is None:
            resume.start_new_run(self.config, self.accelerator)
            self.segments = [segment]
            return
        self.bad_steps = resume.restore(
            plan, self.config, self.accelerator, self.generator, self.ema, self.optimizer, self.scheduler
        )
        self.global_step = int(plan.state["global_step"])
        self.segments = resume.earlier_segments(plan.state) + [{**segment, "from_step": self.global_step}]

    def train_step(self) -> torch.Tensor | None:
        """One micro-batch. At the last one of an accumulation window, returns the window's mean loss terms,
        or None when its optimizer step was skipped as non-finite; before that, None."""
        acc, c = self.accelerator, self.config
        with acc.accumulate(self.model):
            source, target, noise = self.next_batch()
            terms = vae_loss(c.loss, self.model(source, noise=noise), target, self.global_step, self.loss_means)
            acc.backward(terms.loss)
            window = self.accumulated.add(terms, acc.sync_gradients)
            if window is not None and c.train.max_bad_steps and not agreed_finite(acc, window[0]):
                self.optimizer.zero_grad(set_to_none=True)
                self.skip_bad_step()
                return None
            if acc.sync_gradients and c.optim.max_grad_norm is not None:
                acc.clip_grad_norm_(self.model.parameters(), c.optim.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.ema is not None and acc.sync_gradients:
                self.ema.update(self.plain_model)
        return window

    def skip_bad_step(self) -> None:
        self.bad_steps += 1
        logger.warning(
            "non-finite loss at step %d: optimizer step skipped (%d of at most %d)",
            self.global_step + 1,
            self.bad_steps,
            self.config.train.max_bad_steps,
        )
        if self.bad_steps > self.config.train.max_bad_steps:
            raise TrainingError(
                f"{self.bad_steps} non-finite losses, more than --max_bad_steps "
                f"{self.config.train.max_bad_steps}; last good checkpoint: {self.last_checkpoint()}"
            )

    def save_checkpoint(self) -> None:
        parent = None if self.parent is None else {"path": str(self.parent.path), "sha256": self.parent.sha256}
        state = checkpoints.CheckpointState(
            self.global_step,
            self.bad_steps,
            resume.resume_settings(self.config),
            parent,
            self.config.train.max_train_steps,
            self.segments,
        )
        checkpoints.save_checkpoint(self.accelerator, self.run_dir, state, self.generator, self.ema)
        if self.accelerator.is_main_process:
            checkpoints.rotate_checkpoints(self.run_dir, self.config.train.checkpoints_total_limit, self.resumed_from)

    @functools.cached_property
    def plain_model(self) -> VAE:
        """The model without Accelerate's wrappers and without torch.compile's, whose state dict would carry
        `_orig_mod.` key prefixes that no loader expects (unwrapped once: the EMA reads it every step)."""
        return self.accelerator.unwrap_model(self.model, keep_torch_compile=False)

    def weights(self) -> VAE:
        """What validation scores and `model.safetensors` holds: the moving average when there is one."""
        return self.ema.model if self.ema is not None else self.plain_model

    def validate(self) -> dict[str, float]:
        acc = self.accelerator
        self.model.eval()
        try:
            metrics, grid = run_validation(acc, self.weights(), self.val)
        except NonFiniteRestoration as e:  # finite losses, yet NaN restorations: skipped steps hid a divergence
            raise TrainingError(
                f"validation at step {self.global_step}: {e}, its weights have diverged "
                f"({self.bad_steps} steps skipped as non-finite); last checkpoint: {self.last_checkpoint()}. "
                "Resume from a checkpoint written before the divergence with a lower --learning_rate"
            ) from None
        self.model.train()
        if acc.is_main_process:
            samples = self.run_dir / "samples"
            samples.mkdir(exist_ok=True)
            Image.fromarray(grid).save(samples / f"step-{self.global_step:07d}.png")
            log_image(acc, "validation/samples", grid, self.global_step)
        acc.log({f"val/{k}": v for k, v in metrics.items()}, step=self.global_step)
        self.last_validation = {"step": self.global_step, **metrics}
        return metrics

    def last_checkpoint(self) -> str:
        found = checkpoints.complete_checkpoints(self.run_dir)
        return str(found[-1]) if found else "none"

    def flush_logs(self, window: LossWindow, progress: tqdm) -> None:
        """Check the steps since the last flush for NaN/Inf and log their mean (the loop's one sync point)."""
        try:
            flushed = window.flush(self.global_step + 1, lambda t: self.accelerator.reduce(t, reduction="mean"))
        except NonFiniteLoss as e:
            raise TrainingError(
                f"{e}; last good checkpoint: {self.last_checkpoint()}. Resume from it with a lower --learning_rate "
                "(or a smaller --max_grad_norm), or allow a few bad steps with --max_bad_steps K"
            ) from None
        if flushed is None:
            return
        stacked, seconds, steps = flushed
        mean = stacked.mean(0).tolist()
        speed = steps * self.images_per_step / seconds
        logs = {f"train/{name}": value for name, value in zip(TERMS, mean, strict=True)}
        logs.update(
            {
                "train/lr": self.scheduler.get_last_lr()[0],
                "train/images_per_s": speed,
                "train/bad_steps": self.bad_steps,
            }
        )
        self.accelerator.log(logs, step=self.global_step)
        for callback in self.callbacks:
            callback(self.global_step, logs)
        progress.set_postfix(loss=f"{mean[0]:.4g}", img_s=f"{speed:.0f}")

    def stop_for_signal(self, signum: int, window: LossWindow, progress: tqdm) -> None:
        self.flush_logs(window, progress)  # never checkpoint weights that followed a NaN
        self.save_checkpoint()
        acc = self.accelerator
        command = resume_command(acc.num_processes, acc.mixed_precision, cpu=acc.device.type == "cpu")
        self.close()
        raise Preempted(
            f"stopped by {signal.Signals(signum).name} at step {self.global_step}; checkpoint: "
            f"{self.last_checkpoint()}\nresume with:\n  {command}",
            exit_code=128 + signum,
        )

    def fit(self) -> Path:
        acc, t = self.accelerator, self.config.train
        self.start()
        if acc.is_main_process:
            acc.init_trackers(t.tracker_project_name, config=self.config.flat())
        progress = tqdm(
            total=t.max_train_steps,
            initial=self.global_step,
            disable=not acc.is_local_main_process,
            desc=f"stage {t.stage}",
            dynamic_ncols=True,
        )
        window = LossWindow(self.global_step + 1)
        self.model.train()
        with PreemptionGuard() as guard, progress:
            while self.global_step < t.max_train_steps:
                terms = self.train_step()
                if not acc.sync_gradients:
                    continue
                self.global_step += 1
                progress.update(1)
                if terms is not None:
                    window.add(terms)
                step, last = self.global_step, self.global_step == t.max_train_steps
                checkpoint_now, validate_now = step % t.checkpointing_steps == 0, step % t.validation_steps == 0 or last
                # Validation synchronises anyway; checking the losses first names a NaN step as such.
                sync_point = step % t.logging_steps == 0 or checkpoint_now or validate_now
                if sync_point:
                    self.flush_logs(window, progress)
                if guard.should_stop(acc, sync_point) and not last:
                    self.stop_for_signal(guard.signum, window, progress)
                if checkpoint_now:
                    self.save_checkpoint()
                if validate_now:
                    self.validate()
        return self.finish()

    def finish(self) -> Path:
        """Final fp32 weights with their lineage, and the resolved config with a summary of the run."""
        acc = self.accelerator
        weights = self.run_dir / WEIGHTS_NAME
        if acc.is_main_process:
            lineage = {}
            if self.parent is not None:
                lineage = {"parent": str(self.parent.path), "parent_sha256": self.parent.sha256}
            meta = {"stage": self.config.train.stage, "global_step": str(self.global_step), **lineage}
            if self.ema is not None:
                meta["ema_decay"] = str(self.ema.decay)
            save_model(self.weights(), weights, meta)
            summary = {
                "lineage": lineage,
                "weights_sha256": sha256_file(weights),
                "global_step": self.global_step,
                "resumed_from": str(self.resumed_from) if self.resumed_from else None,
                "segments": self.segments,
                "bad_steps": self.bad_steps,
                "num_processes": acc.num_processes,
                "mixed_precision": acc.mixed_precision,
                "num_train_images": self.num_train_images,
                "skipped_files": self.skipped_files,
                "padded_files": self.padded_files,
            }
            save_config(
                resolved_config(self.config, acc.mixed_precision, self.parent), self.run_dir / "config.json", summary
            )
            write_run_card(self.run_dir, self.last_validation)
            acc.print(
                f"stage {self.config.train.stage} done: weights in {weights}, samples in {self.run_dir / 'samples'}\n"
                f"next: {next_command(self.config, acc.num_processes, acc.mixed_precision, acc.device.type == 'cpu')}"
            )
        self.close()
        return weights

    def close(self) -> None:
        """Tear down while the interpreter is fully alive: the DDP wrapper (its reducer holds the process
        group and gloo work that references tensors) goes first, then the group. Left to interpreter
        finalisation, freeing those tensors aborts the process ("terminate called without an active
        exception") now and then. The unwrapped model stays, for callers that read it after `fit`."""
        acc = self.accelerator
        acc.wait_for_everyone()  # no process may tear down the process group while another still uses it
        self.model = self.plain_model
        acc.free_memory()  # Accelerate's own references to the wrapped model; collects the garbage
        acc.end_training()


def train(config: Config, callbacks: Iterable[TrainingCallback] = ()) -> Path:
    """Run one training stage, as `accelerate launch launch/train.py` does.

    Args:
        config: the stage's settings (`config_io.build_config`); checked again here.
        callbacks: called on every process with each logged step's number and metrics.

    Returns:
        The path of the stage's final weights, RUN_DIR/model.safetensors.

    Raises:
        ConfigError: invalid settings, a crop the preset cannot take, or parent weights of another preset.
        CheckpointError: a run folder holding an earlier run, or a resume that changes what it may not.
        DataError: no usable images, unpaired files, or unreadable ones with strict_data.
        TrainingError: no parent weights for stage distorted, too little disk space, or a diverged run.
        Preempted: stopped by SIGTERM or SIGINT, after writing a checkpoint.
    """
    return Trainer(config, callbacks).fit()


__all__ = ["Trainer", "TrainingCallback", "resolve_parent", "train"]
