"""Typed training configuration: dataclass defaults < YAML file < command-line flags.

Every leaf key is also a flag of the same name (`--learning_rate 3e-4`), so the names follow the
diffusers training scripts where the concept is the same.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import json
import math
import os
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .cli_common import true_or_false
from .data.files import DATA_LAYOUTS
from .errors import ConfigError

STAGES = ("clear", "distorted")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile
PIXEL_CACHES = ("auto", "memory", "disk")
RECONSTRUCTIONS = ("bce", "l1", "mse", "charbonnier")
LOSS_REDUCTIONS = ("sum", "mean")
OPTIMIZERS = ("adam", "adamw")
LR_SCHEDULERS = ("constant", "linear", "cosine")


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

    def checks(self) -> list[tuple[bool, str]]:
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


@dataclass
class LossConfig:
    reconstruction: str = "bce"  # bce (the original code), l1, mse, charbonnier
    kl_weight: float = 1.0  # β, the KL term's weight (the original code: 1)
    kl_warmup_steps: int = 0  # >0: the KL weight ramps linearly from kl_weight/N to kl_weight over N steps
    ssim_weight: float = 0.0  # >0: + ssim_weight·(1 - SSIM)·(values per image), on the scale of a per-pixel loss
    loss_reduction: str = "sum"  # sum (the original code): over an image's values / latent elements; mean: averaged


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


@dataclass
class TrainConfig:
    stage: str = "clear"  # clear, distorted
    output_dir: str = "runs"  # each stage's run folder is OUTPUT_DIR/<stage>
    overwrite_output_dir: bool = False  # a new run deletes an earlier one's weights, checkpoints, samples, logs
    init_from: str | None = None  # run folder, .safetensors or pretrained:NAME; None: OUTPUT_DIR/clear, clear: random
    seed: int = 0  # weights, crops, distortions and the validation split
    max_train_steps: int = 300  # optimizer steps
    train_batch_size: int = 32  # per process
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
        t, o, lo, d = self.train, self.optim, self.loss, self.distortions
        non_finite = sorted(key for key, value in self.numbers() if not math.isfinite(value))
        if non_finite:
            raise ConfigError(f"{', '.join(non_finite)} must be finite (not nan or inf)")
        checks = [
            (t.stage in STAGES, f"stage must be one of {STAGES}, got {t.stage!r}"),
            (t.mixed_precision in (None, "no", "fp16", "bf16"), "mixed_precision must be no, fp16 or bf16"),
            (t.report_to in ("wandb", "tensorboard", "none"), "report_to must be wandb, tensorboard or none"),
            (t.max_train_steps > 0 and t.train_batch_size > 0, "max_train_steps and train_batch_size must be > 0"),
            (t.gradient_accumulation_steps >= 1, "gradient_accumulation_steps must be >= 1"),
            (t.max_bad_steps >= 0, "max_bad_steps must be >= 0"),
            (t.pad_channels_to >= 0, f"pad_channels_to must be >= 0 (0: off), got {t.pad_channels_to}"),
            (0 <= t.seed <= 2**32 - 1, f"seed must be in [0, 2**32 - 1] (numpy's range), got {t.seed}"),
            (t.compile_mode in COMPILE_MODES, f"compile_mode must be one of {COMPILE_MODES}, got {t.compile_mode!r}"),
            (
                t.checkpointing_steps > 0 and t.logging_steps > 0 and t.validation_steps > 0,
                "checkpointing_steps, logging_steps and validation_steps must be > 0",
            ),
            (
                t.checkpoints_total_limit is None or t.checkpoints_total_limit >= 1,
                "checkpoints_total_limit must be >= 1",
            ),
            (
                lo.reconstruction in RECONSTRUCTIONS,
                f"unknown reconstruction loss {lo.reconstruction!r}; choose from {', '.join(RECONSTRUCTIONS)}",
            ),
            (
                lo.loss_reduction in LOSS_REDUCTIONS,
                f"loss_reduction must be one of {', '.join(LOSS_REDUCTIONS)}, got {lo.loss_reduction!r}",
            ),
            (lo.kl_weight >= 0, "kl_weight must be >= 0"),
            (lo.kl_warmup_steps >= 0 and lo.ssim_weight >= 0, "kl_warmup_steps and ssim_weight must be >= 0"),
            (0.0 <= o.ema_decay < 1.0, f"ema_decay must be in [0, 1) (0: no EMA), got {o.ema_decay}"),
            (o.optimizer in OPTIMIZERS, f"unknown optimizer {o.optimizer!r}; choose from {', '.join(OPTIMIZERS)}"),
            (
                math.isfinite(o.learning_rate) and o.learning_rate >= 0,  # 0 freezes the weights: a valid check
                f"learning_rate must be finite and >= 0, got {o.learning_rate}",
            ),
            (
                0.0 <= o.adam_beta1 < 1.0 and 0.0 <= o.adam_beta2 < 1.0,
                f"adam_beta1 and adam_beta2 must be in [0, 1), got {o.adam_beta1}, {o.adam_beta2}",
            ),
            (o.adam_epsilon > 0, f"adam_epsilon must be > 0, got {o.adam_epsilon}"),
            (
                math.isfinite(o.adam_weight_decay) and o.adam_weight_decay >= 0,
                f"adam_weight_decay must be finite and >= 0, got {o.adam_weight_decay}",
            ),
            (o.lr_warmup_steps >= 0, "lr_warmup_steps must be >= 0"),
            (o.max_grad_norm is None or o.max_grad_norm > 0, "max_grad_norm must be > 0 (none: no clipping)"),
            (
                o.lr_scheduler in LR_SCHEDULERS,
                f"unknown lr_scheduler {o.lr_scheduler!r}; choose from {', '.join(LR_SCHEDULERS)}",
            ),
            (0.0 <= self.data.val_fraction < 1.0, "val_fraction must be in [0, 1)"),
            (self.data.val_crops_per_image >= 1, "val_crops_per_image must be >= 1"),
            (
                0 <= self.data.noise_sigma[0] <= self.data.noise_sigma[1],
                "noise_sigma must be (low, high) with 0 <= low <= high",
            ),
            *[
                (
                    t.stage == "clear" or chance == 0 or span[1] <= self.data.crop_size,
                    f"{name} {span} reaches beyond the crop ({self.data.crop_size} pixels)",
                )
                for name, chance, span in (
                    ("blur_sigma", d.p_gaussian_blur, d.blur_sigma),
                    ("motion_length", d.p_motion_blur, d.motion_length),
                    ("crack_cell", d.p_cracks, d.crack_cell),
                )
            ],
            (0.0 <= self.data.synthetic_ratio <= 1.0, "synthetic_ratio must be in [0, 1]"),
            (
                self.data.synthetic_ratio == 0 or round(self.data.synthetic_ratio * t.train_batch_size) > 0,
                f"synthetic_ratio {self.data.synthetic_ratio} of a batch of {t.train_batch_size} rounds to no crop: "
                "raise it or the batch size",
            ),
            (self.data.data_layout in DATA_LAYOUTS, f"data_layout must be one of {DATA_LAYOUTS}"),
            (self.data.pixel_cache in PIXEL_CACHES, f"pixel_cache must be one of {PIXEL_CACHES}"),
            *self.distortions.checks(),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self


def _sections() -> dict[str, type]:
    return typing.get_type_hints(Config)


def _leaf_owner() -> dict[str, str]:
    """Map each leaf key to its section; leaf names are unique so each can be a flag."""
    owner: dict[str, str] = {}
    for section, cls in _sections().items():
        for f in dataclasses.fields(cls):
            assert f.name not in owner, f"config key {f.name!r} is defined twice"
            owner[f.name] = section
    return owner


def _hints(section: str) -> dict[str, Any]:
    return typing.get_type_hints(_sections()[section])


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Turn YAML or command-line values into the annotated type, with an error that names the key.

    Strings (the command line, quoted YAML) are parsed; other YAML types must already fit, so that a YAML
    boolean, null or list is not silently turned into "False", "None" or 1.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), key)
    try:
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            if len(items) != len(args):
                raise ValueError(f"expected {len(args)} values")
            return tuple(_coerce(v, a, key) for v, a in zip(items, args, strict=True))
        if hint is bool:
            if isinstance(value, str):
                return true_or_false(value)
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError("expected true or false")
        if isinstance(value, bool) and hint is str:
            raise ValueError("YAML reads no/yes/on/off as booleans; quote the value, e.g. mixed_precision: 'no'")
        if isinstance(value, bool):
            raise ValueError(f"expected {hint.__name__}, not a boolean")
        if hint is str and not isinstance(value, str | int | float | os.PathLike):
            raise ValueError("expected a string")
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise ValueError("expected an integer")
        return hint(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config key {key!r}: cannot read {value!r} ({e})") from None


def apply_overrides(config: Config, overrides: dict[str, Any]) -> Config:
    """Set leaf keys (`learning_rate`) or dotted ones (`optim.learning_rate`) on the config."""
    owner = _leaf_owner()
    for key, value in overrides.items():
        leaf = key.split(".")[-1]
        if leaf not in owner or ("." in key and key.split(".")[0] != owner[leaf]):
            raise ConfigError(f"unknown config key {key!r}")
        section = owner[leaf]
        setattr(getattr(config, section), leaf, _coerce(value, _hints(section)[leaf], key))
    return config


RUN_SUMMARY = "run"


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config: sections (`train:`, `optim:` ...) or flat leaf keys, both accepted; a run
    folder's config.json (JSON is YAML) is one too."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"config file {path} is not a file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file {path}{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key == RUN_SUMMARY and isinstance(value, dict):
            continue  # a run folder's config.json: what that run did, not settings
        if key in _sections():
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: section {key!r} must be a mapping")
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def build_config(yaml_path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    config = Config()
    if yaml_path is not None:
        apply_overrides(config, load_yaml(yaml_path))
    apply_overrides(config, overrides or {})
    return config.validate()


def field_comments(cls: type) -> dict[str, str]:
    """The comment beside each field of a dataclass: the one place a key is documented, shown by `--help`."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments = {
        tok.start[0]: tok.string.lstrip("# ")
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }
    body = ast.parse(source).body[0].body
    return {
        node.target.id: comments[node.lineno]
        for node in body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.lineno in comments
    }


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per leaf key; unset flags are absent from the namespace so they don't override YAML."""
    for section, cls in _sections().items():
        own_doc = cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}(")  # not dataclass's signature
        group = parser.add_argument_group(section, description=inspect.cleandoc(cls.__doc__) if own_doc else None)
        comments = field_comments(cls)
        for f in dataclasses.fields(cls):
            hint = _hints(section)[f.name]
            nargs = len(typing.get_args(hint)) if typing.get_origin(hint) is tuple else None
            flag = hint is bool  # `--compile` alone means true, as diffusers' store_true flags
            about = "; ".join(filter(None, [comments.get(f.name), "true or false (alone: true)" if flag else ""]))
            # configs/<stage>.yaml usually sets the key, so the dataclass default alone would mislead.
            default = "" if f.default is dataclasses.MISSING else f"; default: the YAML config's, else {f.default!r}"
            group.add_argument(
                f"--{f.name}",
                default=argparse.SUPPRESS,
                nargs="?" if flag else nargs,
                const="true" if flag else None,
                metavar="V" if nargs else f.name.upper(),
                help=f"{about} ({section}.{f.name}{default})".lstrip(),
            )


def stage_yaml(configs: str | Path, stage: str) -> Path:
    """The stage's default YAML; the stage is checked first so a typo lists the stages, not a missing file."""
    if stage not in STAGES:
        raise ConfigError(f"stage must be one of {STAGES}, got {stage!r}")
    return Path(configs) / f"{stage}.yaml"


def config_from_args(args: argparse.Namespace, default_yaml: str | Path | None) -> Config:
    """Build the config from `--config` (or the default YAML) and the flags that were given."""
    given = {k: v for k, v in vars(args).items() if k != "config"}
    return build_config(getattr(args, "config", None) or default_yaml, given)


def save_config(config: Config, path: str | Path, run: dict[str, Any] | None = None) -> None:
    """The resolved config by section, and what the run did under `run`: `--config` takes the file back."""
    data = config.to_dict() | ({RUN_SUMMARY: run} if run is not None else {})
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
