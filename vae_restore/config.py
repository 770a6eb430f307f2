"""Typed training configuration: the sections, their defaults and their checks.

Defaults are overridden by a YAML file, then by command-line flags (`config_io`, `config_cli`). Every
leaf key is also a flag of the same name (`--learning_rate 3e-4`), so the names follow the diffusers
training scripts where the concept is the same. This module imports nothing of the toolkit but its
errors, so every layer can read its settings from it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

STAGES = ("clear", "distorted")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile
PIXEL_CACHES = ("auto", "memory", "disk")
RECONSTRUCTIONS = ("bce", "l1", "mse", "charbonnier")
LOSS_REDUCTIONS = ("sum", "mean")
OPTIMIZERS = ("adam", "adamw")
LR_SCHEDULERS = ("constant", "linear", "cosine")
DATA_LAYOUTS = ("auto", "clear_only", "same_name", "stem_prefix", "manifest")  # see data/files.py

Checks = list[tuple[bool, str]]  # (condition, the error when it is false)


def raise_first_failure(checks: Checks) -> None:
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


@dataclass
class DataConfig:
    train_data: str | None = None  # None: the embedded scikit-image samples
    val_data: str | None = None  # None: hold back part of train_data
    val_fraction: float = 0.1  # without val_data: the share of train_data held back for validation
    val_crops_per_image: int = 4  # fixed validation crops drawn from each validation image
    crop_size: int = 128  # training crop side: the preset's tile size
    noise_sigma: tuple[float, float] = (5.0, 50.0)  # Gaussian noise for stage distorted, in 1/255 units
    data_layout: str = "auto"  # auto, clear_only, same_name, stem_prefix, manifest
    allow_unpaired: bool = False  # True: unpaired files are a warning (and left out), not an error
    strict_data: bool = False  # True: an unreadable file stops the run before training
    synthetic_ratio: float = 0.0  # paired data: share of each batch whose input is synthesised from the clear crop
    pixel_cache: str = "auto"  # memory, disk (memory-mapped, reused by later runs), auto
    cache_dir: str | None = None  # disk pixel cache folder; None: OUTPUT_DIR/cache

    def checks(self) -> Checks:
        return [
            (0.0 <= self.val_fraction < 1.0, "val_fraction must be in [0, 1)"),
            (self.val_crops_per_image >= 1, "val_crops_per_image must be >= 1"),
            (
                0 <= self.noise_sigma[0] <= self.noise_sigma[1],
                "noise_sigma must be (low, high) with 0 <= low <= high",
            ),
            (0.0 <= self.synthetic_ratio <= 1.0, "synthetic_ratio must be in [0, 1]"),
            (self.data_layout in DATA_LAYOUTS, f"data_layout must be one of {DATA_LAYOUTS}"),
            (self.pixel_cache in PIXEL_CACHES, f"pixel_cache must be one of {PIXEL_CACHES}"),
        ]


@dataclass
class DistortionConfig:
    """Synthetic inputs for stage distorted: each distortion's chance per image, and its parameter range.

    Several distortions may hit one image (in a fixed, physical order); one that draws none gets one
    chosen by these chances. Gaussian noise uses data.noise_sigma.
    """

    p_gaussian_noise: float = 1.0
    p_poisson_noise: float = 0.0
    p_gaussian_blur: float = 0.0
    p_motion_blur: float = 0.0
    p_resample: float = 0.0
    p_jpeg: float = 0.0
    p_fading: float = 0.0
    p_color_cast: float = 0.0
    p_yellowing: float = 0.0
    p_scratches: float = 0.0
    p_dust: float = 0.0
    p_cracks: float = 0.0
    p_aging: float = 0.0  # fading, yellowing, scratches and dust on one image, as old prints show them
    poisson_peak: tuple[float, float] = (10.0, 200.0)  # photons at white (fewer: noisier)
    blur_sigma: tuple[float, float] = (0.5, 2.5)  # pixels
    motion_length: tuple[float, float] = (3.0, 15.0)  # pixels
    resample_factor: tuple[float, float] = (1.5, 4.0)
    jpeg_quality: tuple[int, int] = (10, 95)
    fade_amount: tuple[float, float] = (0.1, 0.45)
    cast_strength: tuple[float, float] = (0.03, 0.15)
    yellowing_strength: tuple[float, float] = (0.2, 1.0)  # varnish thickness (1: VARNISH transmission)
    scratch_count: tuple[int, int] = (1, 5)  # per 128x128 crop
    dust_density: tuple[float, float] = (10.0, 60.0)  # specks per 128x128
    crack_cell: tuple[float, float] = (10.0, 28.0)  # pixels between cracks

    def checks(self) -> Checks:
        items = dataclasses.asdict(self).items()
        probs = [(k, v) for k, v in items if k.startswith("p_")]
        ranges = [(k, v) for k, v in items if isinstance(v, tuple)]
        return [
            *[(0.0 <= v <= 1.0, f"{k} must be a probability in [0, 1], got {v}") for k, v in probs],
            (any(v > 0 for _, v in probs), "at least one distortion probability (p_*) must be > 0"),
            *[(0 < v[0] <= v[1], f"{k} must be (low, high) with 0 < low <= high, got {v}") for k, v in ranges],
            (self.jpeg_quality[1] <= 100, "jpeg_quality must be within 1..100"),
        ]


@dataclass
class ModelConfig:
    preset: str = "original"  # see `vae-restore presets`

    def checks(self) -> Checks:
        return []  # the preset is looked up when the model is built, with the list of presets


@dataclass
class LossConfig:
    reconstruction: str = "bce"  # bce (the original code), l1, mse, charbonnier
    kl_weight: float = 1.0  # β, the KL term's weight (the original code: 1)
    kl_warmup_steps: int = 0  # >0: the KL weight ramps linearly from kl_weight/N to kl_weight over N steps
    ssim_weight: float = 0.0  # >0: + ssim_weight·(1 - SSIM)·(values per image), on the scale of a per-pixel loss
    loss_reduction: str = "sum"  # sum (the original code): over an image's values / latent elements; mean: averaged

    def checks(self) -> Checks:
        return [
            (
                self.reconstruction in RECONSTRUCTIONS,
                f"unknown reconstruction loss {self.reconstruction!r}; choose from {', '.join(RECONSTRUCTIONS)}",
            ),
            (
                self.loss_reduction in LOSS_REDUCTIONS,
                f"loss_reduction must be one of {', '.join(LOSS_REDUCTIONS)}, got {self.loss_reduction!r}",
            ),
            (self.kl_weight >= 0, "kl_weight must be >= 0"),
            (self.kl_warmup_steps >= 0 and self.ssim_weight >= 0, "kl_warmup_steps and ssim_weight must be >= 0"),
        ]


@dataclass
class OptimConfig:
    optimizer: str = "adam"  # adam, adamw
    learning_rate: float = 1e-3  # peak learning rate, reached after lr_warmup_steps
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    adam_weight_decay: float = 0.0
    lr_scheduler: str = "constant"  # constant, linear, cosine, all after warm-up (constant = constant_with_warmup)
    lr_warmup_steps: int = 0  # linear warm-up from 0 to learning_rate
    max_grad_norm: float | None = 1.0  # gradient clipping; None: no clipping
    ema_decay: float = 0.0  # >0: keep an exponential moving average of the weights; it is what gets saved

    def checks(self) -> Checks:
        return [
            (0.0 <= self.ema_decay < 1.0, f"ema_decay must be in [0, 1) (0: no EMA), got {self.ema_decay}"),
            (
                self.optimizer in OPTIMIZERS,
                f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}",
            ),
            (
                math.isfinite(self.learning_rate) and self.learning_rate >= 0,  # 0 freezes the weights: a valid check
                f"learning_rate must be finite and >= 0, got {self.learning_rate}",
            ),
            (
                0.0 <= self.adam_beta1 < 1.0 and 0.0 <= self.adam_beta2 < 1.0,
                f"adam_beta1 and adam_beta2 must be in [0, 1), got {self.adam_beta1}, {self.adam_beta2}",
            ),
            (self.adam_epsilon > 0, f"adam_epsilon must be > 0, got {self.adam_epsilon}"),
            (
                math.isfinite(self.adam_weight_decay) and self.adam_weight_decay >= 0,
                f"adam_weight_decay must be finite and >= 0, got {self.adam_weight_decay}",
            ),
            (self.lr_warmup_steps >= 0, "lr_warmup_steps must be >= 0"),
            (self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm must be > 0 (none: no clipping)"),
            (
                self.lr_scheduler in LR_SCHEDULERS,
                f"unknown lr_scheduler {self.lr_scheduler!r}; choose from {', '.join(LR_SCHEDULERS)}",
            ),
        ]


@dataclass
class TrainConfig:
    stage: str = "clear"  # clear, distorted
    output_dir: str = "runs"  # each stage's run folder is OUTPUT_DIR/<stage>
    overwrite_output_dir: bool = False  # a new run deletes an earlier one's weights, checkpoints, samples, logs
    init_from: str | None = None  # run folder, .safetensors or pretrained:NAME; None: OUTPUT_DIR/clear, clear: random
    seed: int = 0  # weights, crops, distortions and the validation split
    max_train_steps: int = 300  # optimizer steps
    train_batch_size: int = 32  # per process; with --global_batch_size: derived from it
    global_batch_size: int | None = None  # crops per micro-batch summed over processes, one stream: any process count
    gradient_accumulation_steps: int = 1
    mixed_precision: str | None = None  # no, fp16, bf16; None: whatever `accelerate launch` was given
    checkpointing_steps: int = 500  # a resumable checkpoint every N steps, under RUN_DIR/checkpoints/
    checkpoints_total_limit: int | None = None  # keep the newest N checkpoints; None: keep all
    resume_from_checkpoint: str | None = None  # latest, or a checkpoint folder
    report_to: str = "wandb"  # wandb, tensorboard, none
    logging_steps: int = 10  # losses are read (one host synchronisation) and logged every N steps
    max_bad_steps: int = 0  # >0: skip up to this many non-finite steps instead of stopping (syncs every step)
    validation_steps: int = 100  # validation metrics and a sample grid every N steps
    tracker_project_name: str = "vae-restore"  # the W&B project
    channels_last: bool = True  # NHWC memory layout for model and crops (faster convolutions on GPUs)
    compile: bool = False  # torch.compile the model (inductor)
    compile_mode: str = "default"  # with --compile: default, reduce-overhead (CUDA graphs), max-autotune, ...
    cudnn_benchmark: bool = True  # let cuDNN pick the fastest kernels (on CUDA only)
    pad_channels_to: int = 0  # zero-pad the RGB layers' 3 channels to N on the fly (8: GPU tensor cores); same results

    def checks(self) -> Checks:
        return [
            (self.stage in STAGES, f"stage must be one of {STAGES}, got {self.stage!r}"),
            (self.mixed_precision in (None, "no", "fp16", "bf16"), "mixed_precision must be no, fp16 or bf16"),
            (self.report_to in ("wandb", "tensorboard", "none"), "report_to must be wandb, tensorboard or none"),
            (
                self.max_train_steps > 0 and self.train_batch_size > 0,
                "max_train_steps and train_batch_size must be > 0",
            ),
            (self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps must be >= 1"),
            (
                self.global_batch_size is None or self.global_batch_size > 0,
                f"global_batch_size must be > 0 (or unset), got {self.global_batch_size}",
            ),
            (self.max_bad_steps >= 0, "max_bad_steps must be >= 0"),
            (self.pad_channels_to >= 0, f"pad_channels_to must be >= 0 (0: off), got {self.pad_channels_to}"),
            (0 <= self.seed <= 2**32 - 1, f"seed must be in [0, 2**32 - 1] (numpy's range), got {self.seed}"),
            (
                self.compile_mode in COMPILE_MODES,
                f"compile_mode must be one of {COMPILE_MODES}, got {self.compile_mode!r}",
            ),
            (
                self.checkpointing_steps > 0 and self.logging_steps > 0 and self.validation_steps > 0,
                "checkpointing_steps, logging_steps and validation_steps must be > 0",
            ),
            (
                self.checkpoints_total_limit is None or self.checkpoints_total_limit >= 1,
                "checkpoints_total_limit must be >= 1",
            ),
        ]


@dataclass
class Config:
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    distortions: DistortionConfig = field(default_factory=DistortionConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.train.output_dir) / self.train.stage

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def numbers(self) -> list[tuple[str, float]]:
        """(key, value) of every float setting, a range's two ends included."""
        found = []
        for section in self.to_dict().values():
            for key, value in section.items():
                values = value if isinstance(value, tuple) else (value,)
                found += [(key, v) for v in values if isinstance(v, float)]
        return found

    def flat(self) -> dict[str, Any]:
        """One level of `section.key` names with scalar values, as trackers (TensorBoard hparams) want them."""
        scalar = (int, float, str, bool)
        return {
            f"{s}.{k}": v if isinstance(v, scalar) else str(v)
            for s, sect in self.to_dict().items()
            for k, v in sect.items()
        }

    def validate(self) -> Config:
        """Every section's own checks, then those that span sections; the first failure is raised."""
        non_finite = sorted(key for key, value in self.numbers() if not math.isfinite(value))
        if non_finite:
            raise ConfigError(f"{', '.join(non_finite)} must be finite (not nan or inf)")
        sections = (self.train, self.loss, self.optim, self.data, self.model)
        raise_first_failure([check for section in sections for check in section.checks()])
        raise_first_failure([*self.cross_section_checks(), *self.distortions.checks()])
        return self

    def cross_section_checks(self) -> Checks:
        t, d, crop = self.train, self.distortions, self.data.crop_size
        return [
            *[
                (
                    t.stage == "clear" or chance == 0 or span[1] <= crop,
                    f"{name} {span} reaches beyond the crop ({crop} pixels)",
                )
                for name, chance, span in (
                    ("blur_sigma", d.p_gaussian_blur, d.blur_sigma),
                    ("motion_length", d.p_motion_blur, d.motion_length),
                    ("crack_cell", d.p_cracks, d.crack_cell),
                )
            ],
            (
                self.data.synthetic_ratio == 0 or round(self.data.synthetic_ratio * t.train_batch_size) > 0,
                f"synthetic_ratio {self.data.synthetic_ratio} of a batch of {t.train_batch_size} rounds to no crop: "
                "raise it or the batch size",
            ),
        ]
