"""Convert the original code's pickled `vae_model.pth` into a run folder (model.safetensors + config.json).

The file is read with `torch.load(weights_only=True)`, which refuses pickles that would run code.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "import-original"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="the original code's vae_model.pth (a state dict)")
    parser.add_argument("output_dir", type=Path, help="run folder to create")
    # store_true, not add_switch: a switch taking an optional value would swallow the positional that follows it
    parser.add_argument("--overwrite", action="store_true", help="replace the weights and config.json already there")


def run(args: argparse.Namespace) -> int:
    from ..models.convert import import_original_checkpoint

    weights = import_original_checkpoint(args.checkpoint, args.output_dir, args.overwrite)
    print(f"wrote {weights}")
    return 0
