"""Score a checkpoint on a folder: full-resolution tiled restoration vs the distorted input (and classical baselines).

Writes per_image.csv, summary.json and input | restored | clear PNGs, and prints a table. Run it under
`accelerate launch` to split the images over several processes.
"""

from __future__ import annotations

import argparse

from ..tiling import MAX_WHOLE_PIXELS

NAME = "evaluate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..cli_common import add_switch

    parser.add_argument("--checkpoint", required=True, help="a run folder or its model.safetensors")
    parser.add_argument("--data", required=True, help="paired folder (clear/ + distorted/) or a folder of clear images")
    parser.add_argument(
        "--distortion",
        help="clear-only data (refused with paired data): the named distortion that makes the inputs, one of "
        "aged, awgn15, awgn25, awgn50, blur, blur_noise, jpeg10, jpeg20",
    )
    parser.add_argument(
        "--output",
        help="report folder (default RUN_DIR/evaluation/<data>-<distortion>, or <data>-paired for paired data)",
    )
    parser.add_argument(
        "--num_images",
        type=int,
        help="score only the first N files (sorted by name; unreadable ones count) (default: all)",
    )
    add_switch(
        parser,
        "--allow_unpaired",
        "paired data: score the pairs that exist and warn about files without a partner (default false)",
    )
    parser.add_argument(
        "--baselines",
        default="",
        help="comma-separated classical baselines: nlmeans, tv, cbm3d (cbm3d needs the bench extra) (default: none)",
    )
    parser.add_argument(
        "--report_to",
        default="none",
        choices=("none", "wandb", "tensorboard"),
        help="also log the results there (default none)",
    )
    parser.add_argument(
        "--num_comparisons", type=int, default=8, help="comparison PNGs for the first N images (default 8)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic distortions (default 0)")
    parser.add_argument("--batch_size", type=int, default=16, help="tiles per forward pass (default 16)")
    parser.add_argument(
        "--max_whole_pixels",
        type=int,
        default=MAX_WHOLE_PIXELS,
        help="fully convolutional presets: restore images of up to N (padded) pixels in one pass, larger ones "
        f"in tiles; 0 always tiles (default {MAX_WHOLE_PIXELS})",
    )


def run(args: argparse.Namespace) -> int:
    from ..evaluation import EvalOptions, evaluate
    from ..evaluation.baselines import parse_baselines

    evaluate(
        EvalOptions(
            checkpoint=args.checkpoint,
            data=args.data,
            distortion=args.distortion,
            output=args.output,
            num_images=args.num_images,
            allow_unpaired=args.allow_unpaired,
            baselines=parse_baselines(args.baselines),
            report_to=args.report_to,
            num_comparisons=args.num_comparisons,
            seed=args.seed,
            batch_size=args.batch_size,
            max_whole_pixels=args.max_whole_pixels,
        )
    )
    return 0
