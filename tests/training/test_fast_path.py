"""The throughput options must not change what is learned: same seed, same losses (fp32, CPU)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from accelerate.state import AcceleratorState

from benchmarks.in_process import LoggedSteps, fit_in_process
from vae_restore.config import Config
from vae_restore.losses import loss_means
from vae_restore.training import Trainer

from ..conftest import REPO, write_images


def run_trainer(tmp_path, data, **train_overrides) -> tuple[Trainer, LoggedSteps]:
    config = Config()
    config.train = replace(
        config.train,
        stage="distorted",
        output_dir=str(tmp_path / "out"),
        max_train_steps=3,
        logging_steps=1,
        validation_steps=1000,
        checkpointing_steps=1000,
        report_to="none",
        train_batch_size=4,
        init_from=str(tmp_path / "parent.safetensors"),
        overwrite_output_dir=True,  # the variants compared run one after the other in one folder
        **train_overrides,
    )
    config.data = replace(config.data, train_data=str(data), val_crops_per_image=1)
    history = LoggedSteps()
    return fit_in_process(config.validate(), [history]), history


def run_losses(tmp_path, data, **train_overrides) -> list[float]:
    _, history = run_trainer(tmp_path, data, **train_overrides)
    return [row["train/loss"] for row in history]


def test_channels_last_path_gives_the_same_losses(tmp_path):
    from vae_restore.models import VAE, save_model

    torch.set_num_threads(1)
    data = tmp_path / "images"
    write_images(data, 4, size=(140, 150))
    save_model(VAE(), tmp_path / "parent.safetensors")
    fast = run_losses(tmp_path, data, channels_last=True)
    plain = run_losses(tmp_path, data, channels_last=False)
    assert len(fast) == 3
    assert fast == pytest.approx(plain, rel=1e-5)
    assert fast[0] != fast[-1], "training moved"


@pytest.mark.slow
def test_compiled_model_gives_the_same_losses(tmp_path):
    """`--compile` (inductor, fp32 on the CPU) only reorders floating-point sums; the mode reaches Accelerate.

    The model is compiled by Accelerate, the loss's elementwise part by the trainer; the weights it writes load.
    """
    from vae_restore.models import VAE, load_model, save_model

    torch.set_num_threads(1)
    data = tmp_path / "images"
    write_images(data, 4, size=(140, 150))
    save_model(VAE(), tmp_path / "parent.safetensors")
    trainer, history = run_trainer(tmp_path, data, compile=True, compile_mode="default")
    compiled = [row["train/loss"] for row in history]
    assert AcceleratorState().dynamo_plugin.backend.value.lower() == "inductor"
    assert AcceleratorState().dynamo_plugin.mode == "default"
    assert AcceleratorState().dynamo_plugin.to_kwargs()["dynamic"] is False
    assert getattr(trainer.loss_means, "_torchdynamo_orig_callable", None) is loss_means
    saved = load_model(tmp_path / "out" / "distorted")  # torch.compile's `_orig_mod.` prefixes stripped
    assert torch.equal(saved.encoder.conv1.weight, trainer.weights().encoder.conv1.weight.detach().cpu())
    eager = run_losses(tmp_path, data, compile=False)
    assert len(compiled) == 3
    assert compiled[0] == pytest.approx(eager[0], rel=1e-5), "the same forward pass before any update"
    assert compiled == pytest.approx(eager, rel=1e-3), "reordered sums drift a little with each update"


def test_unknown_compile_mode_is_refused():
    from vae_restore.errors import ConfigError

    config = Config()
    config.train = replace(config.train, compile=True, compile_mode="fastest")
    with pytest.raises(ConfigError, match="compile_mode must be one of"):
        config.validate()


@pytest.mark.slow
def test_throughput_benchmark_measures_both_pipelines(tmp_path):
    import subprocess
    import sys

    from ..conftest import subprocess_env

    data = tmp_path / "images"
    write_images(data, 8, size=(140, 150))
    out = tmp_path / "tp.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "launch" / "benchmark.py"),
            "throughput",
            "--data",
            str(data),
            "--batch_sizes",
            "4",
            "--steps",
            "2",
            "--reference_steps",
            "2",
            "--pad_channels_to",
            "0,8",
            "--output",
            str(out),
        ],
        env=subprocess_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    pipelines = [row["pipeline"] for row in report["rows"]]
    assert pipelines[0].startswith("original-style") and pipelines[1:] == [
        "vae-restore trainer, Gaussian noise",
        "vae-restore trainer + RGB channels padded to 8, Gaussian noise",  # the same folder, trained again
    ]
    assert all(row["images_per_s"] > 0 for row in report["rows"])
    assert report["rows"][0]["ratio_to_reference"] == 1.0
    assert all(row["timed_steps"] == 2 for row in report["rows"]), "every pipeline timed the steps asked for"


@pytest.fixture
def throughput(tmp_path, monkeypatch):
    """The throughput benchmark over two images, with a reference loop of 10 images/s that does not run."""
    from benchmarks import throughput

    write_images(tmp_path / "images", 2)
    monkeypatch.setattr(
        throughput,
        "reference_throughput",
        lambda files, device, measure_steps: {"pipeline": "ref", "batch_size": 64, "images_per_s": 10.0},
    )
    return throughput


def test_throughput_benchmark_reports_a_failed_row_and_goes_on(tmp_path, monkeypatch, throughput):
    """A compile mode or batch size the device refuses is one failed row, not the loss of every row after it."""

    def fake_trainer(config, steps, pipeline):
        if config.train.compile_mode == "reduce-overhead":
            raise RuntimeError("CUDA graphs refused")
        bs = config.train.train_batch_size
        return {"pipeline": pipeline, "batch_size": bs, "images_per_s": 20.0 * bs}

    monkeypatch.setattr(throughput, "trainer_throughput", fake_trainer)
    out = tmp_path / "tp.json"
    report = throughput.run_throughput(
        tmp_path / "images", [1], 2, [1, 2], 2, out, None, ("reduce-overhead", "default")
    )
    rows = json.loads(out.read_text())["rows"]
    assert rows == report["rows"]
    assert [(r["batch_size"], "error" in r) for r in rows[1:]] == [
        (1, False),
        (1, True),
        (1, False),
        (2, True),
        (2, False),
    ]
    assert [r["ratio_to_reference"] for r in rows if "error" not in r] == [1.0, 2.0, 2.0, 4.0]
    assert "CUDA graphs refused" in throughput.failed_rows(report)[0]["error"]


def test_throughput_benchmark_times_each_channel_padding(tmp_path, monkeypatch, throughput):
    padding_seen = []

    def fake_trainer(config, steps, pipeline):
        padding_seen.append(config.train.pad_channels_to)
        return {"pipeline": pipeline, "batch_size": config.train.train_batch_size, "images_per_s": 20.0}

    monkeypatch.setattr(throughput, "trainer_throughput", fake_trainer)
    report = throughput.run_throughput(tmp_path / "images", [1], 2, [1], 2, None, pad_channels=(0, 8))
    assert padding_seen == [0, 0, 8, 8]
    assert [row["pipeline"] for row in report["rows"][1:]] == [
        "vae-restore trainer, Gaussian noise",
        "vae-restore trainer + torch.compile (default), Gaussian noise",
        "vae-restore trainer + RGB channels padded to 8, Gaussian noise",
        "vae-restore trainer + torch.compile (default) + RGB channels padded to 8, Gaussian noise",
    ]


@pytest.mark.slow
def test_step_profile_times_the_trainer_step_and_lists_its_kernels(tmp_path):
    from benchmarks.step_profile import profile_step

    write_images(tmp_path / "images", 4)
    report = profile_step(tmp_path / "images", 2, None, tmp_path / "work", warmup=1, timed=2, profiled=1)
    step_ms = float(report.split("full step ")[1].split(" ms")[0])
    data_ms = float(report.split("data path alone ")[1].split(" ms")[0])
    assert 0 < data_ms < step_ms, report
    assert "aten::convolution" in report and "Self CPU" in report


@pytest.mark.parametrize("preset", ["original", "fullres"])
def test_padded_rgb_channels_give_the_same_outputs_and_gradients(preset):
    """Zero channels add exact zeros: padding the 3-channel layers changes kernels, not numbers."""
    from vae_restore.models import VAE, get_preset
    from vae_restore.models.channel_padding import set_channel_padding

    torch.manual_seed(0)
    model = VAE(get_preset(preset)).to(memory_format=torch.channels_last)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, 128, 128).to(memory_format=torch.channels_last)

    def logits_and_grads():
        model.zero_grad()
        out = model(x, generator=torch.Generator().manual_seed(1))
        (out.logits.square().mean() + out.mu.sum()).backward()
        return out.logits.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}

    plain_logits, plain_grads = logits_and_grads()
    padded_layers = set_channel_padding(model, 8)
    padded_logits, padded_grads = logits_and_grads()
    assert padded_layers == (3 if preset == "fullres" else 2), "the first layer(s) and the last one"
    assert model.encoder.conv1.pad_channels_to == 8
    assert padded_logits.shape == (2, 3, 128, 128)
    assert torch.allclose(padded_logits, plain_logits, atol=1e-6)
    assert all(torch.allclose(padded_grads[k], g, atol=1e-6) for k, g in plain_grads.items())
    assert {k: v.shape for k, v in model.state_dict().items()} == shapes, "weights keep their shapes"
    assert set_channel_padding(model, 0) == 0


def test_padded_rgb_channels_train_the_same(tmp_path):
    from vae_restore.models import VAE, save_model

    torch.set_num_threads(1)
    data = tmp_path / "images"
    write_images(data, 4, size=(140, 150))
    save_model(VAE(), tmp_path / "parent.safetensors")
    padded, history = run_trainer(tmp_path, data, pad_channels_to=8)
    assert padded.plain_model.decoder.conv4.pad_channels_to == 8
    plain = run_losses(tmp_path, data)
    assert [row["train/loss"] for row in history] == pytest.approx(plain, rel=1e-5)


def test_negative_channel_padding_is_refused():
    from vae_restore.errors import ConfigError

    config = Config()
    config.train = replace(config.train, pad_channels_to=-8)
    with pytest.raises(ConfigError, match="pad_channels_to must be >= 0"):
        config.validate()
