"""Benchmarks reported in docs/BENCHMARKS.md. Examples (every flag's default is in its subcommand's --help):

python launch/benchmark.py throughput --data DIR --batch_sizes 1024,2048 --compile_batch_sizes 2048
    --compile_modes default,reduce-overhead --pad_channels_to 0,8          (writes throughput.json)
python launch/benchmark.py profile --data DIR --batch_size 2048 --compile_mode none
python launch/benchmark.py quality --budget_steps N --presets original,fullres --recipes default,charbonnier
    --schedules two_stage,distorted_only
    --runs PRESET/RECIPE[/SCHEDULE],...   (instead of presets x recipes x schedules; `none`: baselines only)
    --distorted_config configs/distorted_photo.yaml,art=configs/distorted_art.yaml   (a mixture per dataset)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from vae_restore.cli_common import count_or_zero, new_file, positive_int, positive_int_list, run_with_clear_errors

# benchmarks/ is not installed with vae_restore: it is read from this clone, beside launch/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def yaml_file(text: str) -> Path:
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return Path(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="benchmark", required=True)
    tp = sub.add_parser("throughput", help="images/s: original-style loop vs the trainer, same files, one run")
    tp.add_argument("--data", type=Path, required=True, help="folder of training images")
    tp.add_argument("--batch_sizes", type=positive_int_list, default=[64, 256], help="eager rows (default 64,256)")
    tp.add_argument("--compile_batch_sizes", type=positive_int_list, default=[], help="compiled rows (default none)")
    tp.add_argument(
        "--compile_modes",
        type=name_list,
        default=["default"],
        help="torch.compile modes for the compiled rows (default: default)",
    )
    tp.add_argument(
        "--pad_channels_to",
        type=channel_counts,
        default=[0],
        help="every trainer row again for each: the RGB layers' channels zero-padded to N on the fly (default 0: "
        "unpadded only)",
    )
    tp.add_argument(
        "--steps", type=positive_int, default=20, help="timed steps per row, after as many warm-up steps (default 20)"
    )
    tp.add_argument("--reference_steps", type=positive_int, default=20, help="timed reference batches (default 20)")
    tp.add_argument("--output", type=new_file, default=Path("throughput.json"), help="default throughput.json")
    tp.add_argument(
        "--mixture_config", type=yaml_file, help="also time the trainer with this YAML's distortion mixture"
    )
    tp.add_argument(
        "--mixed_precision",
        type=name_list,
        default=None,
        help="every trainer row again in each of these precisions, in this run: no (fp32), bf16, fp16; e.g. "
        "no,bf16 (default: bf16 on a GPU, no on the CPU). On the CPU bf16 is autocast as given, native or not",
    )
    pp = sub.add_parser("profile", help="one training step: ms per step, data path alone, kernels by time")
    pp.add_argument("--data", type=Path, required=True, help="folder of training images")
    pp.add_argument("--batch_size", type=positive_int, default=2048, help="default 2048")
    pp.add_argument(
        "--compile_mode", default="default", help="torch.compile mode, or none for eager (default: default)"
    )
    pp.add_argument("--mixture_config", type=yaml_file, help="this YAML's distortion mixture instead of Gaussian noise")
    pp.add_argument("--pad_channels_to", type=count_or_zero, default=0, help="the RGB layers' channels padded to N")
    pp.add_argument("--warmup_steps", type=positive_int, default=30, help="default 30")
    pp.add_argument("--timed_steps", type=positive_int, default=50, help="default 50")
    pp.add_argument("--profiled_steps", type=positive_int, default=10, help="steps in the kernel table (default 10)")
    add_quality_parser(sub)
    args = parser.parse_args(argv)
    if args.benchmark == "quality":
        return run_quality_benchmark(args)
    if args.benchmark == "profile":
        return run_profile(args)
    from benchmarks.throughput import failed_rows, run_throughput

    report = run_throughput(
        args.data,
        args.batch_sizes,
        args.steps,
        args.compile_batch_sizes,
        args.reference_steps,
        args.output,
        args.mixture_config,
        tuple(args.compile_modes),
        tuple(args.pad_channels_to),
        tuple(args.mixed_precision) if args.mixed_precision else None,
    )
    return 1 if failed_rows(report) else 0


def run_profile(args: argparse.Namespace) -> int:
    import tempfile

    from benchmarks.step_profile import profile_step

    with tempfile.TemporaryDirectory() as tmp:
        report = profile_step(
            args.data,
            args.batch_size,
            None if args.compile_mode == "none" else args.compile_mode,
            Path(tmp),
            args.mixture_config,
            args.warmup_steps,
            args.timed_steps,
            args.profiled_steps,
            pad_channels_to=args.pad_channels_to,
        )
    print(report)
    return 0


def channel_counts(text: str) -> list[int]:
    return [count_or_zero(v) for v in text.split(",")]


def name_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip() and v.strip() != "none"]


def add_quality_parser(sub) -> None:
    data = Path("..") / "shared" / "data"
    q = sub.add_parser("quality", help="restoration quality: presets x recipes vs classical denoisers, one table")
    budget = q.add_mutually_exclusive_group(required=True)
    budget.add_argument("--budget_steps", type=int, help="training steps per stage")
    budget.add_argument("--budget_minutes", type=float, help="training minutes per stage (calibrated into steps)")
    q.add_argument("--presets", type=name_list, default=["original"], help="default original")
    q.add_argument(
        "--recipes",
        type=name_list,
        default=["default"],
        help="see benchmarks/recipes.py (default: default)",
    )
    q.add_argument("--recipe_file", type=Path, help="YAML: name: {config_key: value, ...} (more recipes)")
    q.add_argument(
        "--schedules", type=name_list, default=["two_stage"], help="two_stage, distorted_only (default two_stage)"
    )
    q.add_argument(
        "--runs", type=name_list, help="PRESET/RECIPE[/SCHEDULE],... instead of presets x recipes x schedules"
    )
    q.add_argument("--columns", default=None, help="DATASET:DISTORTION,... (datasets: photos, art)")
    q.add_argument(
        "--baselines",
        type=name_list,
        default=["nlmeans", "tv", "cbm3d"],
        help="default nlmeans,tv,cbm3d; none: no baseline",
    )
    q.add_argument("--no_original_code", action="store_true", help="leave out the original code's recipe")
    q.add_argument(
        "--baseline_workers", type=int, default=min(8, os.cpu_count() or 1), help="processes for the baselines"
    )
    q.add_argument("--num_images", type=int, default=8, help="images per column (the first N, sorted; default 8)")
    q.add_argument("--train_batch_size", type=int, default=32, help="default 32")
    q.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default auto")
    q.add_argument("--seed", type=int, default=0, help="default 0")
    q.add_argument("--train_data", type=Path, default=data / "train_photos", help=f"default {data / 'train_photos'}")
    q.add_argument("--val_data", type=Path, default=data / "val_photos", help=f"default {data / 'val_photos'}")
    q.add_argument("--art", default=str(data / "art"), help=f"paintings folder, or none (default {data / 'art'})")
    q.add_argument("--art_scale", type=float, default=0.5, help="paintings are downscaled by this factor (default 0.5)")
    q.add_argument("--clear_config", type=Path, default=Path("configs/clear.yaml"), help="default configs/clear.yaml")
    q.add_argument(
        "--distorted_config",
        default="configs/distorted.yaml",
        help="stage distorted's config (its distortion mixture): PATH for every dataset, plus DATASET=PATH for "
        "a dataset's own fine-tune of the same clear weights, e.g. "
        "configs/distorted_photo.yaml,art=configs/distorted_art.yaml",
    )
    q.add_argument("--output", type=Path, default=Path("quality"), help="quality.md and quality.json")
    q.add_argument("--work", type=Path, help="runs, prepared images, baseline cache (default OUTPUT/work)")


def run_quality_benchmark(args: argparse.Namespace) -> int:
    from benchmarks.quality import DEFAULT_COLUMNS, QualityOptions, parse_mixtures, run_quality
    from benchmarks.quality_eval import parse_columns
    from benchmarks.quality_train import Budget

    distorted_config, distorted_configs = parse_mixtures(args.distorted_config)
    parsed = {
        "art": None if args.art == "none" else Path(args.art),
        "distorted_config": distorted_config,
        "distorted_configs": distorted_configs,
        "budget": Budget(args.budget_steps, args.budget_minutes),
        "columns": parse_columns(args.columns or DEFAULT_COLUMNS),
        "original_code": not args.no_original_code,
    }
    same = {name: value for name, value in vars(args).items() if name in QualityOptions.__dataclass_fields__}
    options = QualityOptions(**(same | parsed))
    run_quality(options)
    return 0


if __name__ == "__main__":
    sys.exit(run_with_clear_errors(main))
