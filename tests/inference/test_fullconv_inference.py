"""A fully convolutional export: dynamic N×3×H×W, whole images in one call, tiles above the budget."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
import torch

from vae_restore.errors import ExportError
from vae_restore.evaluation.tiled import model_geometry, restore_image
from vae_restore.export.manifest import MULTIPLE_KEY
from vae_restore.export.pipeline import export_onnx
from vae_restore.inference import Restorer
from vae_restore.models import load_model
from vae_restore.tiling import MAX_WHOLE_PIXELS, Geometry, tile_starts

from ..onnx_models import exported_model, fullconv_weights, random_weights

ODD = (203, 317)  # not a multiple of 8 either way: padded to 208×320


@pytest.fixture(scope="module")
def fullconv_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fullconv")
    weights = fullconv_weights(folder / "run")
    return weights, export_onnx(weights, folder / "model.onnx", check_batch_sizes=(1, 2))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    h, w = ODD
    return data.astronaut()[100 : 100 + h, 80 : 80 + w].astype(np.float32) / 255.0


def test_graph_takes_any_batch_height_and_width(fullconv_export):
    _, result = fullconv_export
    manifest = json.loads(result.manifest.read_text())
    assert manifest["format_version"] == 2 and manifest["spatial"] == "dynamic" and manifest["multiple"] == 8
    assert manifest["inputs"] == [{"name": "image", "shape": ["batch", 3, "height", "width"], "dtype": "float32"}]
    cases = {(c["inputs"], c["batch_size"]) for c in manifest["parity"]["cases"]}
    assert {("real 88×152", 1), ("random 88×152", 1), ("real", 2)} <= cases and manifest["parity"]["passed"]
    model = onnx.load(str(result.model))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in dims] == [True, False, True, True]
    assert {p.key: p.value for p in model.metadata_props}[MULTIPLE_KEY] == "8"


def test_fixed_tile_manifests_gain_only_the_format_version(tmp_path_factory):
    manifest = json.loads(exported_model(tmp_path_factory)[1].with_name("model.onnx.json").read_text())
    assert manifest["format_version"] == 2 and "spatial" not in manifest and "multiple" not in manifest
    assert all(c["inputs"] in ("random", "real") for c in manifest["parity"]["cases"])


def test_decoder_part_is_refused_by_name(fullconv_export, tmp_path):
    with pytest.raises(ExportError, match="'fullconv' is fully convolutional.*without --part"):
        export_onnx(fullconv_export[0], tmp_path / "decoder.onnx", part="decoder")
    assert not any(tmp_path.iterdir())


def test_whole_image_equals_pytorch_and_the_tiles(fullconv_export, astronaut):
    weights, result = fullconv_export
    model = load_model(weights)
    whole = Restorer(result.model, providers="cpu")
    tiled = Restorer(result.model, providers="cpu", max_whole_pixels=0, tile=128, batch_size=4)
    assert whole.geometry.whole(*ODD) and not tiled.geometry.whole(*ODD)
    got = whole.restore(astronaut)
    assert got.shape == (*ODD, 3)
    assert np.abs(got - astronaut).mean() > 8 / 255  # the random tail really restores something
    torch_whole = restore_image(model, astronaut, "cpu")
    assert np.abs(got - torch_whole).max() <= 1e-4
    for ours, theirs in ((tiled.restore(astronaut), got), (restore_image(model, astronaut, "cpu", 4, 0, 128), got)):
        assert 0 < np.abs(ours - theirs).max() <= 1 / 255  # another path (tiles), the same picture


def test_one_call_is_the_network_on_the_padded_image(fullconv_export, astronaut):
    model = load_model(fullconv_export[0])
    padded = np.pad(astronaut, ((0, 5), (0, 3), (0, 0)), mode="reflect")
    direct = model.restore(torch.from_numpy(padded).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(restore_image(model, astronaut, "cpu"), direct[: ODD[0], : ODD[1]], atol=1e-6)


def test_unverified_model_reads_its_multiple_from_the_graph(fullconv_export, tmp_path):
    copy = tmp_path / "model.onnx"
    shutil.copy(fullconv_export[1].model, copy)
    restorer = Restorer(copy, providers="cpu", verify=False)
    assert (restorer.multiple, restorer.tile, restorer.overlap) == (8, 512, 64)
    assert restorer.restore(np.zeros((5, 9, 3), np.uint8)).shape == (5, 9, 3)


def test_geometry_refusals_name_the_fix(fullconv_export, tmp_path):
    with pytest.raises(ValueError, match="tile must be a positive multiple of 8"):
        Restorer(fullconv_export[1].model, providers="cpu", tile=100)
    with pytest.raises(ValueError, match="max_whole_pixels must be at least 0"):
        Geometry.convolutional(8, max_whole_pixels=-1)
    fixed = load_model(random_weights(tmp_path / "run"))
    with pytest.raises(ValueError, match="takes 128×128 tiles only"):
        model_geometry(fixed, tile=256)
    assert model_geometry(fixed) == Geometry(128, 16)  # fixed tiles, as before


@pytest.mark.parametrize(("length", "tile", "overlap"), [(208, 128, 16), (1000, 512, 64), (4104, 512, 64)])
def test_aligned_tile_starts_keep_the_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap, align=8)
    assert starts[0] == 0 and starts[-1] == length - tile and all(s % 8 == 0 for s in starts)
    assert all(0 < b - a <= tile - overlap for a, b in zip(starts, starts[1:], strict=False))


def test_evaluate_restores_whole_images_and_records_the_budget(fullconv_export, tmp_path):
    from vae_restore.evaluation import EvalOptions, evaluate
    from vae_restore.evaluation.report import read_csv

    from ..conftest import write_images

    write_images(tmp_path / "clear", 2, size=(45, 70), seed=1)
    runs = {}
    for budget in (MAX_WHOLE_PIXELS, 0):
        out = tmp_path / f"report-{budget}"
        options = EvalOptions(
            checkpoint=str(fullconv_export[0]), data=str(tmp_path / "clear"), distortion="awgn15", output=str(out)
        )
        options.max_whole_pixels, options.num_comparisons = budget, 0
        runs[budget] = evaluate(options), read_csv(out / "per_image.csv")
    summary, rows = runs[MAX_WHOLE_PIXELS]
    assert (summary["tile"], summary["overlap"], summary["max_whole_pixels"]) == (512, 64, MAX_WHOLE_PIXELS)
    assert runs[0][0]["max_whole_pixels"] == 0 and len(rows) == len(runs[0][1]) == 2
    assert [r["restored_psnr"] for r in rows] != [r["restored_psnr"] for r in runs[0][1]]  # one call vs a tile


def test_restore_command_passes_the_budget_on(fullconv_export, tmp_path, monkeypatch):
    import vae_restore.inference as inference
    from vae_restore.cli import main

    from ..conftest import write_images

    seen = []

    class Recording(inference.Restorer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(self.geometry.max_whole_pixels)

    monkeypatch.setattr(inference, "Restorer", Recording)
    write_images(tmp_path / "in", 1, size=(30, 40))
    model = str(fullconv_export[1].model)
    assert main(["restore", str(tmp_path / "in"), "--model", model, "--output", str(tmp_path / "out")]) == 0
    args = ["restore", str(tmp_path / "in"), "--model", model, "--output", str(tmp_path / "o2")]
    assert main([*args, "--max_whole_pixels", "1000"]) == 0
    assert seen == [MAX_WHOLE_PIXELS, 1000] and (tmp_path / "o2" / "img_000.png").is_file()
