"""Benchmarks reported in docs/BENCHMARKS.md.

python launch/benchmark.py throughput --data DIR [--batch_sizes 256,1024,2048] [--compile_batch_sizes 2048]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vae_restore.cli_common import run_with_clear_errors


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="benchmark", required=True)
    tp = sub.add_parser("throughput", help="images/s: original-style loop vs the trainer, same files, one run")
    tp.add_argument("--data", type=Path, required=True)
    tp.add_argument("--batch_sizes", type=int_list, default=[64, 256])
    tp.add_argument("--compile_batch_sizes", type=int_list, default=[])
    tp.add_argument("--steps", type=int, default=20, help="timed steps per batch size (after as many warm-up steps)")
    tp.add_argument("--reference_steps", type=int, default=20)
    tp.add_argument("--output", type=Path, default=Path("throughput.json"))
    tp.add_argument("--mixture_config", type=Path, help="also time the trainer with this YAML's distortion mixture")
    args = parser.parse_args(argv)
    from vae_restore.benchmarks.throughput import run_throughput

    run_throughput(
        args.data,
        args.batch_sizes,
        args.steps,
        args.compile_batch_sizes,
        args.reference_steps,
        args.output,
        args.mixture_config,
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_with_clear_errors(main))
