"""int8 export: a static QDQ graph published only when it restores like the fp32 one, in image terms."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.onnx_models import fullconv_model
from vae_restore.data.embedded import embedded_images
from vae_restore.distortions.named import NAMED_DISTORTIONS
from vae_restore.errors import ExportError
from vae_restore.export import quantize
from vae_restore.export.pipeline import export_onnx
from vae_restore.inference import Restorer
from vae_restore.models import save_model


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_model(fullconv_model(), tmp_path_factory.mktemp("run") / "model.safetensors", {"stage": "test"})


@pytest.fixture(scope="module")
def gate_folder(tmp_path_factory):
    """Two small clear photos: the score gate's images (the embedded samples are large for a test)."""
    folder = tmp_path_factory.mktemp("gate")
    for name, image in embedded_images()[:2]:
        Image.fromarray(image[:160, :200]).save(folder / f"{name}.png")
    return folder


def int8_weight_magnitude(graph) -> int:
    """The largest |value| among the graph's int8 initialisers (its quantised weights)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(graph))
    weights = [numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    return max(int(np.abs(w.astype(int)).max()) for w in weights if w.size > 1)


def test_int8_export_is_published_with_its_gate_results(weights, gate_folder, tmp_path):
    result = export_onnx(
        weights, tmp_path / "int8.onnx", quantize="int8", gate_data=str(gate_folder), check_batch_sizes=(1,)
    )
    manifest = json.loads(result.manifest.read_text())
    assert manifest["precision"] == "int8" and manifest["quantization"]["passed"] is True
    report = result.quantization
    assert report.psnr_vs_fp32 >= quantize.MIN_PSNR_VS_FP32 and report.score_drop <= quantize.MAX_SCORE_DROP_DB
    assert manifest["quantization"]["images"] == 2 and report.calibration_crops == quantize.CALIBRATION_CROPS // 2
    assert set(manifest["quantization"]["scores"]) == set(NAMED_DISTORTIONS)  # every distortion is gated
    fp32 = export_onnx(weights, tmp_path / "fp32.onnx", check_batch_sizes=(1,))
    assert result.model.stat().st_size < 0.5 * fp32.model.stat().st_size  # int8 weights
    assert 0 < int8_weight_magnitude(result.model) <= 64  # 7-bit weights: no int16 saturation without VNNI
    image = embedded_images()[0][1][:96, :136]
    int8_out, fp32_out = Restorer(result.model).restore(image), Restorer(fp32.model).restore(image)
    assert np.abs(int8_out.astype(int) - fp32_out.astype(int)).mean() < 2  # close, in 8-bit steps


def test_a_failed_int8_gate_writes_nothing(weights, gate_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(quantize, "MIN_PSNR_VS_FP32", 500.0)  # no int8 graph gets there
    out, cwd = tmp_path / "out", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # the quantiser's scratch files must not land in the working folder either
    with pytest.raises(ExportError, match="int8 gate failed: int8 vs fp32 .* dB on held-back crops"):
        export_onnx(weights, out / "m.onnx", quantize="int8", gate_data=str(gate_folder), check_batch_sizes=(1,))
    assert list(out.iterdir()) == [] and list(cwd.iterdir()) == []


def test_a_drop_on_any_one_distortion_fails_the_gate_and_is_named():
    scores = {"awgn25": (29.55, 29.46), "blur": (26.35, 25.74), "jpeg20": (28.17, 28.12)}
    report = quantize.QuantizationReport(psnr_vs_fp32=45.0, scores=scores, images=8, calibration_crops=24)
    assert report.worst == "blur" and abs(report.score_drop - 0.61) < 1e-9 and not report.passed
    assert "blur 25.740 dB vs fp32 26.350 dB (drop 0.610" in report.describe()
    assert report.to_dict()["scores"]["awgn25"] == {"fp32": 29.55, "int8": 29.46}
    mild = quantize.QuantizationReport(45.0, {**scores, "blur": (26.35, 26.30)}, 8, 24)
    assert mild.passed and mild.worst == "awgn25"


def test_int8_refuses_fp16_and_the_decoder(weights, tmp_path):
    with pytest.raises(ExportError, match="drop --fp16 and --part"):
        export_onnx(weights, tmp_path / "m.onnx", quantize="int8", fp16=True)
    with pytest.raises(ExportError, match="unknown quantization 'int4'"):
        export_onnx(weights, tmp_path / "m.onnx", quantize="int4")
