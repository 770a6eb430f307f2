"""Write a grid of every distortion applied to real images: `python launch/preview_distortions.py [--data DIR]`.

Rows are random crops at the training crop size; columns are each distortion alone (parameter
ranges from the config), the configured mixture, and the fixed `aged` recipe.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vae_restore.cli_common import image_file, new_file, positive_int, run_with_clear_errors


def grid_file(text: str) -> Path:
    """An image name in a folder that exists (saving the grid makes none), checked before it is drawn."""
    return new_file(str(image_file(text)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", help="folder of images (paired data: its clear images); default: the embedded sample images"
    )
    parser.add_argument(
        "--output",
        type=grid_file,
        default=Path("distortions.png"),
        help="image to write; the format comes from its suffix (default distortions.png)",
    )
    parser.add_argument(
        "--config",
        help="YAML whose distortions section sets the ranges and the mixture "
        "(default: the built-in distortion settings)",
    )
    parser.add_argument("--rows", type=positive_int, default=6, help="random crops, one per row (default 6)")
    parser.add_argument(
        "--zoom", type=positive_int, default=2, help="enlargement of each crop (nearest neighbour) (default 2)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the crops and distortions (default 0)")
    args = parser.parse_args(argv)
    from vae_restore.config_io import build_config
    from vae_restore.distortions.preview import preview_grid

    config = build_config(args.config)
    grid = preview_grid(
        args.data, config.distortions, config.data.noise_sigma, args.rows, config.data.crop_size, args.zoom, args.seed
    )
    grid.save(args.output)
    print(f"wrote {args.output} ({grid.width}x{grid.height})")
    return 0


if __name__ == "__main__":
    sys.exit(run_with_clear_errors(main))
