"""Tiled restoration speed, onnxruntime vs PyTorch eager: `python launch/benchmark_inference.py [--device cuda]`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# benchmarks/ is not installed with vae_restore: it is read from this clone, beside launch/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    from vae_restore.cli_common import new_file, positive_int
    from vae_restore.tiling import OVERLAP, TILE, check_overlap

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="run folder or model.safetensors (default: random weights)")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="device for both engines (default cpu)"
    )
    parser.add_argument("--tile_batch", type=positive_int, default=16, help="tiles per forward call (default 16)")
    parser.add_argument("--threads", type=positive_int, help="CPU threads for both engines (default: all cores)")
    parser.add_argument(
        "--repeats", type=positive_int, default=3, help="timed restorations per image; the fastest is kept (default 3)"
    )
    parser.add_argument("--overlap", type=int, default=OVERLAP, help=f"tile overlap (default {OVERLAP})")
    parser.add_argument("--json", type=new_file, help="also write the results here")
    args = parser.parse_args(argv)
    try:
        check_overlap(TILE, args.overlap)
    except ValueError as e:
        parser.error(f"--overlap: {e}")

    import torch

    from benchmarks.inference import markdown_table, run_benchmark

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but CUDA is not available here")

    results = run_benchmark(args.checkpoint, args.device, args.tile_batch, args.threads, args.repeats, args.overlap)
    threads = args.threads or os.cpu_count()
    print(markdown_table(results, f"device {args.device}, tile batch {args.tile_batch}, {threads} threads"))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    from vae_restore.cli_common import run_with_clear_errors

    sys.exit(run_with_clear_errors(main))
