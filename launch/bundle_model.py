"""Put a trained run into the package as a bundled model: weights, ONNX graph (+ manifest), scores and card.

    python launch/bundle_model.py --run runs/distorted --name general [--quantize int8 ...] [--weights_dtype float16]
    python launch/benchmark_model.py --model vae_restore/pretrained/general/model.onnx --output scores
    python launch/bundle_model.py --run runs/distorted --name general --scores scores/scores.json \
        --card_text configs/cards/general.json

The first call copies the weights (with --weights_dtype float16, rounded to half their size) and exports the
graph from the copy (with --quantize, quantised and gated) by the same code as `python -m export.onnx`.
With --scores it writes the card instead: the run's card template filled with --card_text (title, summary,
datasets, commands, limitations, data terms) and the table rendered from the scores file, which is bundled
beside it, so the card's figures are the scores file's. The card names the bundled weights' sha256 too
when they are not the run's file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the clone: `benchmarks` is not installed

SCORES_FILE = "scores.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--run", type=Path, required=True, help="a finished run folder (model.safetensors, config.json)"
    )
    parser.add_argument("--name", required=True, help="the bundled model's name (vae_restore/pretrained/NAME)")
    parser.add_argument("--scores", type=Path, help="scores.json from launch/benchmark_model.py (the card's table)")
    parser.add_argument("--card_text", type=Path, help="with --scores: JSON of the card's words (see CardContent)")
    parser.add_argument("--quantize", choices=("int8",), help="bundle the int8 graph (it must pass its gates)")
    parser.add_argument("--calibration_data", help="--quantize: training images to calibrate on")
    parser.add_argument("--gate_data", help="--quantize: clear images for the score gate")
    parser.add_argument(
        "--weights_dtype",
        choices=("float32", "float16"),
        default="float32",
        help="the bundled weights' type; float16 halves them (the graph stays fp32, exported from the rounded weights)",
    )
    args = parser.parse_args(argv)

    from benchmarks.model_scores import markdown
    from vae_restore import pretrained
    from vae_restore.export.pipeline import export_onnx
    from vae_restore.model_card import CardContent, render_card

    folder = pretrained.PRETRAINED_DIR / args.name
    folder.mkdir(parents=True, exist_ok=True)
    if args.scores:
        if args.card_text is None:
            parser.error("--scores writes the card: pass --card_text too")
        content = CardContent(**json.loads(args.card_text.read_text()))
        content.evaluation = markdown(json.loads(args.scores.read_text()))
        shutil.copyfile(args.scores, folder / SCORES_FILE)
        config = json.loads((args.run / "config.json").read_text())
        card = render_card(content, config, bundled_weights=bundled_weights(folder / pretrained.WEIGHTS_FILE))
        (folder / pretrained.CARD_FILE).write_text(card, encoding="utf-8")
        print(f"wrote {folder / pretrained.CARD_FILE}")
        return 0
    copy_weights(args.run / pretrained.WEIGHTS_FILE, folder / pretrained.WEIGHTS_FILE, args.weights_dtype)
    result = export_onnx(
        folder / pretrained.WEIGHTS_FILE,
        folder / pretrained.ONNX_FILE,
        quantize=args.quantize,
        calibration_data=args.calibration_data,
        gate_data=args.gate_data,
    )
    quantized = f"; int8 gate: {result.quantization.describe()}" if result.quantization else ""
    print(f"bundled {args.name} in {folder}{quantized}")
    return 0


def copy_weights(source: Path, target: Path, dtype: str) -> None:
    """The run's weights as they are (float32), or rounded to float16 with the same metadata."""
    if dtype == "float32":
        shutil.copyfile(source, target)
        return
    import torch

    from vae_restore.models import load_model, read_metadata, save_model

    save_model(load_model(source), target, metadata=read_metadata(source), dtype=getattr(torch, dtype))


def bundled_weights(path: Path) -> tuple[str, str]:
    """(sha256, dtype) of bundled weights: the card names them when they are not the run's file."""
    from safetensors.torch import load_file

    from vae_restore.checksums import sha256_file

    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in load_file(str(path)).values()})
    return sha256_file(path), "/".join(dtypes)


if __name__ == "__main__":
    from vae_restore.cli_common import run_with_clear_errors

    sys.exit(run_with_clear_errors(main))
