"""Export a trained model to ONNX, gate it against PyTorch, and write model.onnx + model.onnx.json.

    python -m export.onnx --checkpoint runs/distorted --output model.onnx [--opset N] [--fp16]
        [--check_batch_sizes 1,3,8] [--part {restore,decoder}] [--quantize int8 [--calibration_data DIR]
        [--gate_data DIR]]

The graph's input `image` is N×3×128×128 float32 in [0, 1] (N dynamic; for a fully convolutional preset
N×3×H×W, H and W dynamic multiples of the preset's multiple), its output `restored` the same;
`--part decoder` takes `z` (N×128) and the skips `s1` (N×32×64×64), `s2` (N×64×32×32), `s3` (N×128×16×16)
(shapes of preset `original`; `fullres` adds `s0` at full resolution, residual presets the input `image`).
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: its folder would shadow the real `onnx` package
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402

from vae_restore.cli_common import add_switch, run_with_clear_errors  # noqa: E402


def batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,3,8, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive, got {text!r}")
    return sizes


def opset(text: str) -> int:
    """An opset this onnx package knows, checked before any work."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    value = int(text)
    if not 1 <= value <= newest:
        raise argparse.ArgumentTypeError(f"must be an ONNX opset between 1 and {newest}, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from vae_restore.export.onnx_export import DEFAULT_OPSET, PARTS

    parser = argparse.ArgumentParser(
        prog="python -m export.onnx", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, type=Path, help="run folder or model.safetensors")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("model.onnx"),
        help="ONNX file to write (must end in .onnx; the manifest goes to OUTPUT.json) (default model.onnx)",
    )
    parser.add_argument("--opset", type=opset, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    add_switch(parser, "--fp16", "fp16 weights and compute, fp32 inputs/outputs (default false)")
    parser.add_argument(
        "--check_batch_sizes",
        type=batch_sizes,
        default=(1, 3, 8),
        help="batch sizes the parity gate runs through onnxruntime and PyTorch (default 1,3,8)",
    )
    parser.add_argument("--part", choices=PARTS, default="restore", help="restore (default) or decoder alone")
    parser.add_argument(
        "--quantize",
        choices=("int8",),
        help="int8: static int8 (QDQ) graph, published only if it restores within 40 dB of fp32 and scores "
        "awgn25 at most 0.15 dB lower (default: fp32)",
    )
    parser.add_argument(
        "--calibration_data", help="--quantize: training images to calibrate on (default: the run's train_data)"
    )
    parser.add_argument(
        "--gate_data",
        help="--quantize: clear images for the score gate, every named distortion (default: the embedded samples)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    def run() -> int:
        from vae_restore.export.pipeline import export_onnx

        args = parse_args(argv)  # its choices come from the export modules: a missing package is a clear error

        result = export_onnx(
            args.checkpoint,
            args.output,
            part=args.part,
            opset=args.opset,
            fp16=args.fp16,
            check_batch_sizes=args.check_batch_sizes,
            quantize=args.quantize,
            calibration_data=args.calibration_data,
            gate_data=args.gate_data,
        )
        for case in result.parity.cases:
            print(f"parity: {case.describe()}")
        print(f"parity gate passed (max |Δ| {result.parity.worst.max_abs_diff:.3g} <= {result.parity.tolerance:g})")
        if result.quantization is not None:
            print(f"int8 gate passed: {result.quantization.describe()}")
        print(f"wrote {result.model} and {result.manifest}")
        if args.part == "restore":  # a decoder graph is for other runtimes; the Restorer refuses it
            print(f"next: vae-restore restore IMAGE_OR_FOLDER --model {result.model} --output restored")
        return 0

    return run_with_clear_errors(run)


if __name__ == "__main__":
    sys.exit(main())
