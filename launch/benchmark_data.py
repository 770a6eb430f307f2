"""Images/s of the data path alone (cache -> crops -> distortions): `python launch/benchmark_data.py --data DIR`.

Prints a Markdown table: random 128x128 crops only, each distortion alone (default ranges), and
the mixture of each `--config` YAML (its `distortions` section).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vae_restore.cli_common import positive_int, run_with_clear_errors

# benchmarks/ is not installed with vae_restore: it is read from this clone, beside launch/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def device(text: str):
    import torch

    try:
        chosen = torch.device(text)
    except RuntimeError as e:
        raise argparse.ArgumentTypeError(str(e).split("\n")[0]) from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError("CUDA is not available here")
    return chosen


def main(argv: list[str] | None = None) -> int:
    import torch

    from benchmarks.data_path import benchmark_data_path, markdown_table
    from vae_restore.config_io import build_config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder of images (paired data: its clear images)")
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    parser.add_argument("--batch_size", type=positive_int, default=256, help="crops per batch (default 256)")
    parser.add_argument("--steps", type=positive_int, default=10, help="timed batches per pipeline (default 10)")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--config", action="append", default=[], help="YAML whose mixture is also timed (repeatable)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    mixtures = {Path(p).stem: build_config(p).distortions for p in args.config}
    if len(mixtures) < len(args.config):
        parser.error("--config files need distinct names: their rows are named after them")
    info, rows = benchmark_data_path(args.data, args.device, args.batch_size, args.steps, mixtures=mixtures)
    print(
        f"{info['images']} images decoded in {info['decode_s']:.1f} s ({info['decode_images_per_s']:.0f} images/s), "
        f"cache {info['cache_mb']:.0f} MB; device {args.device}, batch {args.batch_size}, "
        f"{torch.get_num_threads()} CPU thread(s), torch {torch.__version__}"
    )
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(run_with_clear_errors(main))
