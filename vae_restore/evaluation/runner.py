"""`evaluate`: restore every image at native resolution, score it, and write the reports.

Processes split the images; rows are gathered to every process and keyed by the image's index, so
the merged results do not depend on the number of processes.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DataError
from ..models.io import read_metadata, resolve_weights, sha256_file
from ..tiling import MAX_WHOLE_PIXELS
from ..tracking import log_evaluation, prepare_tracker_env
from .baselines import BASELINES, check_baselines
from .pairs import EvalItem, find_items, load_pair
from .report import comparison_path, format_gains, format_table, save_comparison, write_csv, write_summary
from .scoring import INPUT, RESTORED, gains, score, summarize

logger = logging.getLogger(__name__)

CSV_NAME, SUMMARY_NAME, COMPARISONS_DIR = "per_image.csv", "summary.json", "comparisons"
COMPARISON_NAME = re.compile(r"\d{4,}_.*\.png")  # report.comparison_path's names
TRACKER_PROJECT = "vae-restore"  # the training runs' project, so a model and its evaluations sit together


@dataclass
class EvalOptions:
    checkpoint: str
    data: str
    distortion: str | None = None  # clear-only data: the named distortion that makes the inputs
    output: str | None = None  # default: RUN_DIR/evaluation/<data folder>-<distortion or "paired">
    num_images: int | None = None  # the first N images of the sorted folder
    allow_unpaired: bool = False  # paired data: score the pairs that exist, warn about the rest
    baselines: list[str] = field(default_factory=list)
    report_to: str = "none"
    num_comparisons: int = 8
    seed: int = 0
    batch_size: int = 16  # tiles per forward pass
    max_whole_pixels: int = MAX_WHOLE_PIXELS  # fully convolutional presets: larger images are tiled

    def validate(self) -> EvalOptions:
        checks = [
            (self.num_images is None or self.num_images >= 1, "--num_images must be >= 1"),
            (self.num_comparisons >= 0, "--num_comparisons must be >= 0"),
            (self.batch_size >= 1, "--batch_size must be >= 1"),
            (self.max_whole_pixels >= 0, "--max_whole_pixels must be >= 0"),
            (self.report_to in ("none", "wandb", "tensorboard"), "--report_to must be none, wandb or tensorboard"),
            (not (self.output and Path(self.output).is_file()), f"--output {self.output} is a file, not a folder"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        check_baselines(self.baselines)
        if self.distortion is not None:
            from ..distortions.named import get_named

            get_named(self.distortion)
        return self

    @property
    def label(self) -> str:
        return f"{Path(self.data).resolve().name}-{self.distortion or 'paired'}"


def output_dir(options: EvalOptions) -> Path:
    if options.output:
        return Path(options.output)
    checkpoint = Path(options.checkpoint)
    run_dir = checkpoint if checkpoint.is_dir() else checkpoint.parent
    return run_dir / "evaluation" / options.label


def remove_earlier_comparisons(folder: Path) -> None:
    """No stale images from an earlier run; only files named as this command names them are removed."""
    for path in folder.glob("*.png"):
        if COMPARISON_NAME.fullmatch(path.name):
            path.unlink()


def score_item(model, device, item: EvalItem, options: EvalOptions, output: Path) -> dict:
    """Restore one image, run the baselines, write its comparison PNG if it is among the first N, score all."""
    from .tiled import restore_image

    distorted, clear = load_pair(item, options.distortion, options.seed)
    restored = restore_image(model, distorted, device, options.batch_size, options.max_whole_pixels)
    outputs = {RESTORED: restored, INPUT: distorted}
    for name in options.baselines:
        try:
            outputs[name] = BASELINES[name](distorted)
        except ValueError as e:  # e.g. CBM3D on an image smaller than its blocks: every method scores the same images
            raise DataError(f"{item.clear}: baseline {name} cannot restore it ({e})") from None
    if item.index < options.num_comparisons:
        path = comparison_path(output / COMPARISONS_DIR, item.index, item.name)
        save_comparison(path, distorted, outputs[RESTORED], clear)
    h, w = clear.shape[:2]
    return {"index": item.index, "image": item.name, "width": w, "height": h, **score(outputs, clear)}


def score_share(accelerator, model, items: list[EvalItem], options: EvalOptions, output: Path):
    """This process's rows; an unreadable or unscorable image is skipped and reported, not fatal to every process."""
    from tqdm.auto import tqdm

    rows, skipped = [], []
    for item in tqdm(items, desc="evaluate", disable=not accelerator.is_local_main_process, dynamic_ncols=True):
        try:
            rows.append(score_item(model, accelerator.device, item, options, output))
        except DataError as e:
            logger.warning("skipping %s", e)
            skipped.append(str(e))
    return rows, skipped


def build_summary(options: EvalOptions, weights: Path, rows: list[dict], methods: list[str], **facts) -> dict:
    meta = read_metadata(weights)
    metrics = summarize(rows, methods)
    return {
        "checkpoint": str(weights),
        "weights_sha256": sha256_file(weights),
        "preset": meta.get("preset"),
        "stage": meta.get("stage"),
        "global_step": int(step) if (step := meta.get("global_step", "")).isdigit() else None,
        "data": str(options.data),
        "distortion": options.distortion or "paired",
        "seed": options.seed,
        "num_images": len(rows),
        **facts,
        "metrics": metrics,
        "gain_over_input": gains(rows),
    }


def evaluate(options: EvalOptions) -> dict:
    """Score `options.data` with the checkpoint; returns the summary (the same on every process).

    Args:
        options: the checkpoint, the data and its distortion, the baselines, the output folder and the trackers.

    Returns:
        The summary written to the output folder: per method and metric, the mean and spread over the images.

    Raises:
        CheckpointError: the checkpoint cannot be loaded (see `load_model`).
        ConfigError: options that contradict each other (`EvalOptions.validate`).
        DataError: no images to score, or unpaired files that are not allowed.
    """
    from accelerate.utils import gather_object

    from ..models import load_model
    from .tiled import model_geometry

    weights = resolve_weights(options.checkpoint)
    options.validate()
    output = output_dir(options)
    items = find_items(
        options.data, options.distortion, options.num_images, options.allow_unpaired, output / COMPARISONS_DIR
    )
    accelerator = start_accelerator(options, output)
    model = load_model(weights, accelerator.device)

    start = time.perf_counter()
    with accelerator.split_between_processes(items) as mine:
        rows, skipped = score_share(accelerator, model, mine, options, output)
    seconds = time.perf_counter() - start
    by_index = {row["index"]: row for row in gather_object(rows)}
    rows = [by_index[i] for i in sorted(by_index)]
    if not rows:
        raise DataError(f"none of the images in {options.data} could be scored")
    methods = [RESTORED, INPUT, *options.baselines]
    geometry = model_geometry(model, options.max_whole_pixels)
    whole = {} if geometry.multiple is None else {"max_whole_pixels": geometry.max_whole_pixels}
    summary = build_summary(
        options,
        weights,
        rows,
        methods,
        skipped=gather_object(skipped),
        num_processes=accelerator.num_processes,
        images_per_process=gather_object([len(mine)]),
        device=str(accelerator.device),
        tile=geometry.tile,
        overlap=geometry.overlap,
        **whole,
        seconds=max(gather_object([seconds])),
    )
    accelerator.wait_for_everyone()  # every comparison PNG is written
    if accelerator.is_main_process:
        write_reports(accelerator, options, output, rows, methods, summary, seconds)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def start_accelerator(options: EvalOptions, output: Path):
    """The evaluation's Accelerator and trackers, the output folder cleared of an earlier run's comparisons."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    prepare_tracker_env(options.report_to, output)
    accelerator = Accelerator(
        log_with=None if options.report_to == "none" else options.report_to,
        project_config=ProjectConfiguration(project_dir=str(output), logging_dir=str(output / "logs")),
    )
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        remove_earlier_comparisons(output / COMPARISONS_DIR)
    accelerator.wait_for_everyone()
    accelerator.init_trackers(
        TRACKER_PROJECT,
        config={k: str(v) for k, v in vars(options).items()},
        init_kwargs={"wandb": {"job_type": "evaluation", "name": f"eval-{options.label}"}},
    )
    return accelerator


def write_reports(
    accelerator, options: EvalOptions, output: Path, rows: list[dict], methods: list[str], summary: dict, seconds: float
) -> None:
    """Main process only: the CSV, the summary, the trackers' table and the printed results."""
    write_csv(rows, methods, output / CSV_NAME)
    write_summary(summary, output / SUMMARY_NAME)
    shown = [(r, comparison_path(output / COMPARISONS_DIR, r["index"], r["image"])) for r in rows]
    shown = [(r, p) for r, p in shown if r["index"] < options.num_comparisons]
    log_evaluation(accelerator, summary["metrics"], shown, (INPUT, RESTORED))
    print(format_table(summary["metrics"]))
    print(format_gains(summary["gain_over_input"]))
    print(
        f"{len(rows)} images ({summary['distortion']}) scored in {seconds:.0f} s; per-image scores in "
        f"{output / CSV_NAME}, summary in {output / SUMMARY_NAME}, comparisons in {output / COMPARISONS_DIR}"
    )
