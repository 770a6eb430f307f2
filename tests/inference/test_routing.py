"""`pretrained:auto`: a damage detector picks the bundled model per image, in Restorer, `restore` and `serve`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vae_restore import pretrained
from vae_restore.checksums import sha256_file
from vae_restore.cli import main
from vae_restore.errors import CheckpointError
from vae_restore.export.detector_export import DETECTOR_FILE
from vae_restore.export.manifest import manifest_path, write_manifest
from vae_restore.routing import RULE_FILE, centre_crop

BUNDLED = pretrained.PRETRAINED_DIR


@pytest.fixture(scope="module")
def even_detector(tmp_path_factory):
    """A detector graph (with its manifest) that gives every group 0.5 on every image: a rule's threshold alone
    decides. Built by hand: the real export is tested with the training command."""
    groups = ["aging", "gaussian_blur", "gaussian_noise", "jpeg"]
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Unsqueeze", ["nothing", "axis"], ["column"]),
        helper.make_node("Add", ["column", "half"], ["probabilities"]),
    ]
    constants = [
        numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        numpy_helper.from_array(np.array([1], np.int64), "axis"),
        numpy_helper.from_array(np.full((1, len(groups)), 0.5, np.float32), "half"),
    ]
    graph = helper.make_graph(
        nodes,
        "even",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", len(groups)])],
        constants,
    )
    path = tmp_path_factory.mktemp("detector") / DETECTOR_FILE
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    write_manifest(manifest_path(path), {"sha256": sha256_file(path), "groups": groups})
    return path


def install(root, detector, above: float, otherwise: str = "general") -> None:
    """A registry at `root`: the bundled `general` and `aged`, and a router that sends aging > `above` to aged."""
    for name in ("general", "aged"):
        if not (root / name).exists():
            shutil.copytree(BUNDLED / name, root / name)
    router = root / pretrained.ROUTER
    router.mkdir(exist_ok=True)
    for source in (detector, detector.with_name(detector.name + ".json")):
        shutil.copyfile(source, router / source.name)
    rule = {"detector": DETECTOR_FILE, "routes": [{"group": "aging", "above": above, "model": "aged"}]}
    (router / RULE_FILE).write_text(json.dumps({**rule, "otherwise": otherwise, "max_side": 64}))


@pytest.fixture()
def registry(tmp_path, monkeypatch, even_detector):
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    return tmp_path


def sample() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)


@pytest.mark.parametrize(("above", "chosen"), [(0.4, "aged"), (0.6, "general")])
def test_auto_restores_with_the_model_its_rule_picks(registry, even_detector, above, chosen):
    from vae_restore.inference import Restorer

    install(registry, even_detector, above)
    auto = Restorer(providers="cpu")
    assert pretrained.available() == ["aged", "general", "auto"] and auto.rule is not None
    restored, name = auto.restore_named(sample())
    assert name == chosen and auto.describe() == "pretrained:auto (aged where aging > 0.4; otherwise general)".replace(
        "0.4", f"{above:g}"
    )
    assert np.array_equal(restored, Restorer(f"pretrained:{chosen}", providers="cpu").restore(sample()))
    tiny = sample()[:6, :6]  # below the detector's 8 pixels: the `otherwise` model, not an error
    assert auto.restore_named(tiny)[1] == "general"


def test_restore_command_reports_which_model_restored_each_image(registry, even_detector, tmp_path, capsys):
    from PIL import Image

    install(registry, even_detector, 0.4)
    Image.fromarray(sample()).save(tmp_path / "a.png")
    assert main(["restore", str(tmp_path / "a.png"), "--output", str(tmp_path / "out"), "--providers", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "with pretrained:auto (aged where aging > 0.4; otherwise general)" in captured.err
    assert "by model: aged 1" in captured.out and (tmp_path / "out" / "a.png").is_file()
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert listing.startswith("auto (default): each image restored by the model its damage calls for (aged where")


def test_a_damaged_router_is_refused_with_its_file_named(registry, even_detector):
    from vae_restore.inference import Restorer

    install(registry, even_detector, 0.5)
    router = registry / pretrained.ROUTER
    (router / DETECTOR_FILE).write_bytes((router / DETECTOR_FILE).read_bytes() + b"\0")
    with pytest.raises(CheckpointError, match="detector.onnx: sha256 .* does not match"):
        Restorer(providers="cpu")
    (router / RULE_FILE).write_text('{"detector": "detector.onnx"}')
    with pytest.raises(CheckpointError, match="router.json: not a readable routing rule"):
        Restorer(providers="cpu")


def test_a_rule_needs_a_group_its_detector_scores(registry, even_detector):
    from vae_restore.inference import Restorer

    install(registry, even_detector, 0.5)
    rule_file = registry / pretrained.ROUTER / RULE_FILE
    rule = json.loads(rule_file.read_text())
    rule["routes"][0]["group"] = "moths"
    rule_file.write_text(json.dumps(rule))
    with pytest.raises(CheckpointError, match="not \\['moths'\\] which its rule routes on"):
        Restorer(providers="cpu")


def test_auto_is_not_a_model_to_fine_tune_from(registry, even_detector):
    install(registry, even_detector, 0.5)
    with pytest.raises(CheckpointError, match="pretrained:auto routes each image to one of aged, general"):
        pretrained.resolve_weights("pretrained:auto")


def test_the_detector_sees_a_bounded_centre_crop():
    image = np.zeros((3000, 41, 3), dtype=np.float32)
    assert centre_crop(image, 1024).shape == (1024, 41, 3)
    assert np.shares_memory(centre_crop(image, 1024), image)
    assert centre_crop(image[:10, :10], 1024).shape == (10, 10, 3)


def test_jpeg_blocking_tells_a_low_quality_jpeg_from_its_original_wherever_the_grid_lies():
    import io

    from PIL import Image

    from vae_restore.data.embedded import embedded_images
    from vae_restore.routing import jpeg_blocking

    clear = embedded_images()[0][1][:256, :256]
    buffer = io.BytesIO()
    Image.fromarray(clear).save(buffer, "JPEG", quality=20)
    saved = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255
    assert jpeg_blocking(clear.astype(np.float32) / 255) < 1.3 < 1.4 < jpeg_blocking(saved)
    assert jpeg_blocking(saved[3:, 5:]) == pytest.approx(jpeg_blocking(saved), rel=0.05), "the grid moved by a crop"
    assert jpeg_blocking(saved[:12, :12]) == 1.0, "fewer than two blocks: no evidence"


def test_a_rule_may_route_on_a_measure_as_well_as_on_the_detector(registry, even_detector):
    from vae_restore.inference import Restorer

    install(registry, even_detector, 0.6)  # aging (0.5) never wins
    rule_file = registry / pretrained.ROUTER / RULE_FILE
    rule = json.loads(rule_file.read_text())
    rule["routes"].append({"group": "jpeg_blocking", "above": 0.5, "model": "aged"})  # blocking is always > 0.5
    rule_file.write_text(json.dumps(rule))
    auto = Restorer(providers="cpu")
    assert auto.restore_named(sample())[1] == "aged" and set(auto.router.scores(sample() / 255.0)) == {
        "aging",
        "gaussian_blur",
        "gaussian_noise",
        "jpeg",
        "jpeg_blocking",
    }
