"""`launch/benchmark.py quality`: recipes, columns, data split, the table, and a smoke run on tiny data."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmarks import quality_train
from benchmarks.original_code import resize_restorer
from benchmarks.quality import Benchmark, QualityOptions, parse_mixtures
from benchmarks.quality_data import prepare_data, split_art
from benchmarks.quality_eval import Case, Column, cached_score, parse_columns, unmeasurable
from benchmarks.quality_report import NOT_MEASURED, markdown_table
from benchmarks.quality_train import Budget
from benchmarks.recipes import BASE, RECIPES, load_recipe_file, select_recipes
from vae_restore.config import Config
from vae_restore.config_io import build_config
from vae_restore.distortions.named import NAMED_DISTORTIONS
from vae_restore.errors import ConfigError
from vae_restore.models import VAE, read_metadata

from ..conftest import REPO, subprocess_env, write_images


def test_every_recipe_is_a_valid_config_and_spells_out_its_loss():
    for name, recipe in RECIPES.items():
        config = recipe.apply(Config()).validate()
        if name != "default":
            assert set(BASE) <= set(recipe.overrides), name
            assert config.loss.reconstruction == recipe.overrides["reconstruction"]
    assert RECIPES["bce"].overrides == BASE


def test_recipe_file_adds_recipes_and_refuses_unknown_keys(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("l1_light_kl:\n  reconstruction: l1\n  kl_weight: 0.01\n")
    extra = load_recipe_file(good)
    (recipe,) = select_recipes(["l1_light_kl"], extra)
    assert recipe.overrides["kl_weight"] == 0.01 and recipe.overrides["ssim_weight"] == 0.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("typo:\n  reconstrution: l1\n")
    with pytest.raises(ConfigError, match="reconstrution"):
        load_recipe_file(bad)
    with pytest.raises(ConfigError, match="unknown recipe 'nope'"):
        select_recipes(["nope"])


def test_columns_parse_and_say_why_they_cannot_be_measured(tmp_path):
    assert parse_columns("photos:awgn25, art:aged,photos:awgn25") == [Column("photos", "awgn25"), Column("art", "aged")]
    with pytest.raises(ConfigError, match="DATASET:DISTORTION"):
        parse_columns("awgn25")
    sets = {"photos": tmp_path}
    assert unmeasurable(Column("photos", "awgn25"), sets) is None
    assert "not in vae_restore.distortions.named" in unmeasurable(Column("photos", "no_such"), sets)
    assert "no 'art' images" in unmeasurable(Column("art", "awgn25"), sets)


def test_baselines_give_the_same_images_in_worker_processes():
    from benchmarks.quality_eval import restore_all
    from vae_restore.evaluation.baselines import total_variation

    rng = np.random.default_rng(0)
    images = [np.clip(0.5 + 0.1 * rng.standard_normal((40, 50, 3)), 0, 1) for _ in range(3)]
    parallel = restore_all(total_variation, images, workers=2)
    for got, image in zip(parallel, images, strict=True):
        np.testing.assert_array_equal(got, total_variation(image))


def test_art_holdout_is_disjoint_and_every_tenth():
    files = [Path(f"{i:03d}.jpg") for i in range(25)]
    train, held = split_art(files, 10)
    assert held == [files[0], files[10], files[20]]
    assert set(train).isdisjoint(held) and len(train) + len(held) == len(files)


def test_prepared_folders_follow_their_sources(tmp_path):
    """Another --train_data gets its own folder; files gone from a source leave the prepared folder too."""
    write_images(tmp_path / "a", 2)
    write_images(tmp_path / "b", 1, names=["b.png"])
    write_images(tmp_path / "art", 12, size=(40, 40))
    (tmp_path / "val").mkdir()
    first = prepare_data(tmp_path / "work", tmp_path / "a", tmp_path / "val", tmp_path / "art")
    other = prepare_data(tmp_path / "work", tmp_path / "b", tmp_path / "val", tmp_path / "art")
    assert first.train != other.train and first.eval_sets["art"] == other.eval_sets["art"]
    assert sorted(p.name for p in (other.train / "photos").iterdir()) == ["b.png"]
    assert len(list((first.train / "art").iterdir())) == 10 and len(list(first.eval_sets["art"].iterdir())) == 2
    (tmp_path / "a" / "img_001.png").unlink()
    (tmp_path / "art" / "img_011.png").unlink()
    again = prepare_data(tmp_path / "work", tmp_path / "a", tmp_path / "val", tmp_path / "art")
    assert again.train == first.train and again.num_train_images == 1 + 9
    assert sorted(p.name for p in (again.train / "photos").iterdir()) == ["img_000.png"]
    assert "img_011.png" not in {p.name for p in (again.train / "art").iterdir()}


def test_baseline_cache_is_keyed_by_pixels_not_names(tmp_path):
    column = Column("photos", "awgn25")
    clear = np.full((8, 8, 3), 0.5)
    calls = []

    def method(image):
        calls.append(1)
        return image

    def case(value):
        return Case(column, ["a.png"], [np.full((8, 8, 3), value)], [clear])

    first = cached_score(method, case(0.25), "m", tmp_path)
    assert cached_score(method, case(0.25), "m", tmp_path) == first and len(calls) == 1
    changed = cached_score(method, case(0.4), "m", tmp_path)  # same name, other pixels (another scale or seed)
    assert len(calls) == 2 and changed["psnr"] != first["psnr"]


def test_distorted_only_gets_both_stages_steps_and_stage_clears_optimiser(tmp_path, monkeypatch):
    """Under a minutes budget each stage's steps come from its own speed; distorted-only trains for their
    sum, from random weights, with stage clear's learning rate and schedule."""
    monkeypatch.setattr(
        quality_train, "steps_for_minutes", lambda config, minutes, device: 3 if config.train.stage == "clear" else 2
    )
    torch.set_num_threads(1)
    write_images(tmp_path / "train", 3, size=(140, 150))
    write_images(tmp_path / "val", 1, size=(130, 160), seed=3)
    setup = quality_train.TrainSetup(
        tmp_path / "train", tmp_path / "val", tmp_path / "work", REPO / "configs" / "clear.yaml", 2, "cpu"
    )
    mixture = REPO / "configs" / "distorted.yaml"
    (stage,) = quality_train.train_toolkit(
        setup, "original", RECIPES["bce"], "distorted_only", Budget(minutes=1.0), [mixture]
    )
    assert stage["steps"] == 3 + 2
    ran = json.loads((Path(stage["weights"]).parent / "config.json").read_text())
    expected = build_config(REPO / "configs" / "clear.yaml").optim
    assert (ran["optim"]["learning_rate"], ran["optim"]["lr_scheduler"]) == (expected.learning_rate, "constant")
    assert ran["train"]["stage"] == "distorted" and ran["data"]["noise_sigma"] == [5.0, 50.0]


def test_budget_and_run_plan_are_checked():
    with pytest.raises(ConfigError, match="exactly one"):
        Budget()
    with pytest.raises(ConfigError, match="exactly one"):
        Budget(steps=3, minutes=1.0)
    with pytest.raises(ConfigError, match="positive"):
        Budget(steps=0)
    options = QualityOptions(
        Path("t"), Path("v"), None, Path("o"), Budget(steps=1), runs=["fullres/l1", "original/bce/distorted_only"]
    )
    assert options.plan() == [("fullres", "l1", "two_stage"), ("original", "bce", "distorted_only")]
    options.runs = ["fullres"]
    with pytest.raises(ConfigError, match="PRESET/RECIPE"):
        options.plan()


def test_an_optional_baseline_whose_package_is_missing_is_no_spelling_error(monkeypatch):
    from vae_restore.evaluation import baselines

    monkeypatch.delitem(baselines.BASELINES, "cbm3d", raising=False)  # as without the `bench` extra
    options = QualityOptions(Path("t"), Path("v"), None, Path("o"), Budget(steps=1), runs=["original/bce"])
    assert options.baselines == ["nlmeans", "tv", "cbm3d"] and options.validate() is options


@pytest.mark.parametrize(
    "change, message",
    [
        ({"columns": [Column("photos", "awgn_25")]}, "unknown distortion 'awgn_25'"),
        ({"columns": [Column("phtos", "awgn25")]}, "unknown dataset 'phtos'"),
        ({"baselines": ["nope"]}, "unknown baseline 'nope'"),
        ({"art_scale": 0.0}, "--art_scale must be in"),
    ],
)
def test_misspelled_columns_and_baselines_are_refused_before_any_work(change, message):
    options = QualityOptions(Path("t"), Path("v"), None, Path("o"), Budget(steps=1), runs=["original/bce"], **change)
    with pytest.raises(ConfigError, match=message):
        options.validate()


def test_distorted_config_takes_a_mixture_per_dataset(tmp_path):
    photo, art = Path("configs/distorted_photo.yaml"), Path("configs/distorted_art.yaml")
    assert parse_mixtures("configs/distorted_photo.yaml") == (photo, {})
    assert parse_mixtures("art=configs/distorted_art.yaml") == (Path("configs/distorted.yaml"), {"art": art})
    assert parse_mixtures(f"{photo}, art={art}") == (photo, {"art": art})
    with pytest.raises(ConfigError, match="DATASET=PATH"):
        parse_mixtures("art=")
    columns = [Column("photos", "awgn25"), Column("art", "aged")]
    options = QualityOptions(
        Path("t"), Path("v"), None, Path("o"), Budget(steps=1), columns=columns, distorted_configs={"art": art}
    )
    options.check_mixtures()
    assert options.mixture_for("art") == art and options.mixture_for("photos") == Path("configs/distorted.yaml")
    options.distorted_configs = {"paintings": art}
    with pytest.raises(ConfigError, match="'paintings', which no column uses"):
        options.check_mixtures()
    (tmp_path / "other").mkdir()
    clash = tmp_path / "other" / "distorted.yaml"
    clash.write_text(Path("configs/distorted.yaml").read_text())
    options.distorted_configs = {"art": clash}
    with pytest.raises(ConfigError, match="distinct file names"):
        options.check_mixtures()
    options.distorted_configs = {"art": tmp_path / "missing.yaml"}
    with pytest.raises(ConfigError, match="does not exist"):
        options.check_mixtures()


def test_a_row_restores_each_dataset_with_its_own_model(tmp_path):
    """A method trained once per mixture scores each column with the model fine-tuned for its dataset."""
    from benchmarks.quality_eval import Case

    image = np.full((16, 16, 3), 0.5)
    cases = {c.label: Case(c, ["a"], [image], [image]) for c in (Column("photos", "awgn25"), Column("art", "aged"))}
    bench = SimpleNamespace(
        options=SimpleNamespace(work_dir=tmp_path, baseline_workers=1, seed=0, output=tmp_path),
        cases=cases,
        report={
            "device": "cpu",
            "settings": {"budget": "1 steps", "train_batch_size": 1, "num_images": 1, "seed": 0},
            "columns": [],
            "rows": [],
            "skipped_methods": {},
        },
    )
    Benchmark.add_row(bench, "m", {"photos": lambda x: x * 0.75, "art": lambda x: x * 0.5})
    scores = bench.report["rows"][0]["scores"]
    assert scores["photos:awgn25"]["psnr"] == pytest.approx(10 * math.log10(1 / 0.125**2))
    assert scores["art:aged"]["psnr"] == pytest.approx(10 * math.log10(1 / 0.25**2))


def test_table_bolds_the_best_and_marks_unmeasured_columns():
    report = {
        "columns": [
            {"label": "photos:awgn25", "not_measured": None},
            {"label": "art:aged", "not_measured": "later"},
        ],
        "rows": [
            {"method": "a", "scores": {"photos:awgn25": {"psnr": 20.0, "ssim": 0.5}}},
            {"method": "b", "scores": {"photos:awgn25": {"psnr": 25.0, "ssim": 0.4}}},
        ],
    }
    lines = markdown_table(report).splitlines()
    assert lines[0] == "| method | photos:awgn25 PSNR | photos:awgn25 SSIM | art:aged PSNR | art:aged SSIM |"
    assert lines[2] == f"| a | 20.00 | **0.5000** | {NOT_MEASURED} | {NOT_MEASURED} |"
    assert lines[3] == f"| b | **25.00** | 0.4000 | {NOT_MEASURED} | {NOT_MEASURED} |"


def test_original_code_restores_by_resizing_to_128_and_back():
    restore = resize_restorer(VAE().eval(), torch.device("cpu"))
    image = np.random.default_rng(0).random((70, 300, 3))
    out = restore(image)
    assert out.shape == image.shape and out.dtype == np.float64 and out.min() >= 0 and out.max() <= 1


def run_benchmark(args: list[str]) -> None:
    """`python launch/benchmark.py quality ARGS` in a subprocess, as users run it."""
    result = subprocess.run(
        [sys.executable, str(REPO / "launch" / "benchmark.py"), "quality", *args],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


@pytest.mark.slow
def test_smoke_run_writes_the_table_with_every_row_and_column(tmp_path):
    write_images(tmp_path / "train", 3, size=(140, 150))
    # Small images to score: every method restores every column, CBM3D included (seconds per image).
    write_images(tmp_path / "val", 2, size=(80, 96), seed=3)
    write_images(tmp_path / "art", 4, size=(176, 160), seed=4)
    output = tmp_path / "out"
    args = ["--budget_steps", "2", "--train_batch_size", "2", "--num_images", "1", "--device", "cpu"]
    args += ["--runs", "original/bce,residual/charbonnier_ema,original/bce/distorted_only"]
    args += ["--columns", "photos:awgn25,photos:jpeg20,art:awgn50,art:aged", "--baselines", "nlmeans,tv,cbm3d"]
    args += ["--train_data", str(tmp_path / "train"), "--val_data", str(tmp_path / "val")]
    args += ["--art", str(tmp_path / "art"), "--output", str(output)]
    args += ["--distorted_config", "configs/distorted.yaml,art=configs/distorted_art.yaml"]
    run_benchmark(args)
    report = json.loads((output / "quality.json").read_text())
    from vae_restore.evaluation.baselines import BASELINES

    classical = ["nlmeans", "tv"] + (["cbm3d"] if "cbm3d" in BASELINES else [])
    expected = ["distorted input", *classical, "original code (resize to 128, BCE+KL)"]
    expected += ["original / bce", "residual / charbonnier_ema", "original / bce / distorted only"]
    assert [r["method"] for r in report["rows"]] == expected
    assert ("cbm3d" in report["skipped_methods"]) == ("cbm3d" not in BASELINES)
    labels = [c["label"] for c in report["columns"]]
    assert labels == ["photos:awgn25", "photos:jpeg20", "art:awgn50", "art:aged"]
    measured = [c["label"] for c in report["columns"] if not c["not_measured"]]
    assert ("art:aged" in measured) == ("aged" in NAMED_DISTORTIONS)
    for row in report["rows"]:
        for label in measured:
            assert all(math.isfinite(row["scores"][label][m]) for m in ("psnr", "ssim")), (row["method"], label)
    mixtures = ["configs/distorted.yaml", "configs/distorted_art.yaml"]  # photos, then art: one fine-tune each
    assert report["settings"]["distorted_config"] == dict(zip(["photos", "art"], mixtures, strict=True))
    trained = report["rows"][-1]["training"]
    assert [(s["stage"], s["config"], s["steps"]) for s in trained] == [("distorted", m, 4) for m in mixtures]
    original = report["rows"][len(classical) + 1]["training"]  # the same mixtures as the toolkit's rows
    assert [(s["stage"], s.get("config")) for s in original] == [("clear", None)] + [("distorted", m) for m in mixtures]
    settings = report["settings"]
    assert settings["art_scale"] == 0.5 and torch.__version__.startswith(settings["versions"]["torch"])
    two_stage = report["rows"][-3]["training"]
    assert [(s["stage"], s["steps"]) for s in two_stage] == [("clear", 2), ("distorted", 2), ("distorted", 2)]
    assert [s["config"] for s in two_stage[1:]] == mixtures
    weights = [Path(s["weights"]) for s in two_stage]
    assert all(w.is_file() for w in weights) and len(set(weights)) == 3
    assert all(read_metadata(w)["parent"] == str(weights[0]) for w in weights[1:]), "both fine-tune the clear model"
    table = (output / "quality.md").read_text()
    assert table.count("\n| ") >= len(expected) + 1 and "| original / bce |" in table
    assert "distorted (distorted) 2 in" in table and "distorted (distorted_art) 2 in" in table
    from benchmarks.quality_train import machine_precision

    shapes = {
        (s["train_batch_size"], s["crop_size"], s["mixed_precision"])
        for r in report["rows"][-3:]
        for s in r["training"]
    }
    assert shapes == {(2, 128, machine_precision("cpu"))}, "every stage trained as set, in the machine's precision"
    assert "2 in " in table and " (2 × 128², " in table
    input_row = report["rows"][0]["scores"]["photos:awgn25"]
    assert input_row["psnr"] < report["rows"][1]["scores"]["photos:awgn25"]["psnr"], "NL-means denoises"


@pytest.mark.slow
def test_minutes_budget_is_calibrated_into_steps(tmp_path):
    write_images(tmp_path / "train", 3, size=(140, 150))
    write_images(tmp_path / "val", 1, size=(130, 160), seed=3)
    output = tmp_path / "out"
    args = ["--budget_minutes", "0.05", "--train_batch_size", "2", "--num_images", "1", "--device", "cpu"]
    args += ["--runs", "original/l1", "--columns", "photos:awgn25", "--baselines", "none", "--no_original_code"]
    args += ["--train_data", str(tmp_path / "train"), "--val_data", str(tmp_path / "val"), "--art", "none"]
    args += ["--output", str(output)]
    run_benchmark(args)
    (row,) = json.loads((output / "quality.json").read_text())["rows"][1:]
    for stage in row["training"]:
        assert stage["steps"] >= 1
        assert stage["seconds"] < 3 * 60 * 0.05 + 30  # about the budget, not the whole default


@pytest.mark.parametrize("path", ["configs/recipes_fullconv.yaml", "configs/recipes_fullconv_choices.yaml"])
def test_shipped_recipe_files_load(path):
    recipes = load_recipe_file(REPO / path)
    assert recipes and all(r.overrides["reconstruction"] == "l1" for r in recipes.values())


def test_each_recipe_choice_changes_one_thing_of_base():
    recipes = load_recipe_file(REPO / "configs/recipes_fullconv_choices.yaml")
    base = recipes.pop("base").overrides
    assert base == load_recipe_file(REPO / "configs/recipes_fullconv.yaml")["fullconv_l1"].overrides
    for name, recipe in recipes.items():
        changed = {k for k in {*base, *recipe.overrides} if base.get(k) != recipe.overrides.get(k)}
        assert len(changed) == 1 or changed == {"lr_scheduler", "lr_warmup_steps"}, name  # a schedule is one choice
