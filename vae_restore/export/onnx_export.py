"""The graphs that are exported and the one exporter call that writes them.

Exporter choice, pinned: `torch.onnx.export(dynamo=True, external_data=False, optimize=True)`.
The dynamo (torch.export) exporter is torch's default since 2.9 and the TorchScript one is deprecated,
so pinning it keeps results from changing with torch's default; `external_data=False` keeps the
weights inside the one `.onnx` file (the model is about 73 MB, far below protobuf's 2 GB limit);
the batch dimension is a `torch.export.Dim`, so one file serves every batch size. Fully convolutional
presets also get dynamic height and width, each `multiple * Dim`, so one file serves every image size
the network takes; the graph records that multiple in its metadata (`MULTIPLE_KEY`) for runtimes.
The opset is pinned too (`DEFAULT_OPSET`) rather than left to the exporter.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from ..errors import ExportError
from ..models import VAE
from .manifest import MULTIPLE_KEY

DEFAULT_OPSET = 20
PARTS = ("restore", "decoder")
MAX_SIDE = 65536  # the largest height or width a dynamic-H×W graph is exported for


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: its name and its shape, names ("batch", "height", "width") marking dynamic ones."""

    name: str
    shape: tuple[int | str, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": "float32"}


class RestorationPath(nn.Module):
    """image N×3×S×S in [0, 1] -> encoder -> mu (no sampling) -> decoder with skips -> sigmoid.

    With `half`, weights and compute are fp16 while the graph's inputs and outputs stay fp32, so
    callers feed the same arrays to either export.
    """

    def __init__(self, model: VAE, half: bool = False):
        super().__init__()
        self.vae = copy.deepcopy(model).eval()
        self.preset = model.preset
        self.half_compute = half
        if half:
            self.vae.half()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.half() if self.half_compute else image
        return torch.sigmoid(self.vae.restoration_logits(x)).float()

    def dynamic_shapes(self, batch: torch.export.Dim, num_inputs: int) -> tuple:
        """The batch dimension of the one `image` input is dynamic; so are H and W of a fully convolutional preset,
        as multiples of `Preset.multiple` (the stride-2 steps need them, and torch.export proves it so)."""
        preset = self.preset
        if not preset.fully_convolutional:
            return ({0: batch},)
        m = preset.multiple
        blocks = [torch.export.Dim(f"{side}_blocks", min=1, max=MAX_SIDE // m) for side in ("h", "w")]
        return ({0: batch, 2: m * blocks[0], 3: m * blocks[1]},)


class DecoderPath(nn.Module):
    """(z, s1, s2, s3[, s0][, image]) -> decoder with skips -> sigmoid: for users who decode latents themselves.

    Full-resolution-skip presets add `s0`; residual presets add the `image` whose logits the decoder corrects.
    """

    def __init__(self, model: VAE, half: bool = False):
        super().__init__()
        self.decoder = copy.deepcopy(model.decoder).eval()
        self.preset = model.preset
        self.half_compute = half
        if half:
            self.decoder.half()

    def forward(self, z: torch.Tensor, *features: torch.Tensor) -> torch.Tensor:
        if self.half_compute:
            z, features = z.half(), tuple(f.half() for f in features)
        skips, image = (features[:-1], features[-1]) if self.decoder.residual else (features, None)
        return torch.sigmoid(self.decoder(z, skips, image)).float()

    @staticmethod
    def dynamic_shapes(batch: torch.export.Dim, num_inputs: int) -> tuple:
        """torch.export wants the shapes in the signature's structure: `z`, then the `*features` tuple."""
        return ({0: batch}, tuple({0: batch} for _ in range(num_inputs - 1)))


def check_part(model: VAE, part: str) -> None:
    """Refuse what cannot be exported: an unknown part, or the decoder alone of a fully convolutional preset."""
    if part not in PARTS:
        raise ExportError(f"unknown part {part!r}; choose one of {', '.join(PARTS)}")
    if part == "decoder" and model.preset.fully_convolutional:
        raise ExportError(
            f"--part decoder is for fixed-size presets; {model.preset.name!r} is fully convolutional, so its "
            "latent and skips are feature maps whose sizes follow the image: export the restoration path "
            "(without --part)"
        )


def build_module(model: VAE, part: str, half: bool = False) -> RestorationPath | DecoderPath:
    check_part(model, part)
    if part == "restore":
        return RestorationPath(model, half).eval()
    return DecoderPath(model, half).eval()


def io_specs(model: VAE, part: str) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Names and shapes of the graph's inputs and outputs for `part` of this preset."""
    p = model.preset
    s = p.image_size
    image = ("batch", p.in_channels, *(("height", "width") if p.fully_convolutional else (s, s)))
    outputs = [TensorSpec("restored", image)]
    if part == "restore":
        return [TensorSpec("image", image)], outputs
    skips = [TensorSpec(name, ("batch", *shape)) for name, shape in p.skip_shapes().items()]
    residual = [TensorSpec("image", image)] if p.residual else []
    return [TensorSpec("z", ("batch", p.latent_dim)), *skips, *residual], outputs


def concrete_shape(spec: TensorSpec, batch_size: int, height: int, width: int) -> tuple[int, ...]:
    """`spec`'s shape with its dynamic dimensions given: N, and H×W for a fully convolutional image."""
    sizes = {"batch": batch_size, "height": height, "width": width}
    return tuple(sizes[d] if isinstance(d, str) else d for d in spec.shape)


def example_inputs(specs: list[TensorSpec], size: int, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
    return tuple(torch.rand(concrete_shape(spec, batch_size, size, size)) for spec in specs)


EXPORTER_OPTIONS = {"dynamo": True, "external_data": False, "optimize": True, "verbose": False}  # one file


@contextlib.contextmanager
def quiet_exporter():
    """The exporter's loggers at ERROR and its warnings ignored while it runs: a failed opset conversion logs a
    traceback, and callers check and say what went wrong themselves."""
    quiet = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "torch.onnx", "torch.export")]
    levels = [logger.level for logger in quiet]
    try:
        for logger in quiet:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


def export_graph(
    module: RestorationPath | DecoderPath, inputs: list[TensorSpec], outputs: list[TensorSpec], path: Path, opset: int
) -> int:
    """Write `module` to the single file `path` with a dynamic batch dimension (see the module docstring).

    Returns the opset read back from the file: when its version conversion fails the exporter only logs
    it and keeps its own opset, so a differing one is an error rather than a silently wrong manifest.
    """
    batch = torch.export.Dim("batch", min=1, max=65536)
    dynamic_shapes = module.dynamic_shapes(batch, len(inputs))
    try:
        with quiet_exporter():
            torch.onnx.export(
                module,
                example_inputs(inputs, module.preset.image_size),
                str(path),
                **EXPORTER_OPTIONS,
                opset_version=opset,
                input_names=[spec.name for spec in inputs],
                output_names=[spec.name for spec in outputs],
                dynamic_shapes=dynamic_shapes,
            )
    except Exception as e:  # the exporter raises many unrelated types; one clear error instead
        raise ExportError(f"torch.onnx.export failed for opset {opset}: {type(e).__name__}: {e}") from e
    leftovers = sorted(p.name for p in path.parent.glob(path.name + "*.data"))
    if leftovers or not path.is_file():
        raise ExportError(f"the exporter did not write a single self-contained file {path} (found {leftovers})")
    if module.preset.fully_convolutional:
        record_multiple(path, module.preset.multiple)
    written = written_opset(path)
    if written != opset:
        raise ExportError(
            f"the exporter produced opset {written}, not the requested {opset}; "
            f"torch's conversion to {opset} failed for this graph (the default, {DEFAULT_OPSET}, is supported)"
        )
    return written


def record_multiple(path: Path, multiple: int) -> None:
    """Write `multiple` into the graph's metadata, so a runtime can pad images without the manifest."""
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {MULTIPLE_KEY: str(multiple)})
    onnx.save(model, str(path))


def written_opset(path: Path) -> int | None:
    """The default-domain (ai.onnx) opset recorded in the ONNX file at `path`."""
    model = onnx.load(str(path), load_external_data=False)
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)
