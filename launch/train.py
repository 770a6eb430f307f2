"""Train one stage: `accelerate launch launch/train.py --stage clear`, then `--stage distorted`.

Every config key is a flag (see --help); the YAML defaults are configs/<stage>.yaml.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vae_restore.cli_common import run_with_clear_errors

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def main(argv: list[str] | None = None) -> int:
    from vae_restore.config_cli import add_config_arguments, config_from_args, stage_yaml

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML config (default: configs/<stage>.yaml)")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    config = config_from_args(args, stage_yaml(CONFIGS, getattr(args, "stage", "clear")))
    from vae_restore.training import train  # torch and Accelerate: after --help and the config's checks

    train(config)
    return 0


if __name__ == "__main__":
    sys.exit(run_with_clear_errors(main))
