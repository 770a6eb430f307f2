"""`launch/benchmark.py quality`: train presets × recipes for a budget, score them against the classical
denoisers and the original code's recipe on fixed seeded distortions, and write one table.

Rows: the distorted input, the classical baselines (scikit-image NL-means and TV, CBM3D when `bm3d` is
installed), the original code (resize to 128, BCE + KL, resize back), then every preset/recipe/schedule.
Columns: (dataset, distortion) × (PSNR, SSIM); a distortion that does not exist yet (e.g. `aged` before
the artwork distortions land) is listed as not measured. The table is rewritten after every row.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vae_restore.errors import ConfigError

from .quality_data import HOLDOUT_EVERY, prepare_data
from .quality_eval import Column, Restore, cached_score, load_case, unmeasurable
from .quality_report import markdown_table, write_report
from .quality_train import SCHEDULES, Budget, TrainSetup, train_toolkit
from .recipes import load_recipe_file, select_recipes

logger = logging.getLogger(__name__)

DEFAULT_COLUMNS = "photos:awgn25,photos:awgn50,photos:blur_noise,photos:jpeg20,art:aged"
DEFAULT_BASELINES = ("nlmeans", "tv", "cbm3d")
DATASETS = ("photos", "art")  # val_photos, and the held-out paintings


@dataclass
class QualityOptions:
    train_data: Path
    val_data: Path
    art: Path | None
    output: Path
    budget: Budget
    presets: list[str] = field(default_factory=lambda: ["original"])
    recipes: list[str] = field(default_factory=lambda: ["default"])
    recipe_file: Path | None = None
    schedules: list[str] = field(default_factory=lambda: ["two_stage"])
    runs: list[str] | None = None  # PRESET/RECIPE[/SCHEDULE] each; replaces presets × recipes × schedules
    work: Path | None = None  # links, downscaled paintings, runs, baseline cache; default OUTPUT/work
    columns: list[Column] = field(default_factory=list)
    baselines: list[str] = field(default_factory=lambda: list(DEFAULT_BASELINES))
    original_code: bool = True
    baseline_workers: int = 1  # processes for the classical baselines (CBM3D takes ~20 s per photo per core)
    num_images: int | None = 8
    train_batch_size: int = 32
    device: str = "auto"
    seed: int = 0
    clear_config: Path = Path("configs/clear.yaml")
    distorted_config: Path = Path("configs/distorted.yaml")  # stage distorted's mixture, for every dataset...
    distorted_configs: dict[str, Path] = field(default_factory=dict)  # ...but these (dataset -> config)
    art_scale: float = 0.5

    def plan(self) -> list[tuple[str, str, str]]:
        """(preset, recipe, schedule) of every toolkit row, in order."""
        if self.runs is None:
            return [(p, r, s) for p in self.presets for r in self.recipes for s in self.schedules]
        plan = []
        for run in self.runs:
            parts = run.split("/")
            if len(parts) not in (2, 3) or not all(parts):
                raise ConfigError(f"--runs entry {run!r} must be PRESET/RECIPE or PRESET/RECIPE/SCHEDULE")
            plan.append((parts[0], parts[1], parts[2] if len(parts) == 3 else "two_stage"))
        return list(dict.fromkeys(plan))

    @property
    def work_dir(self) -> Path:
        return self.work or self.output / "work"

    def mixture_for(self, dataset: str) -> Path:
        """The stage distorted config whose fine-tune restores `dataset`'s columns."""
        return self.distorted_configs.get(dataset, self.distorted_config)

    def check_mixtures(self) -> None:
        datasets = {c.dataset for c in self.columns}
        unknown = sorted(set(self.distorted_configs) - datasets)
        if unknown:
            raise ConfigError(
                f"--distorted_config names dataset {unknown[0]!r}, which no column uses "
                f"(columns' datasets: {', '.join(sorted(datasets)) or 'none'})"
            )
        mixtures = {self.mixture_for(d) for d in datasets} | {self.distorted_config}
        stems = [m.stem for m in mixtures]
        if len(set(stems)) != len(stems):
            raise ConfigError(f"distortion configs need distinct file names (runs are named after them): {stems}")
        for path in (self.clear_config, *mixtures):
            if not path.is_file():
                raise ConfigError(f"config {path} does not exist (run from the repository root or pass its path)")

    def validate(self) -> QualityOptions:
        from vae_restore.evaluation.baselines import check_baselines
        from vae_restore.models import PRESETS

        plan = self.plan()
        unknown = [p for p, _, _ in plan if p not in PRESETS]
        if unknown:
            raise ConfigError(f"unknown preset {unknown[0]!r}; known: {', '.join(PRESETS)}")
        bad = [s for _, _, s in plan if s not in SCHEDULES]
        if bad:
            raise ConfigError(f"unknown schedule {bad[0]!r}; known: {', '.join(SCHEDULES)}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        if self.num_images is not None and self.num_images < 1:
            raise ConfigError("--num_images must be >= 1")
        if self.train_batch_size < 1 or self.baseline_workers < 1:
            raise ConfigError("--train_batch_size and --baseline_workers must be >= 1")
        if not 0 < self.art_scale <= 1:
            raise ConfigError(f"--art_scale must be in (0, 1], got {self.art_scale}")
        check_baselines(self.baselines, missing_ok=True)  # a missing package only leaves its row out
        self.check_columns()
        self.check_mixtures()
        return self

    def check_columns(self) -> None:
        """Misspelled columns are refused here, before any training, not reported as unmeasured after it."""
        from vae_restore.distortions.named import NAMED_DISTORTIONS

        for column in self.columns:
            if column.dataset not in DATASETS:
                raise ConfigError(f"--columns {column.label}: unknown dataset {column.dataset!r}; known: {DATASETS}")
            if column.distortion not in NAMED_DISTORTIONS:
                known = ", ".join(NAMED_DISTORTIONS)
                raise ConfigError(f"--columns {column.label}: unknown distortion {column.distortion!r}; known: {known}")


def parse_mixtures(text: str) -> tuple[Path, dict[str, Path]]:
    """`--distorted_config`: `PATH` for every dataset, then `DATASET=PATH` entries for their own, comma-separated.

    `configs/distorted_photo.yaml,art=configs/distorted_art.yaml` -> (photo config, {"art": art config}).
    """
    default, per_dataset = Path("configs/distorted.yaml"), {}
    for entry in (e.strip() for e in text.split(",") if e.strip()):
        dataset, sep, path = entry.rpartition("=")
        if sep and not (dataset and path):
            raise ConfigError(f"--distorted_config entry {entry!r} must be PATH or DATASET=PATH")
        if sep:
            per_dataset[dataset] = Path(path)
        else:
            default = Path(path)
    return default, per_dataset


def resolve_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda, but CUDA is not available here")
    device = "cuda" if requested == "auto" and torch.cuda.is_available() else requested.replace("auto", "cpu")
    if device == "cpu":
        os.environ["ACCELERATE_USE_CPU"] = "true"  # the trainer's Accelerator must not pick a GPU
    return device


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


class Benchmark:
    """Holds the evaluation cases and the report, and adds one scored row at a time."""

    def __init__(self, options: QualityOptions):
        self.options = options.validate()
        self.device = resolve_device(options.device)
        extra = load_recipe_file(options.recipe_file) if options.recipe_file else None
        self.plan = options.plan()
        self.recipes = {r.name: r for r in select_recipes([r for _, r, _ in self.plan], extra)}
        self.data = prepare_data(options.work_dir, options.train_data, options.val_data, options.art, options.art_scale)
        self.cases = {}
        columns = []
        for column in options.columns:
            reason = unmeasurable(column, self.data.eval_sets)
            if reason is None:
                folder = self.data.eval_sets[column.dataset]
                self.cases[column.label] = load_case(column, folder, options.num_images, options.seed)
            columns.append({"label": column.label, **vars(column), "not_measured": reason})
        if not self.cases:
            raise ConfigError(f"none of the --columns can be measured here: {columns[0]['not_measured']}")
        self.report = {
            "device": device_name(self.device),
            "settings": self.settings(),
            "columns": columns,
            "rows": [],
            "skipped_methods": {},
        }

    def settings(self) -> dict:
        """Everything needed to rerun this table, down to the package versions."""
        from vae_restore.export.manifest import package_versions

        o = self.options
        return {
            "budget": o.budget.describe(),
            "budget_steps": o.budget.steps,
            "budget_minutes": o.budget.minutes,
            "train_batch_size": o.train_batch_size,
            "num_images": o.num_images,
            "seed": o.seed,
            "train_data": str(o.train_data),
            "art": None if o.art is None else str(o.art),
            "art_scale": o.art_scale,
            "art_holdout_every": HOLDOUT_EVERY,
            "eval_sets": {name: str(folder) for name, folder in self.data.eval_sets.items()},
            "num_train_images": self.data.num_train_images,
            "val_data": str(o.val_data),
            "clear_config": str(o.clear_config),
            "distorted_config": {c.dataset: str(o.mixture_for(c.dataset)) for c in o.columns},
            "runs": ["/".join(run) for run in self.plan],
            "recipes": {r.name: r.overrides for r in self.recipes.values()},
            "baselines": list(o.baselines),
            "original_code": o.original_code,
            "versions": package_versions(("vae-restore", "torch", "numpy", "scikit-image", "bm3d")),
        }

    def add_row(self, method: str, restore: Restore | dict[str, Restore], cache: bool = False, **info) -> None:
        """Score `restore` (or, per dataset, `restore[dataset]`) on every column; classical methods (`cache`)
        are cached and may use worker processes."""
        scores = {}
        cache_dir = self.options.work_dir / "cache" if cache else None
        workers = self.options.baseline_workers if cache else 1
        for label, case in self.cases.items():
            fn = restore[case.column.dataset] if isinstance(restore, dict) else restore
            scores[label] = cached_score(fn, case, method, cache_dir, workers)
        self.report["rows"].append({"method": method, "scores": scores, **info})
        md, _ = write_report(self.report, self.options.output)
        print(f"[quality] scored {method}; table in {md}", flush=True)

    def run_classical(self) -> None:
        from vae_restore.evaluation.baselines import BASELINES, missing_baseline

        self.add_row("distorted input", lambda image: image)
        for name in self.options.baselines:
            if reason := missing_baseline(name):
                print(f"[quality] skipping the {name} row: {reason}", flush=True)
                self.report["skipped_methods"][name] = reason
                continue
            print(f"[quality] scoring {name} (cached per column after the first run)", flush=True)
            self.add_row(name, BASELINES[name], cache=True)

    def mixtures(self) -> tuple[dict[str, Path], list[Path]]:
        """(dataset -> the stage-distorted config whose fine-tune restores it, the distinct configs to train)."""
        datasets = dict.fromkeys(case.column.dataset for case in self.cases.values())
        mixtures = {dataset: self.options.mixture_for(dataset) for dataset in datasets}
        return mixtures, list(dict.fromkeys(mixtures.values())) or [self.options.distorted_config]

    def run_original_code(self) -> None:
        import torch

        from vae_restore.models.presets import COSTS

        from .original_code import resize_restorer, train_original_code

        o = self.options
        mixtures, trained = self.mixtures()
        device = torch.device(self.device)
        models, stages = train_original_code(
            self.data.train, o.budget.steps, o.budget.minutes, o.train_batch_size, trained, device, o.seed
        )
        cost = COSTS["original"]
        self.add_row(
            "original code (resize to 128, BCE+KL)",
            {dataset: resize_restorer(models[mixture], device) for dataset, mixture in mixtures.items()},
            training=stages,
            parameters=cost.parameters,
            gflops=cost.gflops,
        )

    def run_toolkit(self, preset: str, recipe, schedule: str) -> None:
        from vae_restore.evaluation.tiled import restore_image
        from vae_restore.models import get_preset, load_model
        from vae_restore.models.cost import measure_cost

        o = self.options
        setup = TrainSetup(
            self.data.train, o.val_data, o.work_dir, o.clear_config, o.train_batch_size, self.device, o.seed
        )
        mixtures, trained = self.mixtures()
        stages = train_toolkit(setup, preset, recipe, schedule, o.budget, trained)
        weights = {Path(s["config"]): s["weights"] for s in stages if s["stage"] == "distorted"}
        batch = 64 if self.device == "cuda" else 16

        def restorer(path: str) -> Restore:
            model = load_model(path, self.device)
            return lambda image: restore_image(model, image, self.device, batch).astype(np.float64)

        cost = measure_cost(get_preset(preset))
        name = f"{preset} / {recipe.name}" + ("" if schedule == "two_stage" else f" / {schedule.replace('_', ' ')}")
        by_mixture = {mixture: restorer(weights[mixture]) for mixture in trained}
        self.add_row(
            name,
            {dataset: by_mixture[mixture] for dataset, mixture in mixtures.items()},
            training=stages,
            parameters=cost.parameters,
            gflops=cost.gflops,
            preset=preset,
            recipe=recipe.name,
            schedule=schedule,
        )

    def run(self) -> dict:
        self.run_classical()
        if self.options.original_code:
            self.run_original_code()
        for preset, recipe, schedule in self.plan:
            self.run_toolkit(preset, self.recipes[recipe], schedule)
        print(markdown_table(self.report), flush=True)
        return self.report


def run_quality(options: QualityOptions) -> dict:
    return Benchmark(options).run()


__all__ = ["DEFAULT_COLUMNS", "QualityOptions", "parse_mixtures", "run_quality"]
