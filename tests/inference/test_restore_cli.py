"""`vae-restore restore INPUT... --model model.onnx --output OUT_DIR` and `vae-restore sample-image`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vae_restore import image_scores
from vae_restore.cli import main
from vae_restore.data.embedded import embedded_images
from vae_restore.inference import Restorer

from ..conftest import REPO, subprocess_env, write_images
from ..onnx_models import exported_model


@pytest.fixture(scope="session")
def model_path(tmp_path_factory):
    return exported_model(tmp_path_factory)[1]


def test_files_folders_and_globs_keep_their_names(model_path, tmp_path, capsys):
    photos = write_images(tmp_path / "in" / "photos", 2, size=(100, 150))
    nested = write_images(tmp_path / "in" / "photos" / "sub", 1, size=(140, 60), seed=1, names=["deep.png"])
    loose = write_images(tmp_path / "in" / "loose", 2, size=(64, 64), seed=2, names=["a.png", "b.jpg"])
    out = tmp_path / "out"
    args = [str(tmp_path / "in" / "photos"), str(tmp_path / "in" / "loose" / "*.png"), str(loose[1])]
    assert main(["restore", *args, "--model", str(model_path), "--output", str(out)]) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a.png", "b.jpg", "img_000.png", "img_001.png", "sub/deep.png"]
    restorer = Restorer(model_path)
    for source, target in [(photos[0], out / "img_000.png"), (nested[0], out / "sub" / "deep.png")]:
        np.testing.assert_array_equal(np.asarray(Image.open(target)), restorer.restore(source))
    assert Image.open(out / "b.jpg").size == (64, 64)
    assert "restored 5 of 5" in capsys.readouterr().out


def test_a_failing_file_is_reported_and_the_rest_continue(model_path, tmp_path, capsys):
    write_images(tmp_path / "in", 2, size=(50, 50))
    (tmp_path / "in" / "broken.png").write_bytes(b"truncated")
    out = tmp_path / "out"
    code = main(
        [
            "restore",
            str(tmp_path / "in"),
            str(tmp_path / "nothing*.png"),
            "--model",
            str(model_path),
            "--output",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["img_000.png", "img_001.png"]
    assert "restored 2 of 4" in captured.out
    assert "broken.png: not a readable image" in captured.out and "no image file matches" in captured.out


def test_globs_keep_image_files_and_named_files_are_tried(model_path, tmp_path, capsys):
    write_images(tmp_path / "in", 1, size=(40, 40))
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert main(["restore", str(tmp_path / "in" / "*"), "--model", str(model_path), "--output", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == ["img_000.png"]
    assert "restored 1 of 1" in capsys.readouterr().out
    notes = str(tmp_path / "in" / "notes.txt")
    assert main(["restore", notes, "--model", str(model_path), "--output", str(tmp_path / "out2")]) == 1
    assert "notes.txt: not a readable image" in capsys.readouterr().out
    assert main(["restore", str(tmp_path / "in" / "*.txt"), "--model", str(model_path), "--output", str(out)]) == 1
    assert "no image file matches" in capsys.readouterr().out


def test_an_onnxruntime_failure_on_one_file_is_reported_and_the_rest_continue(
    model_path, tmp_path, capsys, monkeypatch
):
    """onnxruntime's errors (out of memory above all) derive from Exception only, not from RuntimeError."""
    from onnxruntime import InferenceSession
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail

    big = write_images(tmp_path / "in", 1, size=(300, 300), names=["big.png"])[0]
    small = write_images(tmp_path / "in", 1, size=(100, 100), seed=1, names=["small.png"])[0]
    run = InferenceSession.run

    def out_of_memory_above_one_tile(self, outputs, feeds, *args, **kwargs):
        if len(next(iter(feeds.values()))) > 1:
            raise Fail("Failed to allocate memory for requested buffer")
        return run(self, outputs, feeds, *args, **kwargs)

    monkeypatch.setattr(InferenceSession, "run", out_of_memory_above_one_tile)
    out = tmp_path / "out"
    assert main(["restore", str(big), str(small), "--model", str(model_path), "--output", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "restored 1 of 2" in printed and "big.png: onnxruntime failed on a batch of" in printed
    assert "--batch_size" in printed and (out / "small.png").is_file() and not (out / "big.png").exists()
    assert main(["restore", str(big), "--model", str(model_path), "--output", str(out), "--batch_size", "1"]) == 0


def test_a_model_file_onnxruntime_cannot_load_is_one_clear_error(model_path, tmp_path, capsys):
    import json

    from vae_restore.models import sha256_file

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf" * 10)
    manifest = json.loads(model_path.with_name(model_path.name + ".json").read_text())
    manifest["sha256"] = sha256_file(broken)
    broken.with_name("broken.onnx.json").write_text(json.dumps(manifest))
    image = write_images(tmp_path / "in", 1, size=(40, 40))[0]
    assert main(["restore", str(image), "--model", str(broken), "--output", str(tmp_path / "out")]) == 2
    assert f"error: onnxruntime cannot load {broken}" in capsys.readouterr().err


@pytest.mark.parametrize("argument", [{"overlap": 16.5}, {"batch_size": 2.5}, {"threads": "2"}, {"max_pixels": 1e6}])
def test_restorer_arguments_must_be_whole_numbers(model_path, argument):
    with pytest.raises(ValueError, match=f"{next(iter(argument))} must be a whole number"):
        Restorer(model_path, **argument)


def test_float_pixels_a_rounding_error_outside_zero_one_are_clipped_not_refused(model_path):
    restorer = Restorer(model_path)
    image = np.full((20, 30, 3), 0.5)
    image[0, 0], image[0, 1] = -1e-9, 1 + 1e-7
    assert restorer.restore(image).shape == (20, 30, 3)
    image[0, 0] = -0.01
    with pytest.raises(ValueError, match=r"float images must be in \[0, 1\]"):
        restorer.restore(image)


def test_max_pixels_bounds_the_input_files(model_path, tmp_path, capsys, monkeypatch):
    image = write_images(tmp_path / "in", 1, size=(40, 40))[0]
    out = tmp_path / "out"
    args = ["restore", str(image), "--model", str(model_path), "--output", str(out)]
    assert main([*args, "--max_pixels", "1000"]) == 1
    printed = capsys.readouterr().out
    assert "40x40 = 1600 pixels, more than the limit of 1000 pixels" in printed and "--max_pixels" in printed
    assert not out.exists()
    with pytest.raises(ValueError, match="--max_pixels"):
        Restorer(model_path, max_pixels=1000).restore(image)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 700)  # PIL itself would refuse 1600 pixels, over twice this
    with pytest.raises(ValueError, match="limit of 700 pixels.*--max_pixels"):
        Restorer(model_path).restore(image)
    assert main([*args, "--max_pixels", "1600"]) == 0
    assert Image.MAX_IMAGE_PIXELS == 700, "PIL's own limit is restored after decoding"
    monkeypatch.undo()
    assert Image.open(out / image.name).size == (40, 40)
    assert main([*args, "--max_pixels", "0"]) == 2 and "max_pixels must be at least 1" in capsys.readouterr().err


def test_never_writes_onto_an_input(model_path, tmp_path, capsys):
    paths = write_images(tmp_path / "in", 2, size=(40, 40))
    before = [p.read_bytes() for p in paths]
    code = main(["restore", str(tmp_path / "in"), "--model", str(model_path), "--output", str(tmp_path / "in")])
    assert code == 2 and "would be written onto the input" in capsys.readouterr().err
    assert [p.read_bytes() for p in paths] == before and len(list((tmp_path / "in").iterdir())) == 2


def test_an_output_folder_inside_the_input_folder_is_not_read_as_input_next_time(model_path, tmp_path, capsys):
    write_images(tmp_path / "in", 2, size=(40, 40))
    args = ["restore", str(tmp_path / "in"), "--model", str(model_path), "--output", str(tmp_path / "in" / "restored")]
    assert main(args) == 0
    assert main(args) == 0 and "restored 2 of 2" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "in" / "restored").rglob("*")) == ["img_000.png", "img_001.png"]
    args[1] = str(tmp_path / "in" / "**" / "*.png")  # a glob that also reaches the output folder
    assert main(args) == 0 and "restored 2 of 2" in capsys.readouterr().out
    expanded = sorted(str(p) for p in (tmp_path / "in").iterdir())  # the shell's `in/*`: the output folder too
    assert main(["restore", *expanded, *args[2:]]) == 0
    printed = capsys.readouterr()
    assert "restored 2 of 2" in printed.out and "is the --output folder, left out" in printed.err


def test_an_output_that_is_a_file_is_refused_before_any_work(model_path, tmp_path, capsys):
    write_images(tmp_path / "in", 1, size=(40, 40))
    (tmp_path / "taken").write_text("a file")
    code = main(["restore", str(tmp_path / "in"), "--model", str(model_path), "--output", str(tmp_path / "taken")])
    assert code == 2 and "is a file; name a folder" in capsys.readouterr().err


def test_restored_tiffs_of_every_colour_type_open_and_gifs_become_png(model_path, tmp_path):
    """A TIFF's own layout tags (bit depth, colour type, samples) must not be copied onto the RGB output."""
    pixels = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    rgb = Image.fromarray(pixels)
    (tmp_path / "in").mkdir()
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for mode in ("L", "RGBA", "CMYK", "1", "RGB"):
        rgb.convert(mode).save(tmp_path / "in" / f"{mode}.tif", icc_profile=srgb if mode == "CMYK" else None)
    rgb.save(tmp_path / "in" / "anim.gif")
    names = sorted(str(p) for p in (tmp_path / "in").iterdir())
    assert main(["restore", *names, "--model", str(model_path), "--output", str(tmp_path / "out")]) == 0
    for mode in ("L", "RGBA", "CMYK", "1", "RGB"):
        with Image.open(tmp_path / "out" / f"{mode}.tif") as out:
            out.load()
            assert (out.mode, out.size) == ("RGB", (40, 30)), mode
            assert mode == "RGB" or "icc_profile" not in out.info, "a CMYK or grey profile misdescribes RGB"
    with Image.open(tmp_path / "out" / "anim.gif.png") as out:
        assert (out.format, out.mode) == ("PNG", "RGB"), "not quantised to a 256-colour palette"


def test_two_inputs_with_one_output_name_are_refused(model_path, tmp_path, capsys):
    a = write_images(tmp_path / "a", 1, size=(40, 40))
    b = write_images(tmp_path / "b", 1, size=(40, 40))
    code = main(["restore", str(a[0]), str(b[0]), "--model", str(model_path), "--output", str(tmp_path / "out")])
    assert code == 2 and "would both be written" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_outputs_keep_the_colour_profile_and_exif_and_any_name_gets_a_format(model_path, tmp_path):
    from PIL import ImageCms, JpegImagePlugin

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    pixels = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "ACME"  # rotated 90° on display; the camera's make
    (tmp_path / "in").mkdir()
    Image.fromarray(pixels).save(tmp_path / "in" / "photo.jpg", icc_profile=srgb, exif=exif.tobytes())
    Image.fromarray(pixels).save(tmp_path / "in" / "scan", format="PNG")  # a file with no suffix
    names = [str(tmp_path / "in" / "photo.jpg"), str(tmp_path / "in" / "scan")]
    assert main(["restore", *names, "--model", str(model_path), "--output", str(tmp_path / "out")]) == 0
    with Image.open(tmp_path / "out" / "photo.jpg") as out:
        assert out.size == (30, 50), "the pixels come out upright"
        assert out.info["icc_profile"] == srgb
        assert out.getexif()[0x0112] == 1 and out.getexif()[0x010F] == "ACME"
        assert JpegImagePlugin.get_sampling(out) == 0, "4:4:4, no chroma subsampling added"
    assert Image.open(tmp_path / "out" / "scan.png").size == (50, 30)


@pytest.mark.parametrize("bad", [["s/noext"], ["s/"], ["a.png", "--noise", "-5"], ["a.png", "--noise", "nan"]])
def test_sample_image_refuses_a_name_without_format_and_a_bad_sigma(tmp_path, monkeypatch, capsys, bad):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["sample-image", "astronaut", *bad])
    assert e.value.code == 2 and "Traceback" not in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.*"))


def test_sample_image_writes_an_embedded_sample(tmp_path):
    assert main(["sample-image", "astronaut", str(tmp_path / "a.png")]) == 0
    assert Image.open(tmp_path / "a.png").size == (512, 512)
    assert main(["sample-image", "hubble_deep_field", str(tmp_path / "h.png"), "--size", "300x200"]) == 0
    assert Image.open(tmp_path / "h.png").size == (300, 200)
    assert main(["sample-image", "astronaut", str(tmp_path / "n.png"), "--noise", "25"]) == 0
    noise = np.asarray(Image.open(tmp_path / "n.png"), np.float64) - np.asarray(Image.open(tmp_path / "a.png"))
    assert 20 < noise.std() < 26  # σ 25, a little less where clipping at 0 and 255 cuts it


def test_sample_image_writes_a_clear_copy_and_restore_scores_against_it(model_path, tmp_path, capsys):
    noisy, clear = tmp_path / "noisy.png", tmp_path / "clear.png"
    assert main(["sample-image", "astronaut", str(noisy), "--noise", "25", "--clear_copy", str(clear)]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(clear)), dict(embedded_images())["astronaut"])
    capsys.readouterr()
    args = ["restore", str(noisy), "--model", str(model_path), "--output", str(tmp_path / "out")]
    assert main([*args, "--reference", str(clear)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if " vs " in line)
    restored = np.asarray(Image.open(tmp_path / "out" / "noisy.png"))
    reference, distorted = np.asarray(Image.open(clear)), np.asarray(Image.open(noisy))
    before, after = image_scores.psnr(distorted, reference), image_scores.psnr(restored, reference)
    ssim_after = image_scores.ssim(restored, reference)
    assert f"input PSNR {before:.2f} dB" in line and f"restored PSNR {after:.2f} dB, SSIM {ssim_after:.4f}" in line
    assert 19 < before < 22  # σ 25 on the 0-255 scale


def test_restore_reference_is_refused_unless_it_fits_one_input(model_path, tmp_path, capsys):
    images = write_images(tmp_path / "in", 2, size=(40, 50))
    small = write_images(tmp_path / "ref", 1, size=(30, 30))[0]
    base = ["--model", str(model_path), "--output", str(tmp_path / "out")]
    assert main(["restore", str(tmp_path / "in"), *base, "--reference", str(images[0])]) == 2
    assert "--reference scores one input image" in capsys.readouterr().err
    assert main(["restore", str(images[0]), *base, "--reference", str(tmp_path / "missing.png")]) == 2
    assert "missing.png: no such file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists(), "refused before anything ran"
    assert main(["restore", str(images[0]), *base, "--reference", str(small)]) == 1
    assert "must have the input's size" in capsys.readouterr().out


def test_sample_image_refuses_a_clear_copy_onto_its_output(tmp_path, capsys):
    path = tmp_path / "a.png"
    assert main(["sample-image", "astronaut", str(path), "--noise", "25", "--clear_copy", str(path)]) == 2
    assert "is the noisy output's path" in capsys.readouterr().err
    assert not path.exists()


@pytest.mark.slow
def test_restore_runs_in_the_inference_only_install(model_path, tmp_path):
    """`.[infer]` has numpy, pillow and onnxruntime only: every module of the `train` extra is made
    unimportable; restore still works (a line per image instead of tqdm's bar), and a command that needs
    training modules says which install it needs."""
    write_images(tmp_path / "in", 2, size=(70, 90))
    code = (
        "import sys\n"
        "from vae_restore.cli_common import TRAINING_MODULES\n"
        "sys.modules.update(dict.fromkeys(TRAINING_MODULES))\n"
        "from vae_restore.cli import main\n"
        f"code = main(['restore', {str(tmp_path / 'in' / '*.png')!r}, '--model', {str(model_path)!r}, "
        f"'--output', {str(tmp_path / 'out')!r}])\n"
        "assert code == 0, code\n"
        f"code = main(['restore', {str(tmp_path / 'in' / 'img_000.png')!r}, '--model', {str(model_path)!r}, "
        f"'--output', {str(tmp_path / 'scored')!r}, '--reference', {str(tmp_path / 'in' / 'img_000.png')!r}])\n"
        "assert code == 0, code\n"
        "sys.exit(main(['presets']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "[2/2]" in result.stderr and "restored 2 of 2" in result.stdout
    assert "input PSNR inf dB, SSIM 1.0000 | restored PSNR" in result.stdout, "scored without torch"
    assert "this command needs the train extra: pip install 'vae-restore[train]' (in a clone" in result.stderr
    assert Image.open(tmp_path / "out" / "img_000.png").size == (90, 70)
    hidden = "import runpy, sys\nfrom vae_restore.cli_common import TRAINING_MODULES\n"
    hidden += "sys.modules.update(dict.fromkeys(TRAINING_MODULES))\n"
    for script in ("launch/train.py", "export/onnx.py"):
        run = hidden + f"sys.argv = [{script!r}, '--help']\n"
        run += f"runpy.run_path({str(REPO / script)!r}, run_name='__main__')\n"
        result = subprocess.run([sys.executable, "-c", run], env=subprocess_env(), capture_output=True, text=True)
        assert result.returncode == 2 and "Traceback" not in result.stderr, (script, result.stderr[-3000:])
        assert "is not installed; this command needs the train extra" in result.stderr, script


def test_install_extras_keep_inference_free_of_training_packages():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from ..conftest import REPO

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {dep.split(">")[0].split(";")[0].strip().lower() for dep in project["dependencies"]}
    infer = {dep.split(">")[0].strip().lower() for dep in project["optional-dependencies"]["infer"]}
    assert names == {"numpy", "pillow"} and infer == {"onnxruntime", "onnxruntime-gpu"}
