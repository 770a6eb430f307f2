"""The `vae-restore` console script: one sub-command per module in `vae_restore.commands`.

Command modules import their heavy dependencies inside `run`, so `vae-restore restore` never
imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .cli_common import run_with_clear_errors

COMMAND_MODULES = ("evaluate", "import_original", "models", "presets", "restore", "sample_image", "serve")
DESCRIPTION = (
    "Restore, evaluate, convert and inspect models. Training and export are not sub-commands: from a clone "
    "of the repository, train with `accelerate launch launch/train.py` and export with `python -m export.onnx`."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vae-restore", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"vae_restore.commands.{name}")
        command = sub.add_parser(module.NAME, help=module.__doc__.splitlines()[0], description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_with_clear_errors(lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())
