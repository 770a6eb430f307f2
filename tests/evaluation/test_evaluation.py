"""The evaluation library in-process: pairs, scores, summary, reports and the `vae-restore evaluate` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vae_restore.cli import main as cli_main
from vae_restore.data.decode import decode_rgb
from vae_restore.errors import ConfigError
from vae_restore.evaluation import EvalOptions, evaluate
from vae_restore.evaluation.baselines import BASELINES, parse_baselines
from vae_restore.evaluation.pairs import find_items, load_pair
from vae_restore.evaluation.report import GAP, format_table, read_csv
from vae_restore.metrics import METRICS, compute_metrics
from vae_restore.models import VAE, save_model

from ..conftest import write_images


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    return save_model(VAE(), tmp_path_factory.mktemp("run") / "model.safetensors", {"stage": "clear"})


@pytest.fixture(scope="module")
def clear_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clear_only")
    write_images(folder, 3, size=(150, 170), seed=1)
    return folder


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.transpose(2, 0, 1).astype(np.float64))[None]


def run(checkpoint, data, out, **kw) -> tuple[dict, list[dict[str, str]]]:
    summary = evaluate(EvalOptions(checkpoint=str(checkpoint), data=str(data), output=str(out), **kw))
    return summary, read_csv(out / "per_image.csv")


def test_clear_only_folder_with_a_named_distortion(checkpoint, clear_folder, tmp_path, capsys):
    summary, rows = run(checkpoint, clear_folder, tmp_path / "a", distortion="awgn25", num_comparisons=2)
    assert [r["image"] for r in rows] == ["img_000.png", "img_001.png", "img_002.png"]
    assert summary["num_images"] == 3 and summary["num_processes"] == 1 and summary["distortion"] == "awgn25"
    for row, item in zip(rows, find_items(clear_folder, "awgn25", None), strict=True):
        distorted, clear = load_pair(item, "awgn25", seed=0)
        expected = compute_metrics(as_tensor(distorted), as_tensor(clear))
        for metric in METRICS:
            assert float(row[f"input_{metric}"]) == pytest.approx(float(expected[metric]), abs=1e-9)
        assert 18 < float(row["input_psnr"]) < 23, "σ = 25/255 noise gives about 20 dB"
    for metric in METRICS:
        for method in ("restored", "input"):
            values = np.array([float(r[f"{method}_{metric}"]) for r in rows])
            stats = summary["metrics"][method][metric]
            assert stats["mean"] == pytest.approx(values.mean()) and stats["std"] == pytest.approx(values.std())
        gain = summary["metrics"]["restored"][metric]["mean"] - summary["metrics"]["input"][metric]["mean"]
        assert summary["gain_over_input"][metric] == pytest.approx(gain)
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["metrics"] == summary["metrics"]
    pngs = sorted((tmp_path / "a" / "comparisons").glob("*.png"))
    assert [p.name for p in pngs] == ["0000_img_000.png", "0001_img_001.png"]
    assert np.asarray(Image.open(pngs[0])).shape == (150, 3 * 170 + 2 * GAP, 3)
    assert "restored" in capsys.readouterr().out

    _, again = run(checkpoint, clear_folder, tmp_path / "b", distortion="awgn25", num_comparisons=0)
    assert again == rows, "a fixed seed scores the same pairs"
    _, other_seed = run(checkpoint, clear_folder, tmp_path / "c", distortion="awgn25", seed=1, num_images=1)
    assert other_seed[0]["input_mse"] != rows[0]["input_mse"]


def test_paired_folder_scores_the_distorted_files(checkpoint, tmp_path):
    data = tmp_path / "paired"
    write_images(data / "clear", 2, size=(140, 131), seed=2)
    write_images(data / "distorted", 2, size=(140, 131), seed=3)
    summary, rows = run(checkpoint, data, tmp_path / "out")
    assert summary["distortion"] == "paired" and len(rows) == 2
    for row in rows:
        clear = decode_rgb(data / "clear" / row["image"].split("/")[-1])
        distorted = decode_rgb(data / "distorted" / row["image"].split("/")[-1])
        expected = compute_metrics(
            torch.from_numpy(distorted).permute(2, 0, 1)[None], torch.from_numpy(clear).permute(2, 0, 1)[None]
        )
        assert float(row["input_ssim"]) == pytest.approx(float(expected["ssim"]), abs=1e-9)
        assert (int(row["width"]), int(row["height"])) == (131, 140)


def test_an_image_too_small_for_ssim_is_skipped_and_reported(checkpoint, tmp_path):
    data = tmp_path / "clear"
    write_images(data, 2, size=(40, 48), seed=6)
    Image.new("RGB", (9, 5), (90, 120, 30)).save(data / "tiny.png")
    summary, rows = run(checkpoint, data, tmp_path / "out", distortion="blur", num_comparisons=0)
    assert [r["image"] for r in rows] == ["img_000.png", "img_001.png"] and summary["num_images"] == 2
    assert len(summary["skipped"]) == 1 and "tiny.png: 9x5 is too small" in summary["skipped"][0]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["skipped"] == summary["skipped"]


def test_a_report_inside_the_data_folder_is_not_scored_next_time_and_keeps_other_files(checkpoint, tmp_path):
    data = tmp_path / "clear"
    write_images(data, 2, size=(40, 48), seed=6)
    report = data / "report"
    (report / "comparisons").mkdir(parents=True)
    (report / "comparisons" / "notes.txt").write_text("mine")
    for _ in range(2):
        summary, rows = run(checkpoint, data, report, distortion="blur")
        assert summary["num_images"] == 2 and [r["image"] for r in rows] == ["img_000.png", "img_001.png"]
    assert sorted(p.name for p in (report / "comparisons").iterdir()) == [
        "0000_img_000.png",
        "0001_img_001.png",
        "notes.txt",
    ]
    assert isinstance(summary["global_step"], int | None)


def test_a_baseline_that_cannot_restore_an_image_skips_that_image(checkpoint, tmp_path, monkeypatch):
    data = tmp_path / "clear"
    write_images(data, 1, size=(40, 48), seed=6, names=["ok.png"])
    write_images(data, 1, size=(40, 60), seed=7, names=["wide.png"])

    def picky(image):  # like CBM3D on an image smaller than its blocks
        if image.shape[1] == 60:
            raise ValueError("Image cannot be smaller than block size!")
        return image

    monkeypatch.setitem(BASELINES, "nlmeans", picky)
    summary, rows = run(checkpoint, data, tmp_path / "out", distortion="blur", baselines=["nlmeans"])
    assert [r["image"] for r in rows] == ["ok.png"] and len(summary["skipped"]) == 1
    assert "wide.png: baseline nlmeans cannot restore it (Image cannot be smaller" in summary["skipped"][0]


def test_unpaired_files_can_be_left_out_of_a_paired_evaluation(checkpoint, tmp_path):
    data = tmp_path / "paired"
    write_images(data / "clear", 2, size=(40, 48), seed=2)
    write_images(data / "distorted", 1, size=(40, 48), seed=3)
    with pytest.raises(Exception, match="no partner"):
        run(checkpoint, data, tmp_path / "out")
    summary, _ = run(checkpoint, data, tmp_path / "out", allow_unpaired=True)
    assert summary["num_images"] == 1


def test_data_and_distortion_must_agree(checkpoint, clear_folder, tmp_path):
    with pytest.raises(ConfigError, match="--distortion NAME"):
        run(checkpoint, clear_folder, tmp_path / "x")
    write_images(tmp_path / "paired" / "clear", 1, seed=4)
    write_images(tmp_path / "paired" / "distorted", 1, seed=5)
    with pytest.raises(ConfigError, match="drop --distortion"):
        run(checkpoint, tmp_path / "paired", tmp_path / "y", distortion="blur")
    with pytest.raises(ConfigError, match="unknown distortion 'fog'"):
        run(checkpoint, clear_folder, tmp_path / "z", distortion="fog")


def test_baselines_denoise_and_are_rows(checkpoint, clear_folder, tmp_path):
    summary, rows = run(
        checkpoint,
        clear_folder,
        tmp_path / "out",
        distortion="awgn25",
        num_images=2,
        baselines=["nlmeans", "tv"],
        num_comparisons=0,
    )
    for name in ("nlmeans", "tv"):
        assert summary["metrics"][name]["psnr"]["mean"] > summary["metrics"]["input"]["psnr"]["mean"] + 3
        assert all(f"{name}_{m}" in rows[0] for m in METRICS)
    assert parse_baselines("tv, nlmeans,tv") == ["tv", "nlmeans"] and parse_baselines("none") == []
    with pytest.raises(ConfigError, match="unknown baseline 'bm3d'"):
        parse_baselines("bm3d")


def test_baselines_leave_a_clean_image_nearly_alone(tmp_path):
    image = decode_rgb(write_images(tmp_path, 1, size=(96, 96), seed=7)[0]).astype(np.float64) / 255.0
    for name, fn in BASELINES.items():
        assert np.abs(fn(image) - image).mean() < 0.01, name


def test_table_lists_every_method():
    stats = {"mean": 1.0, "std": 0.5}
    table = format_table({m: dict.fromkeys(METRICS, stats) for m in ("restored", "input", "tv")})
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["method", "PSNR"] and [line.split()[0] for line in lines[2:]] == [
        "restored",
        "input",
        "tv",
    ]


def test_cli_command_writes_the_same_report(checkpoint, clear_folder, tmp_path):
    _, rows = run(checkpoint, clear_folder, tmp_path / "lib", distortion="blur", num_comparisons=0)
    code = cli_main(
        [
            "evaluate",
            "--checkpoint",
            str(checkpoint.parent),
            "--data",
            str(clear_folder),
            "--distortion",
            "blur",
            "--output",
            str(tmp_path / "cli"),
            "--num_comparisons",
            "0",
        ]
    )
    assert code == 0
    assert read_csv(tmp_path / "cli" / "per_image.csv") == rows
    assert (
        cli_main(
            ["evaluate", "--checkpoint", str(tmp_path / "nothing"), "--data", str(clear_folder), "--distortion", "blur"]
        )
        == 2
    )


def test_tensorboard_gets_the_summary_and_the_comparisons(checkpoint, clear_folder, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run(checkpoint, clear_folder, tmp_path / "tb", distortion="awgn15", num_images=2, report_to="tensorboard")
    events = EventAccumulator(str(next((tmp_path / "tb" / "logs").rglob("events.out.tfevents.*")).parent)).Reload()
    assert "eval/restored/psnr_mean" in events.Tags()["scalars"]
    assert sorted(events.Tags()["images"]) == ["eval/comparisons/img_000.png", "eval/comparisons/img_001.png"]


@pytest.mark.parametrize(
    ("option", "message"),
    [({"num_images": 0}, "--num_images"), ({"batch_size": 0}, "--batch_size"), ({"baselines": ["bm3d"]}, "bm3d")],
)
def test_bad_options_are_refused_before_any_work(checkpoint, clear_folder, tmp_path, option, message):
    with pytest.raises(ConfigError, match=message):
        run(checkpoint, clear_folder, tmp_path / "out", distortion="blur", **option)
    assert not (tmp_path / "out").exists()


def test_an_output_that_is_a_file_is_refused(checkpoint, clear_folder, tmp_path):
    (tmp_path / "report").write_text("not a folder")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        run(checkpoint, clear_folder, tmp_path / "report", distortion="blur")


def test_several_distorted_versions_of_one_clear_image_are_told_apart(checkpoint, tmp_path):
    data = tmp_path / "pairs"
    write_images(data / "clear", 1, size=(40, 48), names=["img (1).png"])
    write_images(data / "distorted", 2, size=(40, 48), seed=4, names=["img (1)_noise.png", "img (1)_blur.png"])
    _, rows = run(checkpoint, data, tmp_path / "out")
    assert sorted(r["image"] for r in rows) == ["distorted/img (1)_blur.png", "distorted/img (1)_noise.png"]


def test_gains_compare_the_same_images_when_an_input_is_already_perfect():
    from vae_restore.evaluation.scoring import gains, summarize

    perfect = {"input_psnr": float("inf"), "restored_psnr": 30.0}
    noisy = {"input_psnr": 20.0, "restored_psnr": 25.0}
    rows = [
        {**row, **{f"{m}_{k}": 0.5 for m in ("input", "restored") for k in METRICS if k != "psnr"}}
        for row in (perfect, noisy)
    ]
    assert gains(rows)["psnr"] == 5.0, "the perfect input's image is left out of both sides"
    table = format_table(summarize(rows, ["restored", "input"]))
    assert "20.00 ± 0.00 (+1 inf)" in table
