"""`evaluate`: restore every image at native resolution, score it, and write the reports.

Processes split the images; rows are gathered to every process and keyed by the image's index, so
the merged results do not depend on the number of processes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..models.io import read_metadata, resolve_weights, sha256_file
from .baselines import BASELINES, parse_baselines
from .pairs import EvalItem, find_items, load_pair
from .report import comparison_path, format_table, save_comparison, write_csv, write_summary
from .scoring import INPUT, RESTORED, gains, score, summarize

logger = logging.getLogger(__name__)

CSV_NAME, SUMMARY_NAME, COMPARISONS_DIR = "per_image.csv", "summary.json", "comparisons"
TRACKER_PROJECT = "vae-restore-eval"


@dataclass
class EvalOptions:
    checkpoint: str
    data: str
    distortion: str | None = None  # clear-only data: the named distortion that makes the inputs
    output: str | None = None  # default: RUN_DIR/evaluation/<data folder>-<distortion or "paired">
    num_images: int | None = None  # the first N images of the sorted folder
    baselines: list[str] = field(default_factory=list)
    report_to: str = "none"
    num_comparisons: int = 8
    seed: int = 0
    batch_size: int = 16  # tiles per forward pass


def output_dir(options: EvalOptions) -> Path:
    if options.output:
        return Path(options.output)
    checkpoint = Path(options.checkpoint)
    run_dir = checkpoint if checkpoint.is_dir() else checkpoint.parent
    return run_dir / "evaluation" / f"{Path(options.data).resolve().name}-{options.distortion or 'paired'}"


def score_item(model, device, item: EvalItem, options: EvalOptions, output: Path) -> dict:
    from .tiled import restore_image

    distorted, clear = load_pair(item, options.distortion, options.seed)
    outputs = {RESTORED: restore_image(model, distorted, device, options.batch_size), INPUT: distorted}
    for name in options.baselines:
        outputs[name] = BASELINES[name](distorted)
    if item.index < options.num_comparisons:
        save_comparison(
            comparison_path(output / COMPARISONS_DIR, item.index, item.name), distorted, outputs[RESTORED], clear
        )
    h, w = clear.shape[:2]
    return {"index": item.index, "image": item.name, "width": w, "height": h, **score(outputs, clear)}


def _score_share(accelerator, model, items: list[EvalItem], options: EvalOptions, output: Path):
    from tqdm.auto import tqdm

    rows, skipped = [], []
    for item in tqdm(items, desc="evaluate", disable=not accelerator.is_local_main_process, dynamic_ncols=True):
        try:
            rows.append(score_item(model, accelerator.device, item, options, output))
        except DataError as e:
            logger.warning("skipping %s", e)
            skipped.append(str(e))
    return rows, skipped


def evaluate(options: EvalOptions) -> dict:
    """Score `options.data` with the checkpoint; returns the summary (the same on every process)."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, gather_object

    from ..distortions.named import get_named
    from ..models import load_model
    from ..training.tracking import prepare_tracker_env
    from .tiled import tile_geometry
    from .tracking import log_evaluation

    weights = resolve_weights(options.checkpoint)
    options.baselines = parse_baselines(",".join(options.baselines))
    if options.distortion is not None:
        get_named(options.distortion)
    items = find_items(options.data, options.distortion, options.num_images)
    output = output_dir(options)
    prepare_tracker_env(options.report_to, output)
    accelerator = Accelerator(
        log_with=None if options.report_to == "none" else options.report_to,
        project_config=ProjectConfiguration(project_dir=str(output), logging_dir=str(output / "logs")),
    )
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.init_trackers(TRACKER_PROJECT, config={k: str(v) for k, v in vars(options).items()})
    model = load_model(weights, accelerator.device)

    start = time.perf_counter()
    with accelerator.split_between_processes(items) as mine:
        rows, skipped = _score_share(accelerator, model, mine, options, output)
    seconds = time.perf_counter() - start
    all_rows = {row["index"]: row for row in gather_object(rows)}
    rows = [all_rows[i] for i in sorted(all_rows)]
    if not rows:
        raise DataError(f"none of the images in {options.data} could be scored")
    methods = [RESTORED, INPUT, *options.baselines]
    metrics = summarize(rows, methods)
    meta = read_metadata(weights)
    tile, overlap = tile_geometry(model)
    summary = {
        "checkpoint": str(weights),
        "weights_sha256": sha256_file(weights),
        "preset": meta.get("preset"),
        "stage": meta.get("stage"),
        "global_step": meta.get("global_step"),
        "data": str(options.data),
        "distortion": options.distortion or "paired",
        "seed": options.seed,
        "num_images": len(rows),
        "skipped": gather_object(skipped),
        "num_processes": accelerator.num_processes,
        "images_per_process": gather_object([len(mine)]),
        "device": str(accelerator.device),
        "tile": tile,
        "overlap": overlap,
        "metrics": metrics,
        "gain_over_input": gains(metrics),
        "seconds": max(gather_object([seconds])),
    }
    accelerator.wait_for_everyone()  # every comparison PNG is written
    if accelerator.is_main_process:
        write_csv(rows, methods, output / CSV_NAME)
        write_summary(summary, output / SUMMARY_NAME)
        shown = [(r, comparison_path(output / COMPARISONS_DIR, r["index"], r["image"])) for r in rows]
        log_evaluation(accelerator, metrics, [(r, p) for r, p in shown if p.is_file()])
        print(format_table(metrics))
        print(
            f"{len(rows)} images ({summary['distortion']}) scored; per-image scores in {output / CSV_NAME}, "
            f"summary in {output / SUMMARY_NAME}, comparisons in {output / COMPARISONS_DIR}"
        )
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary
