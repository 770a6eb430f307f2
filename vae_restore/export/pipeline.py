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
from .manifest import FORMAT_VERSION, manifest_path, package_versions, write_manifest
from .onnx_export import DEFAULT_OPSET, PARTS, build_module, export_graph, io_specs
from .validate import FP16_TOLERANCE, FP32_TOLERANCE, ParityReport, check_parity

DEFAULT_BATCH_SIZES = (1, 3, 8)


@dataclass(frozen=True)
class ExportResult:
    model: Path
    manifest: Path
    parity: ParityReport


def reference_module(model: VAE, part: str) -> nn.Module:
    """The fp32 PyTorch module the gate compares the ONNX graph against (also for `--fp16`)."""
    return build_module(model, part)


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


def export_onnx(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    *,
    part: str = "restore",
    opset: int = DEFAULT_OPSET,
    fp16: bool = False,
    check_batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
) -> ExportResult:
    """Export one checkpoint to ONNX; the file is published only when onnxruntime agrees with PyTorch.

    Args:
        checkpoint: a run folder or `model.safetensors`.
        output: the `.onnx` file to write; its manifest goes beside it (`<output>.json`).
        part: `restore` (image -> restored image, what `Restorer` runs), or one half of the network.
        opset: the ONNX opset asked of the exporter.
        fp16: export in half precision (checked against the fp32 module with a looser tolerance).
        check_batch_sizes: the batch sizes the parity gate runs.

    Returns:
        The written model and manifest paths, and the parity report.

    Raises:
        ExportError: an unknown part, bad batch sizes, onnxruntime missing, an invalid graph, or a failed
            parity gate (then nothing is written at `output`).
        CheckpointError: the checkpoint cannot be loaded (see `load_model`).
    """
    if part not in PARTS:
        raise ExportError(f"unknown part {part!r}; choose one of {', '.join(PARTS)}")
    if not check_batch_sizes or min(check_batch_sizes) < 1:
        raise ExportError(f"check batch sizes must be positive integers, got {list(check_batch_sizes)}")
    if importlib.util.find_spec("onnxruntime") is None:
        raise ExportError(
            "the parity gate runs the graph on onnxruntime, which is not installed: pip install -e '.[infer]'"
        )
    weights = resolve_weights(checkpoint)
    model = load_model(weights)
    output = check_output(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    inputs, outputs = io_specs(model, part)
    tmp_model = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    tmp_manifest = manifest_path(tmp_model)
    try:
        written_opset = export_graph(build_module(model, part, half=fp16), inputs, outputs, tmp_model, opset)
        try:
            onnx.checker.check_model(str(tmp_model), full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
            raise ExportError(f"the exported graph is not valid ONNX: {e}") from None
        tolerance = FP16_TOLERANCE if fp16 else FP32_TOLERANCE
        report = check_parity(
            tmp_model, model, reference_module(model, part), part, inputs, check_batch_sizes, tolerance
        )
        if not report.passed:
            raise ExportError(
                f"parity gate failed (tolerance {tolerance:g}); worst: {report.worst.describe()}; "
                f"{output} was not written"
            )
        manifest = {
            "format_version": FORMAT_VERSION,
            "file": output.name,
            "sha256": sha256_file(tmp_model),
            "part": part,
            "precision": "fp16" if fp16 else "fp32",
            "opset": written_opset,
            "exporter": "torch.onnx.export(dynamo=True, external_data=False, optimize=True)",
            "inputs": [s.to_dict() for s in inputs],
            "outputs": [s.to_dict() for s in outputs],
            "value_range": [0.0, 1.0],
            "layout": "NCHW",
            "source": {"weights": str(weights.resolve()), "sha256": sha256_file(weights)},
            "source_metadata": read_metadata(weights),
            "preset": model.preset.to_dict(),
            "config": run_config(weights),
            "parity": report.to_dict(),
            "versions": package_versions(),
        }
        write_manifest(tmp_manifest, manifest)
        os.replace(tmp_model, output)
        os.replace(tmp_manifest, manifest_path(output))
    finally:
        for leftover in (tmp_model, tmp_manifest):
            leftover.unlink(missing_ok=True)
    return ExportResult(output, manifest_path(output), report)
