"""Score an exported model against the input, non-local means, TV and CBM3D on every named distortion.

    python launch/benchmark_model.py --model vae_restore/pretrained/general/model.onnx --output scores/

Without --model only the baselines are scored (and cached under --work, for the next model).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the clone: `benchmarks` is not installed

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    from vae_restore.cli_common import positive_int
    from vae_restore.evaluation.baselines import parse_baselines

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", type=Path, help="an exported .onnx, or pretrained:NAME such as pretrained:auto (default: baselines)"
    )
    parser.add_argument(
        "--train_data", type=Path, default=SHARED / "train_photos", help="default ../shared/data/train_photos"
    )
    parser.add_argument(
        "--val_data", type=Path, default=SHARED / "val_photos", help="default ../shared/data/val_photos"
    )
    parser.add_argument(
        "--art", default=str(SHARED / "art"), help="paintings folder, or none (default ../shared/data/art)"
    )
    parser.add_argument("--num_images", type=positive_int, help="the first N images per dataset (default all)")
    parser.add_argument("--baselines", default="nlmeans,tv,cbm3d", help="default nlmeans,tv,cbm3d; none: none")
    parser.add_argument("--cbm3d_columns", default="photos:awgn25,photos:awgn50", help="columns CBM3D runs on")
    parser.add_argument("--workers", type=positive_int, default=1, help="processes for the baselines (default 1)")
    parser.add_argument("--work", type=Path, default=Path("scores/work"), help="prepared images, baseline cache")
    parser.add_argument("--output", type=Path, default=Path("scores"), help="scores.md and scores.json")
    args = parser.parse_args(argv)

    from benchmarks.model_scores import ScoreOptions, markdown, score_model, write

    options = ScoreOptions(
        model=args.model,
        train_data=args.train_data,
        val_data=args.val_data,
        art=None if args.art == "none" else Path(args.art),
        work=args.work,
        num_images=args.num_images,
        baselines=parse_baselines(args.baselines),
        cbm3d_columns=tuple(c.strip() for c in args.cbm3d_columns.split(",") if c.strip()),
        workers=args.workers,
    )
    result = score_model(options)
    write(result, args.output)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    from vae_restore.cli_common import run_with_clear_errors

    sys.exit(run_with_clear_errors(main))
