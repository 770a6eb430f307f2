"""How the bundled router (`pretrained:auto`) decides, image by image, without restoring.

    python launch/benchmark_routing.py --work W --seed 1

Counts the images its detector sends to each bundled model: every named distortion on the validation photos
and held-out paintings (drawn with --seed), the undamaged training photos and paintings as they are, and
the embedded samples, clear and with each named distortion.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the clone: `benchmarks` is not installed

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED, help="with train_photos/, val_photos/, art/")
    parser.add_argument("--work", type=Path, default=Path("scores/work"), help="prepared images (benchmark_model.py's)")
    parser.add_argument("--seed", type=int, default=1, help="the damage draw (the model cards use 0; default 1)")
    args = parser.parse_args(argv)

    from benchmarks.model_scores import ScoreOptions
    from benchmarks.routing_rates import markdown, routing_rows
    from vae_restore import pretrained

    data = args.data
    options = ScoreOptions(None, data / "train_photos", data / "val_photos", data / "art", args.work, seed=args.seed)
    rows = routing_rows(options, {"train_photos": data / "train_photos", "art": data / "art"})
    print(markdown(rows, pretrained.routing_rule().models()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
