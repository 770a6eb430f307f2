"""Evaluate a checkpoint: `accelerate launch launch/evaluate.py --checkpoint RUN_DIR --data DIR [--distortion NAME]`.

The same command as `vae-restore evaluate` (see --help); several processes split the images.
"""

from __future__ import annotations

import argparse
import sys

from vae_restore.cli_common import run_with_clear_errors
from vae_restore.commands import evaluate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=evaluate.__doc__)
    evaluate.add_arguments(parser)
    return evaluate.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(run_with_clear_errors(main))
