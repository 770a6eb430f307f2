"""One training stage on Accelerate: files -> cache -> device crops -> distortion -> VAE -> loss -> checkpoint."""

from __future__ import annotations

import copy
import functools
import logging
import shlex
import signal
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, TorchDynamoPlugin, gather_object, set_seed
from PIL import Image
from tqdm.auto import tqdm

from ..config import Config
from ..config_io import save_config
from ..data.sampler import CropSampler
from ..data.training_data import Shard, TrainingData, load_training_data
from ..distortions import DistortionMixture
from ..errors import CheckpointError, ConfigError, DataError, Preempted, TrainingError
from ..losses import LossTerms, loss_means, vae_loss
from ..models import VAE, WEIGHTS_NAME, Preset, get_preset, load_model, save_model, sha256_file
from ..models.channel_padding import set_channel_padding
from . import checkpoints
from .ema import EMA
from .monitor import TERMS, LossWindow, NonFiniteLoss
from .optim import build_optimizer, build_scheduler
from .preemption import PreemptionGuard, launcher, resume_command
from .preflight import check_output_dir, required_bytes
from .tracking import log_image, prepare_tracker_env
from .validation import NonFiniteRestoration, build_validation_set, run_validation

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
    if not path.is_file() and config.train.init_from:
        raise TrainingError(f"--init_from {config.train.init_from}: {path} does not exist")
    if not path.is_file():
        raise TrainingError(
            f"stage distorted starts from clear-stage weights, but {path} does not exist. Run "
            f"`accelerate launch launch/train.py --stage clear --output_dir {config.train.output_dir}` first, "
            "or pass --init_from PATH"
        )
    return Parent(path.resolve(), sha256_file(path))


def next_command(config: Config, num_processes: int = 1, mixed_precision: str = "no", cpu: bool = True) -> str:
    """What a user runs after this stage: stage distorted from these weights, on the same processes, or the export."""
    t = config.train
    if t.stage == "clear":
        # What stage clear was given that decides the data, the held-back images and the network.
        flat = {key.split(".")[-1]: value for key, value in config.flat().items()}
        defaults = {key.split(".")[-1]: value for key, value in Config().flat().items()}
        shared = ("output_dir", "train_data", "val_data", "val_fraction", "data_layout", "seed", "preset")
        flags = [f"--{key}={flat[key]}" for key in shared if flat[key] != defaults[key]]
        flags.append(f"--mixed_precision={mixed_precision}")
        return shlex.join([*launcher(num_processes, cpu), "launch/train.py", "--stage", "distorted", *flags])
    return f"python -m export.onnx --checkpoint {config.run_dir} --output {Path(t.output_dir) / 'model.onnx'}"


def load_parent(path: Path, preset: Preset) -> VAE:
    """The clear stage's weights, which must be of the preset this stage trains."""
    parent = load_model(path)
    if parent.preset != preset:
        raise ConfigError(
            f"{path} holds preset {parent.preset.name!r} but this stage trains {preset.name!r}: "
            f"pass --preset {parent.preset.name}, or start from weights of preset {preset.name!r}"
        )
    return parent


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


def data_generator(config: Config, accelerator: Accelerator) -> torch.Generator:
    """Each process gets its own stream, so processes read different crops."""
    g = torch.Generator(device=accelerator.device)
    g.manual_seed(config.train.seed * 1_000_003 + accelerator.process_index)
    return g


# What decides the network, the optimiser's path and the data stream: a resumed run may not change it.
RESUME_SECTIONS = ("model", "loss", "optim", "distortions")
RESUME_KEYS = ("train.seed", "train.train_batch_size", "data.crop_size", "data.noise_sigma", "data.synthetic_ratio")
# ... except these, which a resume may change (with a warning) to get past a divergence.
RESUME_MAY_CHANGE = ("optim.learning_rate", "optim.max_grad_norm")


def resume_settings(config: Config) -> dict:
    return {k: v for k, v in config.flat().items() if k.split(".")[0] in RESUME_SECTIONS or k in RESUME_KEYS}


def compile_plugin(mode: str) -> TorchDynamoPlugin:
    """Static shapes: training's batch never changes, and validation's shorter last chunk gets a static graph
    of its own instead of a dynamic-shape recompilation (slower kernels)."""
    return TorchDynamoPlugin(backend="inductor", mode=mode, dynamic=False)


# Called on every process with each logged step's number and metrics (`train/loss`, `train/images_per_s`, ...).
TrainingCallback = Callable[[int, dict[str, float]], None]


class Trainer:
    def __init__(self, config: Config, callbacks: Iterable[TrainingCallback] = ()):
        self.config = config.validate()  # a config built or edited in code gets the checks a YAML gets
        self.run_dir = config.run_dir
        t = config.train
        prepare_tracker_env(t.report_to, self.run_dir)
        self.accelerator = Accelerator(
            mixed_precision=t.mixed_precision,
            gradient_accumulation_steps=t.gradient_accumulation_steps,
            log_with=None if t.report_to == "none" else t.report_to,
            dynamo_plugin=compile_plugin(t.compile_mode) if t.compile else None,
            project_config=ProjectConfiguration(project_dir=str(self.run_dir), logging_dir=str(self.run_dir / "logs")),
        )
        self.resumed_from = checkpoints.resolve_resume(self.run_dir, t.resume_from_checkpoint, t.overwrite_output_dir)
        self.resumed_state = None if self.resumed_from is None else checkpoints.read_state(self.resumed_from)
        if self.resumed_from is not None:
            checkpoints.check_settings(
                self.resumed_from, self.resumed_state, resume_settings(config), self.accelerator, RESUME_MAY_CHANGE
            )
            if int(self.resumed_state["global_step"]) > t.max_train_steps:
                raise CheckpointError(
                    f"{self.resumed_from} is at step {self.resumed_state['global_step']}, past --max_train_steps "
                    f"{t.max_train_steps}: resume with at least as many steps"
                )
        self.parent = self.resumed_parent() or resolve_parent(config)
        set_seed(t.seed, device_specific=True)
        model = VAE(get_preset(config.model.preset))
        if self.parent is not None and self.resumed_from is None:  # a resume's weights come from its checkpoint
            model.load_state_dict(load_parent(self.parent.path, model.preset).state_dict())
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
        check_output_dir(self.run_dir, needed)
        self.build_data()
        if set_channel_padding(model, t.pad_channels_to):
            logger.info("padding the RGB layers' channels to %d on the fly", t.pad_channels_to)
        memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
        model = model.to(self.accelerator.device, memory_format=memory_format)
        if self.accelerator.device.type == "cuda":
            torch.backends.cudnn.benchmark = t.cudnn_benchmark
        optimizer = build_optimizer(model.parameters(), config.optim, fused=self.accelerator.device.type == "cuda")
        scheduler = build_scheduler(optimizer, config.optim, t.max_train_steps, self.accelerator.num_processes)
        if config.optim.lr_warmup_steps >= t.max_train_steps:
            logger.warning(
                "lr_warmup_steps %d >= max_train_steps %d: the learning rate never reaches %g and never decays",
                config.optim.lr_warmup_steps,
                t.max_train_steps,
                config.optim.learning_rate,
            )
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(model, optimizer, scheduler)
        # Accelerate compiles the model only; the loss's elementwise passes over the batch fuse too.
        self.loss_means = torch.compile(loss_means, dynamic=False) if t.compile else loss_means
        decay = config.optim.ema_decay
        self.ema = EMA(self.plain_model, decay) if decay > 0 else None
        self.global_step = 0
        self.bad_steps = 0
        self.window_sum: torch.Tensor | None = None  # loss terms of the accumulation window so far
        self.callbacks = list(callbacks)
        self.images_per_step = t.train_batch_size * t.gradient_accumulation_steps * self.accelerator.num_processes

    def build_data(self) -> None:
        """Decode once, keep the pixels on the training device, fix the validation crops."""
        c, acc = self.config, self.accelerator
        distorted_stage = c.train.stage == "distorted"
        data = load_training_data(
            c.data,
            c.train.seed,
            acc.device,
            c.data.cache_dir or Path(c.train.output_dir) / "cache",
            Shard(acc.process_index, acc.num_processes),
            lambda: local_main_first(acc),
            pairs=distorted_stage,
        )
        self.skipped_files, self.padded_files, self.num_train_images = data_summary(data, acc)
        self.mixture = DistortionMixture.from_config(c.distortions, c.data.noise_sigma)
        self.generator = data_generator(c, acc)
        self.sampler = CropSampler(data.target, c.data.crop_size, self.generator, data.source)
        self.val = build_validation_set(
            data.val,
            c.data.crop_size,
            c.data.val_crops_per_image,
            c.train.seed,
            self.distort if distorted_stage else None,
            use_pairs=distorted_stage,
        )

    def distort(self, clear: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.mixture(clear, generator)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        batch_size = self.config.train.train_batch_size
        source, target = self.sampler.sample(batch_size)
        if not self.config.train.channels_last:
            target = target.contiguous()
            source = None if source is None else source.contiguous()
        if source is None:
            source = self.distort(target, self.generator) if self.config.train.stage == "distorted" else target
        elif synthetic := round(self.config.data.synthetic_ratio * batch_size):
            source = torch.cat([self.distort(target[:synthetic], self.generator), source[synthetic:]])
        return source, target

    def resumed_parent(self) -> Parent | None:
        """The parent recorded in the checkpoint being resumed (a version-1 checkpoint may have none)."""
        if self.resumed_state is None or self.config.train.stage != "distorted":
            return None
        saved = self.resumed_state["parent"]
        return Parent(Path(saved["path"]), saved["sha256"]) if saved else None

    def maybe_resume(self) -> None:
        t = self.config.train
        path = self.resumed_from
        if path is None and t.overwrite_output_dir:  # a new run, asked for or because there is nothing to resume
            if self.accelerator.is_main_process:
                checkpoints.clear_earlier_run(self.run_dir)
            self.accelerator.wait_for_everyone()
        if t.resume_from_checkpoint is not None and path is None:
            logger.warning(
                "no complete checkpoint under %s: starting a new run", checkpoints.checkpoints_dir(self.run_dir)
            )
            return
        if path is not None:
            if self.accelerator.is_main_process:
                checkpoints.set_aside_later_checkpoints(self.run_dir, path)
            self.accelerator.wait_for_everyone()
            state = self.resumed_state
            checkpoints.load_checkpoint(self.accelerator, path, state, self.generator, self.ema)
            self.global_step, self.bad_steps = int(state["global_step"]), int(state["bad_steps"])
            self.accelerator.print(f"resumed from {path} at step {self.global_step}")
            self.apply_changed_optim_settings(state["settings"])
            planned, scheduler = state["max_train_steps"], self.config.optim.lr_scheduler
            if planned not in (None, t.max_train_steps) and scheduler != "constant":
                logger.warning(
                    "the %s learning-rate schedule was planned over %d steps and now spans --max_train_steps %d: "
                    "from step %d on it follows the longer schedule, so the learning rate jumps there",
                    scheduler,
                    planned,
                    t.max_train_steps,
                    self.global_step,
                )

    def apply_changed_optim_settings(self, saved: dict) -> None:
        """A resume may lower the learning rate or clip harder (the way past a divergence): the schedule is
        rescaled to the new peak from the resumed step on; --max_grad_norm is read every step anyway."""
        now = resume_settings(self.config)
        for key in RESUME_MAY_CHANGE:
            if key in saved and saved[key] != now[key]:
                logger.warning(
                    "resumed with --%s %s instead of the checkpoint's %s: from step %d on this run no longer "
                    "repeats the interrupted one",
                    key.split(".")[-1],
                    now[key],
                    saved[key],
                    self.global_step,
                )
        scheduler = self.scheduler.scheduler  # Accelerate's wrapper around the LambdaLR
        lr = self.config.optim.learning_rate
        scheduler.base_lrs = [lr] * len(scheduler.base_lrs)
        for group, rule in zip(self.optimizer.param_groups, scheduler.lr_lambdas, strict=True):
            group["initial_lr"], group["lr"] = lr, lr * rule(scheduler.last_epoch)

    def train_step(self) -> torch.Tensor | None:
        """One micro-batch. At the last one of an accumulation window, returns the window's mean loss terms,
        or None when its optimizer step was skipped as non-finite; before that, None."""
        acc, c = self.accelerator, self.config
        with acc.accumulate(self.model):
            source, target = self.next_batch()
            terms = vae_loss(c.loss, self.model(source), target, self.global_step, self.loss_means)
            acc.backward(terms.loss)
            window = self.accumulate_terms(terms)
            if window is not None and c.train.max_bad_steps and not self.all_finite(window[0]):
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

    def accumulate_terms(self, terms: LossTerms) -> torch.Tensor | None:
        """Sum every micro-batch's terms, so a NaN in any of them is seen; their mean at the window's end."""
        stacked = torch.stack([terms.loss.detach(), terms.reconstruction.detach(), terms.kl.detach()])
        self.window_sum = stacked if self.window_sum is None else self.window_sum + stacked
        if not self.accelerator.sync_gradients:
            return None
        mean, self.window_sum = self.window_sum / self.accelerator.gradient_accumulation_steps, None
        return mean

    def all_finite(self, loss: torch.Tensor) -> bool:
        """Agreed across processes (costs a synchronisation, hence only with --max_bad_steps)."""
        return bool(
            self.accelerator.reduce(torch.isfinite(loss.detach()).float(), reduction="sum").item()
            == self.accelerator.num_processes
        )

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
        checkpoints.save_checkpoint(
            self.accelerator,
            self.run_dir,
            self.global_step,
            self.generator,
            self.ema,
            self.bad_steps,
            resume_settings(self.config),
            None if self.parent is None else {"path": str(self.parent.path), "sha256": self.parent.sha256},
            self.config.train.max_train_steps,
        )
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
        acc.wait_for_everyone()
        acc.end_training()
        raise Preempted(
            f"stopped by {signal.Signals(signum).name} at step {self.global_step}; checkpoint: "
            f"{self.last_checkpoint()}\nresume with:\n  {command}",
            exit_code=128 + signum,
        )

    def fit(self) -> Path:
        acc, t = self.accelerator, self.config.train
        self.maybe_resume()
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

    def resolved_config(self) -> Config:
        """The config with what was left to defaults made explicit, so that `--config RUN_DIR/config.json`
        repeats the run elsewhere: the precision `accelerate launch` gave, the weights stage distorted started from."""
        resolved = copy.deepcopy(self.config)
        resolved.train.mixed_precision = self.accelerator.mixed_precision
        resolved.train.resume_from_checkpoint, resolved.train.overwrite_output_dir = None, False  # how, not what
        if self.parent is not None:
            resolved.train.init_from = str(self.parent.path)
        return resolved

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
                "bad_steps": self.bad_steps,
                "num_processes": acc.num_processes,
                "mixed_precision": acc.mixed_precision,
                "num_train_images": self.num_train_images,
                "skipped_files": self.skipped_files,
                "padded_files": self.padded_files,
            }
            save_config(self.resolved_config(), self.run_dir / "config.json", summary)
            acc.print(
                f"stage {self.config.train.stage} done: weights in {weights}, samples in {self.run_dir / 'samples'}\n"
                f"next: {next_command(self.config, acc.num_processes, acc.mixed_precision, acc.device.type == 'cpu')}"
            )
        acc.wait_for_everyone()  # no process may tear down the process group while another still uses it
        acc.end_training()
        return weights


def train(config: Config) -> Path:
    """Run one stage and return the path of its final `model.safetensors`."""
    return Trainer(config).fit()


__all__ = ["Trainer", "TrainingCallback", "resolve_parent", "train"]
