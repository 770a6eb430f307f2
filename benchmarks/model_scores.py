"""Score one exported model (onnxruntime, as users run it) against the input and the classical baselines.

The table of a model card: every named distortion on the validation photos and the held-out paintings,
the same seeded 8-bit inputs for every method, mean PSNR / SSIM per column. Baseline scores are cached per
column (keyed by the pixels, as in the quality benchmark), so they can be computed before the model exists
and are not recomputed for the next model. CBM3D (about 20 s per image on one core) runs on the columns
`cbm3d_columns` names; its other cells say "not run".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.quality_data import prepare_data
from benchmarks.quality_eval import TABLE_METRICS, Case, Column, cached_score, load_case
from vae_restore.checksums import sha256_file
from vae_restore.distortions.named import NAMED_DISTORTIONS
from vae_restore.evaluation.baselines import BASELINES, check_baselines

MODEL = "model"
INPUT = "input"
DEFAULT_CBM3D_COLUMNS = ("photos:awgn25", "photos:awgn50")


@dataclass
class ScoreOptions:
    model: Path | None  # None: baselines only (fills the cache)
    train_data: Path  # the paintings held out are those the quality benchmark holds out of this training set
    val_data: Path
    art: Path | None
    work: Path
    num_images: int | None = None
    baselines: list[str] = field(default_factory=lambda: ["nlmeans", "tv", "cbm3d"])
    cbm3d_columns: tuple[str, ...] = DEFAULT_CBM3D_COLUMNS
    distortions: tuple[str, ...] = tuple(NAMED_DISTORTIONS)
    workers: int = 1
    seed: int = 0


def columns(options: ScoreOptions, datasets: list[str]) -> list[Column]:
    return [Column(dataset, name) for dataset in datasets for name in options.distortions]


def model_restore(path: Path):
    """(restore function, what identifies the model): its graph's sha256; under pretrained:auto, the rule too."""
    from vae_restore.inference import Restorer

    restorer = Restorer(path, providers="cpu")
    identity = {"model_sha256": restorer.manifest.get("sha256")}
    if restorer.router:
        identity["routing"] = {
            **restorer.rule.to_dict(),
            "detector_sha256": sha256_file(restorer.rule.detector),
            "models_sha256": {name: r.manifest.get("sha256") for name, r in restorer.routed.items()},
        }
    return lambda image: restorer.restore(image.astype("float32")).astype("float64"), identity


def score_model(options: ScoreOptions) -> dict:
    """{"columns": {label: {method: {metric: mean}}}, "images": {dataset: count}, "model": manifest digest}."""
    check_baselines(options.baselines)
    data = prepare_data(options.work, options.train_data, options.val_data, options.art)
    cases: dict[str, Case] = {
        c.label: load_case(c, data.eval_sets[c.dataset], options.num_images, options.seed)
        for c in columns(options, list(data.eval_sets))
    }
    cache = options.work / "cache"
    restore, identity = model_restore(options.model) if options.model else (None, {"model_sha256": None})
    table: dict[str, dict[str, dict[str, float] | None]] = {}
    for label, case in cases.items():
        row: dict[str, dict[str, float] | None] = {INPUT: cached_score(lambda x: x, case, INPUT, cache)}
        for name in options.baselines:
            wanted = name != "cbm3d" or label in options.cbm3d_columns
            row[name] = cached_score(BASELINES[name], case, name, cache, options.workers) if wanted else None
        if restore is not None:
            row[MODEL] = cached_score(restore, case, MODEL, None)
        table[label] = row
        print(f"[scores] {label}: " + ", ".join(f"{m} {s['psnr']:.2f}" for m, s in row.items() if s), flush=True)
    images = {name: len(next(c for c in cases.values() if c.column.dataset == name).names) for name in data.eval_sets}
    return {"columns": table, "images": images, **identity, "seed": options.seed}


def markdown(result: dict) -> str:
    """Rows: columns; cells: PSNR / SSIM, the model's gain over the input in PSNR last."""
    methods = list(next(iter(result["columns"].values())))
    head = "| column | " + " | ".join(methods) + (" | model − input |" if MODEL in methods else " |")
    lines = [head, "|---" * (len(methods) + 1 + (MODEL in methods)) + "|"]
    for label, row in result["columns"].items():
        cells = [
            "not run"
            if row[m] is None
            else " / ".join(f"{row[m][k]:.{2 if k == 'psnr' else 3}f}" for k in TABLE_METRICS)
            for m in methods
        ]
        gain = [f"{row[MODEL]['psnr'] - row[INPUT]['psnr']:+.2f} dB"] if MODEL in row else []
        lines.append(f"| {label} | " + " | ".join(cells + gain) + " |")
    counts = ", ".join(f"{n} {name}" for name, n in result["images"].items())
    return (
        "\n".join(lines) + f"\n\nPSNR (dB) / SSIM, mean over the images ({counts}); inputs seeded ({result['seed']}).\n"
    )


def write(result: dict, output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "scores.json").write_text(json.dumps(result, indent=2) + "\n")
    (output / "scores.md").write_text(markdown(result))
