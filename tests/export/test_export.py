"""`python -m export.onnx`: one self-contained file, a dynamic batch, the parity gate and the manifest."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.onnx import main as export_main
from vae_restore import load_model
from vae_restore.checksums import sha256_file
from vae_restore.errors import CheckpointError, ExportError
from vae_restore.export import pipeline
from vae_restore.export.onnx_export import build_module
from vae_restore.export.pipeline import export_onnx
from vae_restore.export.validate import real_tiles
from vae_restore.inference import Restorer

from ..conftest import REPO, subprocess_env
from ..onnx_models import exported_model, random_weights


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    return exported_model(tmp_path_factory)


def cpu_session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_cli_writes_one_model_file_and_its_manifest(exported):
    weights, model_path, stdout = exported
    assert sorted(p.name for p in model_path.parent.iterdir()) == ["model.onnx", "model.onnx.json"]
    assert "parity gate passed" in stdout
    manifest = json.loads((model_path.parent / "model.onnx.json").read_text())
    assert manifest["sha256"] == sha256_file(model_path)
    assert manifest["source"]["sha256"] == sha256_file(weights)
    assert manifest["preset"]["name"] == "original" and manifest["source_metadata"]["stage"] == "test"
    assert manifest["opset"] == 20 and manifest["part"] == "restore" and manifest["precision"] == "fp32"
    assert manifest["float16_stored_initializers"] == 0, "random float32 weights are not exact in float16"
    assert manifest["inputs"] == [{"name": "image", "shape": ["batch", 3, 128, 128], "dtype": "float32"}]
    assert manifest["outputs"] == [{"name": "restored", "shape": ["batch", 3, 128, 128], "dtype": "float32"}]
    parity = manifest["parity"]
    assert parity["passed"] and parity["tolerance"] == 1e-4 and parity["max_abs_diff"] <= 1e-4
    assert {(c["inputs"], c["batch_size"]) for c in parity["cases"]} == {
        (kind, b) for kind in ("random", "real") for b in (1, 3)
    }
    assert all(manifest["versions"][k] for k in ("torch", "onnx", "onnxruntime"))


def test_graph_is_self_contained_with_a_dynamic_batch(exported):
    weights, model_path, _ = exported
    graph = onnx.load(str(model_path)).graph
    assert all(t.data_location == onnx.TensorProto.DEFAULT for t in graph.initializer)
    used = 18_371_523 - (512 * 128 + 128)  # every weight but the logvar head (fc22), which restoration never uses
    assert used <= sum(int(np.prod(t.dims)) for t in graph.initializer) <= used + 64  # + a few shape constants
    session = cpu_session(model_path)
    (model_input,) = session.get_inputs()
    assert isinstance(model_input.shape[0], str) and model_input.shape[1:] == [3, 128, 128]
    x = np.random.default_rng(1).random((5, 3, 128, 128), dtype=np.float32)  # a batch size the gate did not check
    expected = load_model(weights).restore(torch.from_numpy(x)).numpy()
    assert np.abs(session.run(None, {"image": x})[0] - expected).max() <= 1e-4


def test_failing_gate_exits_nonzero_and_leaves_no_file(tmp_path, monkeypatch, capsys):
    weights = random_weights(tmp_path / "run")

    def perturbed_reference(model, part):
        module = build_module(model, part)
        with torch.no_grad():
            module.vae.decoder.conv4.bias[1] += 2e-3  # shifts every green logit: |Δ| up to 5e-4 after the sigmoid
        return module

    monkeypatch.setattr(pipeline, "reference_module", perturbed_reference)
    output = tmp_path / "out" / "model.onnx"
    code = export_main(["--checkpoint", str(weights), "--output", str(output), "--check_batch_sizes", "2"])
    err = capsys.readouterr().err
    assert code != 0
    assert "parity gate failed" in err and "max |Δ|" in err and "at output index (" in err
    assert re.search(r"at output index \(\d+, 1, \d+, \d+\)", err), err  # the worst is in the perturbed channel
    assert list(output.parent.iterdir()) == []


def test_an_opset_the_exporter_falls_back_from_is_refused(tmp_path, exported):
    weights = random_weights(tmp_path / "run")
    output = tmp_path / "out" / "m.onnx"
    with pytest.raises(ExportError, match=r"produced opset \d+, not the requested 14"):
        export_onnx(weights, output, opset=14, check_batch_sizes=(1,))
    assert list(output.parent.iterdir()) == []
    default_domain = [e.version for e in onnx.load(str(exported[1])).opset_import if e.domain in ("", "ai.onnx")]
    assert default_domain == [20] == [json.loads((exported[1].parent / "model.onnx.json").read_text())["opset"]]


def test_fp16_export_passes_its_own_gate_and_is_half_the_size(tmp_path, exported):
    weights = random_weights(tmp_path / "run")
    result = export_onnx(weights, tmp_path / "half.onnx", fp16=True, check_batch_sizes=(2,))
    manifest = json.loads(result.manifest.read_text())
    assert manifest["precision"] == "fp16" and manifest["parity"]["tolerance"] == 5e-3
    assert 0 < manifest["parity"]["max_abs_diff"] <= 5e-3  # not zero: the weights really are fp16
    assert result.model.stat().st_size < 0.6 * exported[1].stat().st_size
    assert cpu_session(result.model).get_inputs()[0].type == "tensor(float)"


@pytest.fixture(scope="module")
def decoder_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("decoder")
    weights = random_weights(folder / "run")
    return weights, export_onnx(weights, folder / "decoder.onnx", part="decoder", check_batch_sizes=(1, 2))


def test_decoder_part_takes_latent_and_skips(decoder_export):
    weights, result = decoder_export
    session = cpu_session(result.model)
    assert [(i.name, i.shape[1:]) for i in session.get_inputs()] == [
        ("z", [128]),
        ("s1", [32, 64, 64]),
        ("s2", [64, 32, 32]),
        ("s3", [128, 16, 16]),
    ]
    model = load_model(weights)
    images = torch.from_numpy(real_tiles(3, 128))
    mu, _, skips = model.encoder(images)
    feeds = dict(zip(("z", "s1", "s2", "s3"), (t.detach().numpy() for t in (mu, *skips)), strict=True))
    assert np.abs(session.run(None, feeds)[0] - model.restore(images).numpy()).max() <= 1e-4
    assert json.loads(result.manifest.read_text())["part"] == "decoder"


def test_restorer_refuses_a_decoder_graph_even_unverified(decoder_export):
    model = decoder_export[1].model
    with pytest.raises(CheckpointError, match="'decoder' export"):
        Restorer(model, providers="cpu")
    with pytest.raises(ValueError, match=r"not a restoration-path export: it takes z \['batch', 128\], s1"):
        Restorer(model, providers="cpu", verify=False)


def test_invalid_requests_are_refused_before_exporting(tmp_path):
    weights = random_weights(tmp_path / "run")
    with pytest.raises(ExportError, match="unknown part"):
        export_onnx(weights, tmp_path / "m.onnx", part="encoder")
    with pytest.raises(ExportError, match="positive"):
        export_onnx(weights, tmp_path / "m.onnx", check_batch_sizes=(0,))
    assert not (tmp_path / "m.onnx").exists()
    before = weights.read_bytes()
    with pytest.raises(ExportError, match=r"must end in \.onnx"):
        export_onnx(weights, weights)  # would have replaced the weights it reads
    assert weights.read_bytes() == before
    with pytest.raises(ExportError, match="is a folder"):
        export_onnx(weights, tmp_path / "run")
    with pytest.raises(ExportError, match="is a folder"):
        export_onnx(weights, f"{tmp_path / 'new'}/")
    with pytest.raises(ExportError, match="is a file, not a folder"):
        export_onnx(weights, weights / "sub" / "m.onnx")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["model.safetensors", "run"]


def test_an_opset_onnx_does_not_know_is_refused_by_the_command_line(capsys):
    from export.onnx import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--checkpoint", "run", "--opset", "99"])
    assert "--opset: must be an ONNX opset between 1 and" in capsys.readouterr().err


@pytest.mark.slow
def test_script_runs_as_a_file_without_shadowing_onnx(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "export" / "onnx.py"), "--checkpoint", str(tmp_path / "missing")],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "no weights at" in result.stderr, result.stderr


def test_export_without_onnxruntime_stops_before_any_work(tmp_path, monkeypatch):
    """The parity gate needs onnxruntime (the `infer` extra); a `train`-only install is told so up front."""
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else find_spec(name, *a)
    )
    with pytest.raises(ExportError, match="onnxruntime, which is not installed"):
        export_onnx(tmp_path / "missing.safetensors", tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_the_fp16_switch_is_spelled_like_every_boolean_flag():
    from export.onnx import parse_args

    assert parse_args(["--checkpoint", "run", "--fp16"]).fp16 is True
    assert parse_args(["--checkpoint", "run", "--fp16", "false"]).fp16 is False
    assert parse_args(["--checkpoint", "run"]).fp16 is False
