"""The distortion preview grid and the data-path benchmark, as library calls and as launch/ scripts."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from benchmarks.data_path import benchmark_data_path, markdown_table
from vae_restore.config import DistortionConfig
from vae_restore.distortions import distortions_from_config
from vae_restore.distortions.preview import LABEL_HEIGHT, preview_grid

from ..conftest import REPO, launch_module, subprocess_env, write_images


def test_preview_grid_has_a_labelled_column_per_distortion_and_a_row_per_image(tmp_path):
    write_images(tmp_path, 3, size=(150, 170))
    grid = preview_grid(tmp_path, rows=2, zoom=1)
    columns = 1 + len(distortions_from_config(DistortionConfig(), (5.0, 50.0))) + 2  # clear, each, mixture, aged
    assert grid.size == (columns * 132, LABEL_HEIGHT + 2 * 132)
    pixels = np.asarray(grid)
    tile = lambda r, c: pixels[LABEL_HEIGHT + r * 132 + 2 : LABEL_HEIGHT + r * 132 + 130, c * 132 + 2 : c * 132 + 130]  # noqa: E731
    assert not np.array_equal(tile(0, 0), tile(1, 0))  # two different crops
    for c in range(1, columns):
        assert not np.array_equal(tile(0, 0), tile(0, c)), f"column {c} shows the clear crop unchanged"
    assert (pixels[:LABEL_HEIGHT] < 128).any()  # labels are drawn


def test_preview_without_data_uses_the_embedded_samples():
    grid = preview_grid(None, rows=3, zoom=1, seed=1)
    assert grid.size[1] == LABEL_HEIGHT + 3 * 132
    assert preview_grid(None, rows=3, zoom=1, seed=2).tobytes() != grid.tobytes(), "the seed picks the images"


def run_script(name: str, *args: str) -> str:
    """Run launch/NAME with ARGS as a user would; its standard output."""
    cmd = [sys.executable, str(REPO / "launch" / name), *args]
    return subprocess.run(cmd, check=True, env=subprocess_env(), capture_output=True, text=True, timeout=300).stdout


def test_preview_script_writes_a_png(tmp_path):
    write_images(tmp_path / "imgs", 2, size=(140, 140))
    out = tmp_path / "grid.png"
    recipe = str(REPO / "configs" / "distorted_art.yaml")
    run_script("preview_distortions.py", "--data", str(tmp_path / "imgs"), "--output", str(out), "--rows", "2",
               "--config", recipe)  # fmt: skip
    assert Image.open(out).size[1] == LABEL_HEIGHT + 2 * 260
    for flag in ("--rows", "--zoom"):
        refused = subprocess.run(
            [sys.executable, str(REPO / "launch" / "preview_distortions.py"), "--data", ".", flag, "0"],
            capture_output=True,
            text=True,
        )
        assert refused.returncode == 2 and f"{flag}: must be at least 1" in refused.stderr


def test_benchmark_times_every_pipeline(tmp_path):
    write_images(tmp_path, 3, size=(140, 150))
    mixture = DistortionConfig(p_gaussian_noise=0.5, p_scratches=0.5)
    info, rows = benchmark_data_path(tmp_path, batch_size=4, steps=1, warmup=0, mixtures={"mine": mixture})
    assert info["images"] == 3 and info["decode_s"] > 0
    names = [r.name for r in rows]
    assert names[0] == "crops only" and names[-1] == "crops + mixture mine" and "crops + jpeg" in names
    assert all(r.images_per_s > 0 and r.ms_per_batch > 0 and r.images_per_cpu_s > 0 for r in rows)
    assert markdown_table(rows).count("\n") == len(rows) + 1


def test_benchmark_script_prints_a_table(tmp_path):
    write_images(tmp_path / "imgs", 2, size=(140, 140))
    out = run_script("benchmark_data.py", "--data", str(tmp_path / "imgs"), "--batch_size", "4", "--steps", "1",
                     "--threads", "1")  # fmt: skip
    assert "| crops + mixture" not in out and "| crops only |" in out
    assert "2 images decoded" in out


@pytest.mark.parametrize(
    "script, args, message",
    [
        ("benchmark", ["throughput", "--data", ".", "--batch_sizes", "64,0"], "must be at least 1"),
        ("benchmark", ["throughput", "--data", ".", "--mixture_config", "nope.yaml"], "nope.yaml does not exist"),
        ("benchmark", ["throughput", "--data", ".", "--output", "no/such/dir/t.json"], "not in an existing folder"),
        ("benchmark", ["profile", "--data", ".", "--timed_steps", "0"], "must be at least 1"),
        ("benchmark_inference", ["--repeats", "0"], "must be at least 1"),
        ("benchmark_inference", ["--overlap", "128"], "overlap must be at least 0 and less than"),
        ("benchmark_inference", ["--json", "no/such/dir/x.json"], "not in an existing folder"),
        ("benchmark_data", ["--data", ".", "--device", "nodevice"], "--device"),
        ("benchmark_data", ["--data", ".", "--batch_size", "0"], "must be at least 1"),
        ("preview_distortions", ["--output", "grid"], "name the image format"),
        ("preview_distortions", ["--output", "no/such/dir/g.png"], "not in an existing folder"),
    ],
)
def test_benchmark_scripts_refuse_bad_arguments_before_any_work(script, args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        launch_module(script).main(args)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_the_baselines_of_the_trainer_skip_unreadable_files_as_the_trainer_does(tmp_path):
    from benchmarks.reference_loop import readable_files
    from vae_restore.errors import DataError

    good = write_images(tmp_path, 2)
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert readable_files([*good, tmp_path / "empty.jpg"]) == good
    with pytest.raises(DataError, match="none of the 1 image file"):
        readable_files([tmp_path / "empty.jpg"])
