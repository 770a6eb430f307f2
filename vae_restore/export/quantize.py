"""int8 export: static QDQ quantisation of a gated fp32 graph, calibrated on training crops, gated in image terms.

Only the convolutions are quantised (per-channel int8 weights, uint8 activations, onnxruntime's QDQ format);
the residual output, its clamp and the sigmoid stay fp32, so the restored values keep their full precision.
The int8 graph is accepted only if it restores like the fp32 one: at least `MIN_PSNR_VS_FP32` dB between
the two on held-back crops (inputs the calibration never saw), and, on every named distortion, a score
against the clear images at most `MAX_SCORE_DROP_DB` below the fp32 graph's. Every distortion, because
int8 does not cost them alike: the bundled model lost 0.09 dB on `awgn25` and 0.6 dB on `blur`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, ExportError
from ..image_scores import psnr

MIN_PSNR_VS_FP32 = 40.0
MAX_SCORE_DROP_DB = 0.15
CALIBRATION_DISTORTIONS = (None, "awgn15", "awgn25", "awgn50", "jpeg20", "blur")  # inputs as users bring them
CALIBRATION_CROPS = 48  # half calibrate, half are held back for the first gate
CROP = 128
GATE_IMAGES = 8  # the first N images of the gate folder, sorted by name

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantizationReport:
    psnr_vs_fp32: float  # int8 restoration against fp32's, held-back crops, dB
    scores: dict[str, tuple[float, float]]  # distortion -> mean PSNR against the clear images (fp32, int8)
    images: int
    calibration_crops: int

    @property
    def worst(self) -> str:
        """The distortion int8 costs most."""
        return max(self.scores, key=lambda name: self.scores[name][0] - self.scores[name][1])

    @property
    def score_drop(self) -> float:
        fp32, int8 = self.scores[self.worst]
        return fp32 - int8

    @property
    def passed(self) -> bool:
        return self.psnr_vs_fp32 >= MIN_PSNR_VS_FP32 and self.score_drop <= MAX_SCORE_DROP_DB

    def describe(self) -> str:
        fp32, int8 = self.scores[self.worst]
        return (
            f"int8 vs fp32 {self.psnr_vs_fp32:.2f} dB on held-back crops (at least {MIN_PSNR_VS_FP32:g}); "
            f"largest score drop of {len(self.scores)} distortions over {self.images} images: {self.worst} "
            f"{int8:.3f} dB vs fp32 {fp32:.3f} dB (drop {self.score_drop:.3f}, at most {MAX_SCORE_DROP_DB:g})"
        )

    def to_dict(self) -> dict:
        return {
            "psnr_vs_fp32": self.psnr_vs_fp32,
            "scores": {name: {"fp32": fp32, "int8": int8} for name, (fp32, int8) in self.scores.items()},
            "images": self.images,
            "calibration_crops": self.calibration_crops,
            "worst": self.worst,
            "score_drop": self.score_drop,
            "passed": self.passed,
        }


def clear_images(folder: str | os.PathLike | None, limit: int | None = None) -> list[np.ndarray]:
    """H×W×3 uint8 images of `folder` (sorted, the first `limit`), or the embedded samples when None."""
    if folder is None:
        from ..data.embedded import embedded_images

        images = [image for _, image in embedded_images()]
    else:
        from ..data.decode import decode_rgb
        from ..data.files import list_images

        files = list_images(Path(folder))
        if not files:
            raise DataError(f"no images in {folder}")
        images = [decode_rgb(path) for path in files[:limit]]
    return images[:limit]


def distort(images: np.ndarray, name: str | None, seed: int) -> np.ndarray:
    """N×3×H×W float32 in [0, 1] -> the named distortion of it, rounded to 8 bits like a saved file."""
    if name is None:
        return images
    import torch

    from ..distortions.named import apply_named

    out = apply_named(name, torch.from_numpy(images), seed).clamp(0, 1)
    return ((out * 255).round() / 255).numpy().astype(np.float32)


def training_crops(images: list[np.ndarray], count: int, seed: int) -> np.ndarray:
    """`count` random CROP² crops (N×3×CROP×CROP float32), each distorted by one of CALIBRATION_DISTORTIONS."""
    rng = np.random.default_rng(seed)
    usable = [image for image in images if min(image.shape[:2]) >= CROP]
    if not usable:
        raise DataError(f"calibration needs images of at least {CROP}x{CROP} pixels")
    crops = []
    for i in range(count):
        image = usable[i % len(usable)]
        y, x = rng.integers(0, image.shape[0] - CROP + 1), rng.integers(0, image.shape[1] - CROP + 1)
        crop = image[y : y + CROP, x : x + CROP].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        crops.append(distort(crop, CALIBRATION_DISTORTIONS[i % len(CALIBRATION_DISTORTIONS)], seed + i))
    return np.concatenate(crops)


class _Crops:
    """onnxruntime's CalibrationDataReader protocol over a crop array, a few crops per call."""

    def __init__(self, crops: np.ndarray, batch: int = 4):
        self._batches = iter([{"image": crops[i : i + batch]} for i in range(0, len(crops), batch)])

    def get_next(self):
        return next(self._batches, None)


def quantize_graph(fp32: Path, output: Path, calibration: np.ndarray) -> None:
    """Write the static int8 QDQ version of the fp32 graph `fp32` to `output` (shape-inferred first, as
    onnxruntime's quantiser recommends).

    Weights use 7 of their 8 bits (`reduce_range`): on x86 CPUs without VNNI, onnxruntime's uint8 x int8
    kernels add pairs of products in int16, which saturates with full-range weights (the bundled model lost
    0.4 dB to fp32 on such a CPU); with 7-bit weights it is 0.09 dB from fp32 there, as on CPUs with VNNI."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs every node at INFO and advice at WARNING
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="vae-restore-int8-") as work:
        prepared = Path(work) / "prepared.onnx"
        try:
            os.chdir(work)  # the quantiser writes scratch files into the working folder, and leaves them on errors
            quant_pre_process(str(fp32.resolve()), str(prepared), skip_symbolic_shape=True)  # symbolic H, W defeat it
            quantize_static(
                str(prepared),
                str(output.resolve()),
                _Crops(calibration),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["Conv", "ConvTranspose"],
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                reduce_range=True,
            )
        except Exception as e:  # the quantiser raises assorted types; one clear error instead
            raise ExportError(f"int8 quantisation failed: {type(e).__name__}: {e}") from e
        finally:
            os.chdir(cwd)
            root.setLevel(level)


def _mean_score(restorer, inputs: list[np.ndarray], clear: list[np.ndarray]) -> float:
    """Mean PSNR of `restorer`'s 8-bit restorations of `inputs` against `clear` (H×W×3 float in [0, 1])."""
    return float(
        np.mean([psnr(np.rint(restorer.restore(x) * 255) / 255, c) for x, c in zip(inputs, clear, strict=True)])
    )


def check_int8(
    fp32: Path, int8: Path, held_back: np.ndarray, gate_images: list[np.ndarray], calibration_crops: int
) -> QuantizationReport:
    """Both gates' measurements (see the module docstring); the caller refuses a report that did not pass."""
    from ..distortions.named import NAMED_DISTORTIONS
    from ..inference import Restorer

    restorers = [Restorer(path, providers="cpu", verify=False) for path in (fp32, int8)]
    outputs = [
        np.concatenate([r.run_tiles(held_back[i : i + 8]) for i in range(0, len(held_back), 8)]) for r in restorers
    ]
    planes = [image.transpose(2, 0, 1)[None].astype(np.float32) / 255.0 for image in gate_images]
    clear = [image.astype(np.float64) / 255 for image in gate_images]
    scores = {}
    for name in NAMED_DISTORTIONS:
        inputs = [distort(p, name, index)[0].transpose(1, 2, 0) for index, p in enumerate(planes)]
        scores[name] = (_mean_score(restorers[0], inputs, clear), _mean_score(restorers[1], inputs, clear))
    return QuantizationReport(psnr(outputs[1], outputs[0]), scores, len(gate_images), calibration_crops)


def quantize_in_place(
    graph: Path, calibration_data: str | None, gate_data: str | None, seed: int = 0
) -> QuantizationReport:
    """Replace the gated fp32 `graph` by its int8 version, if that passes both gates.

    Args:
        graph: a restoration-path graph that passed the fp32 parity gate; it is replaced only on success.
        calibration_data: folder of training images for the calibration crops (None: the embedded samples).
        gate_data: folder of clear images for the score gate (None: the embedded samples).

    Raises:
        ExportError: quantisation failed, or a gate did not pass (`graph` is left as it was).
    """
    int8 = graph.with_name(f"{graph.name}.int8")
    try:
        crops = training_crops(clear_images(calibration_data, limit=64), CALIBRATION_CROPS, seed)
        calibration, held_back = crops[: len(crops) // 2], crops[len(crops) // 2 :]
        quantize_graph(graph, int8, calibration)
        gate_images = clear_images(gate_data, limit=GATE_IMAGES)
        report = check_int8(graph, int8, held_back, gate_images, len(calibration))
        if not report.passed:
            raise ExportError(f"int8 gate failed: {report.describe()}; nothing was written")
        os.replace(int8, graph)
    finally:
        int8.unlink(missing_ok=True)
    return report
