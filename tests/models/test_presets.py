"""Every preset: listed size and FLOPs, shapes, its optional parts doing what they claim, save/load, ONNX export."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import save_file

from vae_restore.errors import CheckpointError, ConfigError
from vae_restore.export.pipeline import export_onnx
from vae_restore.export.validate import real_tiles
from vae_restore.models import PRESETS, VAE, get_preset, load_model, save_model
from vae_restore.models.cost import measure_cost
from vae_restore.models.presets import COSTS, Preset
from vae_restore.models.vae_arch import input_logits

NAMES = sorted(PRESETS)
FC_NAMES = [name for name in NAMES if not PRESETS[name].fully_convolutional]


@pytest.fixture(scope="module")
def models() -> dict[str, VAE]:
    torch.manual_seed(0)
    return {name: VAE(get_preset(name)).eval() for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_listed_parameters_and_flops_match_the_model(name):
    assert measure_cost(get_preset(name)) == COSTS[name]


def test_original_cost_is_the_spec_figure():
    assert COSTS["original"].parameters == 18_371_523
    assert abs(COSTS["original"].gflops - 0.46) < 0.01  # the original VAE: about 0.46 GFLOP per 128×128 tile


@pytest.mark.parametrize("name", FC_NAMES)
def test_forward_shapes_and_range(models, name):
    model, preset = models[name], get_preset(name)
    x = torch.rand(2, 3, 128, 128)
    mu, logvar, skips = model.encoder(x)
    assert mu.shape == logvar.shape == (2, preset.latent_dim)
    assert [tuple(s.shape[1:]) for s in skips] == list(preset.skip_shapes().values())
    out = model.restore(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    model.train()
    try:
        sampled = model(x)
    finally:
        model.eval()
    assert sampled.logits.shape == x.shape and torch.isfinite(sampled.logits).all()


def test_residual_output_is_the_input_when_the_correction_is_zero():
    model = VAE(get_preset("fullres")).eval()
    with torch.no_grad():
        model.decoder.head.weight.zero_()
        model.decoder.head.bias.zero_()
    x = torch.rand(2, 3, 128, 128) * 0.98 + 0.01
    assert torch.allclose(model.restore(x), x, atol=1e-5)
    assert torch.allclose(input_logits(torch.tensor([0.0, 1.0])), torch.logit(torch.tensor([1e-3, 1 - 1e-3])))


def test_full_resolution_skip_reaches_the_output(models):
    model = models["fullres"]
    x = torch.rand(1, 3, 128, 128)
    mu, _, skips = model.encoder(x)
    base = model.decoder(mu, skips, x)
    bumped = (*skips[:3], skips[3] + 1.0)
    assert (model.decoder(mu, bumped, x) - base).abs().max() > 1e-3


def test_refine_layers_are_in_the_state_dict(models):
    names = set(models["refine"].state_dict())
    assert {"decoder.refine.0.weight", "decoder.refine.1.weight", "decoder.head.weight"} <= names
    assert "encoder.conv0.weight" not in names and "encoder.conv0.weight" in models["fullres"].state_dict()


def test_inconsistent_presets_are_refused():
    with pytest.raises(ConfigError, match="refine_channels"):
        Preset(name="bad", full_res_skip=True)
    with pytest.raises(ConfigError, match="multiple of 16"):
        Preset(name="bad", image_size=100)


def test_custom_preset_round_trips_through_the_weights_file(tmp_path):
    custom = Preset(name="custom_small", channels=(8, 16, 32, 64), hidden_dim=64, latent_dim=16, residual=True)
    torch.manual_seed(0)
    model = VAE(custom).eval()
    save_model(model, tmp_path / "model.safetensors")
    loaded = load_model(tmp_path)
    assert loaded.preset == custom
    x = torch.rand(2, 3, 128, 128)
    assert torch.equal(loaded.restore(x), model.restore(x))


def test_weights_written_before_the_new_preset_fields_still_load(tmp_path):
    old_fields = {"name": "old_custom", "channels": [8, 16, 32, 64], "hidden_dim": 64, "latent_dim": 16}
    old_fields |= {"image_size": 128, "in_channels": 3}
    model = VAE(Preset.from_dict(old_fields))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = {"format": "pt", "preset": "old_custom", "preset_config": json.dumps(old_fields)}
    save_file(state, str(tmp_path / "model.safetensors"), metadata=meta)
    loaded = load_model(tmp_path)
    assert not loaded.preset.residual and loaded.preset.refine_channels == 0


def test_weights_from_a_newer_version_are_refused_by_field_name(tmp_path):
    fields = Preset(name="future", channels=(8, 16, 32, 64), hidden_dim=64, latent_dim=16).to_dict()
    model = VAE(Preset.from_dict(fields))
    meta = {"preset": "future", "preset_config": json.dumps(fields | {"attention": True})}
    save_file(dict(model.state_dict()), str(tmp_path / "model.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="attention"):
        load_model(tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_every_preset_exports_and_passes_the_parity_gate(tmp_path, name):
    torch.manual_seed(1)
    weights = save_model(VAE(get_preset(name)).eval(), tmp_path / "run" / "model.safetensors", {"stage": "test"})
    result = export_onnx(weights, tmp_path / "model.onnx", check_batch_sizes=(2,))
    assert result.parity.passed and result.parity.worst.max_abs_diff <= 1e-4
    manifest = json.loads(result.manifest.read_text())
    assert Preset.from_dict(manifest["preset"]) == get_preset(name)
    session = ort.InferenceSession(str(result.model), providers=["CPUExecutionProvider"])
    tiles = real_tiles(3, 128)  # a batch size the gate did not check
    expected = load_model(weights).restore(torch.from_numpy(tiles)).numpy()
    assert np.abs(session.run(None, {"image": tiles})[0] - expected).max() <= 1e-4


def test_decoder_export_of_a_full_resolution_residual_preset(tmp_path):
    torch.manual_seed(2)
    weights = save_model(VAE(get_preset("fullres")).eval(), tmp_path / "run" / "model.safetensors")
    result = export_onnx(weights, tmp_path / "decoder.onnx", part="decoder", check_batch_sizes=(2,))
    session = ort.InferenceSession(str(result.model), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == ["z", "s1", "s2", "s3", "s0", "image"]
    model = load_model(weights)
    images = torch.from_numpy(real_tiles(2, 128))
    with torch.no_grad():
        mu, _, skips = model.encoder(images)
    feeds = dict(zip(names, (t.numpy() for t in (mu, *skips, images)), strict=True))
    assert np.abs(session.run(None, feeds)[0] - model.restore(images).numpy()).max() <= 1e-4


def test_presets_command_lists_every_preset_with_its_cost(capsys):
    from vae_restore.cli import main

    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == list(PRESETS)
    assert "18,371,523" in lines[1] and "0.46" in lines[1]
    assert main(["presets", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["fullres"]["flops_per_tile"] == COSTS["fullres"].flops and listed["fullres"]["residual"] is True


def test_training_refuses_a_crop_size_the_preset_cannot_take(tmp_path):
    from benchmarks.in_process import reset_accelerate_state
    from vae_restore.config_io import build_config
    from vae_restore.training import Trainer

    config = build_config(None, {"crop_size": 96, "output_dir": str(tmp_path), "report_to": "none"})
    reset_accelerate_state()
    with pytest.raises(ConfigError, match="crop_size 96 does not fit preset 'original'.*--crop_size 128"):
        Trainer(config)


@pytest.mark.parametrize("height, width", [(128, 128), (96, 160), (8, 24)])
def test_fullconv_takes_any_multiple_of_its_multiple_with_a_spatial_latent(models, height, width):
    model, preset = models["fullconv"], get_preset("fullconv")
    assert preset.fully_convolutional and preset.multiple == 8 and preset.fits(height, width)
    x = torch.rand(2, 3, height, width)
    mu, logvar, skips = model.encoder(x)
    assert mu.shape == logvar.shape == (2, preset.latent_dim, height // 8, width // 8)
    assert [tuple(s.shape[1:]) for s in skips] == [
        (c, height // 2**i, width // 2**i) for i, c in enumerate(preset.channels[:-1])
    ]
    out = model.restore(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert not preset.fits(height + 4, width) and not get_preset("original").fits(96, 160)


def test_fullconv_starts_as_the_identity_and_learns_through_its_clamp():
    model = VAE(get_preset("fullconv"))
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(model.eval().restore(x), x.clamp(1e-4, 1 - 1e-4), atol=1e-5)  # zero-initialised tail
    with torch.no_grad():
        model.decoder.tail.bias.fill_(2.0)  # every prediction far above 1: clamped in the forward pass
    model.train()
    restored = model(x).restored
    assert torch.allclose(restored, torch.full_like(x, 1 - 1e-4), atol=1e-5)
    restored.sum().backward()
    assert model.decoder.tail.bias.grad.abs().min() > 0  # the clamp passes gradients straight through


def test_fullconv_samples_while_training_and_uses_mu_when_restoring(models):
    model = VAE(get_preset("fullconv"))
    with torch.no_grad():
        model.decoder.tail.weight.normal_(0, 0.1)
        model.encoder.logvar.bias.fill_(2.0)  # a wide posterior: samples differ visibly from mu
    x = torch.rand(1, 3, 32, 32)
    model.train()
    a, b = model(x).logits, model(x).logits
    assert (a - b).abs().max() > 1e-3
    model.eval()
    assert torch.equal(model(x).logits, model(x).logits)


def test_a_conv_preset_needs_scales_and_blocks():
    with pytest.raises(ConfigError, match="blocks >= 1"):
        Preset(name="bad", arch="conv", channels=(16, 32), blocks=0)
    with pytest.raises(ConfigError, match="4 channel counts"):
        Preset(name="bad", channels=(16, 32, 64))
    with pytest.raises(ConfigError, match="arch must be"):
        Preset(name="bad", arch="transformer")


def test_fullconv_trains_on_any_crop_that_is_a_multiple_of_8(tmp_path):
    from benchmarks.in_process import reset_accelerate_state
    from vae_restore.config_io import build_config
    from vae_restore.training import Trainer

    overrides = {"preset": "fullconv", "crop_size": 100, "output_dir": str(tmp_path), "report_to": "none"}
    reset_accelerate_state()
    with pytest.raises(ConfigError, match="crop_size 100 does not fit preset 'fullconv'.*multiple of 8"):
        Trainer(build_config(None, overrides))
