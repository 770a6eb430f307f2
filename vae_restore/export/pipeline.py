"""Export one checkpoint: build the graph, gate it against PyTorch, write the manifest, then publish.

Nothing appears under the output name until the gate has passed: the model and its manifest are
written under temporary names and renamed at the end; on any failure the temporary files are removed.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
from torch import nn

from ..checksums import sha256_file
from ..errors import ExportError
from ..models import VAE, load_model, read_metadata
from ..models.io import resolve_weights
from .half_storage import store_exact_float16
from .manifest import FORMAT_VERSION, manifest_path, package_versions, publish
from .onnx_export import DEFAULT_OPSET, PARTS, build_module, check_part, export_graph, io_specs
from .quantize import QuantizationReport, quantize_in_place
from .validate import FP16_TOLERANCE, FP32_TOLERANCE, ParityReport, check_parity

DEFAULT_BATCH_SIZES = (1, 3, 8)


QUANTIZATIONS = ("int8",)


@dataclass(frozen=True)
class ExportResult:
    model: Path
    manifest: Path
    parity: ParityReport
    quantization: QuantizationReport | None = None


def reference_module(model: VAE, part: str) -> nn.Module:
    """The fp32 PyTorch module the gate compares the ONNX graph against (also for `--fp16`)."""
    return build_module(model, part)


def spatial_fields(model: VAE) -> dict:
    """A fully convolutional graph takes any H×W that are multiples of `multiple`; fixed-tile manifests say
    nothing (format 1 had no such field, so an absent one means fixed tiles)."""
    if not model.preset.fully_convolutional:
        return {}
    return {"spatial": "dynamic", "multiple": model.preset.multiple}


def run_config(weights: Path) -> dict | None:
    """The run's resolved config.json beside the weights, if there is one."""
    path = weights.parent / "config.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return None


def check_output(output: str | os.PathLike) -> Path:
    """Refuse, before any work, an output that is a folder, sits under a file, or is not a `.onnx` name
    (which also keeps the export from replacing the weights it reads)."""
    path = Path(output)
    if path.is_dir() or str(output).endswith(("/", os.sep)):
        raise ExportError(f"--output {output} is a folder; name the file, e.g. {path / 'model.onnx'}")
    if path.suffix != ".onnx":
        raise ExportError(f"--output {output} must end in .onnx (its manifest goes beside it as {path.name}.onnx.json)")
    parent = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ExportError(f"--output {output}: {parent} is a file, not a folder")
    return path


def check_arguments(part: str, fp16: bool, check_batch_sizes: Sequence[int], quantize: str | None) -> None:
    """Refuse, before any work, arguments the export cannot honour, and a missing onnxruntime (the gate's)."""
    if part not in PARTS:
        raise ExportError(f"unknown part {part!r}; choose one of {', '.join(PARTS)}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ExportError(f"unknown quantization {quantize!r}; choose one of {', '.join(QUANTIZATIONS)}")
    if quantize and (fp16 or part != "restore"):
        raise ExportError("--quantize int8 quantises the fp32 restoration graph: drop --fp16 and --part")
    if not check_batch_sizes or min(check_batch_sizes) < 1:
        raise ExportError(f"check batch sizes must be positive integers, got {list(check_batch_sizes)}")
    if importlib.util.find_spec("onnxruntime") is None:
        raise ExportError(
            "the parity gate runs the graph on onnxruntime, which is not installed: pip install -e '.[infer]'"
        )


def gated(
    graph: Path, model: VAE, part: str, inputs, check_batch_sizes: Sequence[int], fp16: bool, output: Path
) -> ParityReport:
    """The graph checked as ONNX, then against PyTorch; raises ExportError (naming `output`) if either fails."""
    try:
        onnx.checker.check_model(str(graph), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"the exported graph is not valid ONNX: {e}") from None
    tolerance = FP16_TOLERANCE if fp16 else FP32_TOLERANCE
    report = check_parity(graph, model, reference_module(model, part), part, inputs, check_batch_sizes, tolerance)
    if not report.passed:
        raise ExportError(
            f"parity gate failed (tolerance {tolerance:g}); worst: {report.worst.describe()}; {output} was not written"
        )
    return report


def build_manifest(
    facts: dict, opset: int, model: VAE, weights: Path, specs: tuple, report: ParityReport, quantization
) -> dict:
    """What the manifest says of a published graph: `facts` (file, sha256, part, precision) and the rest."""
    inputs, outputs = specs
    return {
        "format_version": FORMAT_VERSION,
        **facts,
        "opset": opset,
        "exporter": "torch.onnx.export(dynamo=True, external_data=False, optimize=True)",
        "inputs": [s.to_dict() for s in inputs],
        "outputs": [s.to_dict() for s in outputs],
        "value_range": [0.0, 1.0],
        "layout": "NCHW",
        **spatial_fields(model),
        "source": {"weights": str(weights.resolve()), "sha256": sha256_file(weights)},
        "source_metadata": read_metadata(weights),
        "preset": model.preset.to_dict(),
        "config": run_config(weights),
        "parity": report.to_dict(),
        **({"quantization": quantization.to_dict()} if quantization else {}),
        "versions": package_versions(),
    }


def export_onnx(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    *,
    part: str = "restore",
    opset: int = DEFAULT_OPSET,
    fp16: bool = False,
    check_batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    quantize: str | None = None,
    calibration_data: str | None = None,
    gate_data: str | None = None,
) -> ExportResult:
    """Export `checkpoint`'s restoration path (or decoder) to `output`, publishing it only if it passes its gates.

    Args:
        checkpoint: a run folder or `model.safetensors` written by the toolkit (or `pretrained:NAME`).
        output: the `.onnx` file to write; its manifest goes beside it as `OUTPUT.json`.
        part: `restore` (image -> restored) or `decoder` (latent and skips -> restored).
        opset: the ONNX opset to write.
        fp16: fp16 weights and compute, fp32 inputs and outputs.
        check_batch_sizes: batch sizes the parity gate runs through both onnxruntime and PyTorch.
        quantize: `int8` publishes a static int8 version of the gated fp32 graph (see `export.quantize`).
        calibration_data: int8: folder of training images to calibrate on (default: the run's training data).
        gate_data: int8: folder of clear images for the score gate (default: the embedded samples).

    Returns:
        ExportResult: the graph and manifest paths, the parity report and, for int8, the quantisation report.

    Raises:
        ExportError: a bad argument, an export the exporter cannot write, or a failed gate (nothing written).
        CheckpointError: weights that cannot be loaded.
    """
    check_arguments(part, fp16, check_batch_sizes, quantize)
    weights = resolve_weights(checkpoint)
    model = load_model(weights)
    check_part(model, part)
    output = check_output(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    inputs, outputs = io_specs(model, part)
    tmp_model = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        written_opset = export_graph(build_module(model, part, half=fp16), inputs, outputs, tmp_model, opset)
        stored_half = 0 if fp16 or quantize else store_exact_float16(tmp_model)  # lossless; the gate checks it
        report = gated(tmp_model, model, part, inputs, check_batch_sizes, fp16, output)
        quantization = None
        if quantize:
            calibration = calibration_data or ((run_config(weights) or {}).get("data") or {}).get("train_data")
            quantization = quantize_in_place(tmp_model, calibration, gate_data)
        precision = quantize or ("fp16" if fp16 else "fp32")
        facts = {"file": output.name, "sha256": sha256_file(tmp_model), "part": part, "precision": precision}
        facts["float16_stored_initializers"] = stored_half  # float32 weights float16 holds exactly
        manifest = build_manifest(facts, written_opset, model, weights, (inputs, outputs), report, quantization)
        publish(tmp_model, output, manifest)
    finally:
        tmp_model.unlink(missing_ok=True)
    return ExportResult(output, manifest_path(output), report, quantization)
