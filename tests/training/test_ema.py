"""EMA of the weights: the update rule, what `model.safetensors` holds, and bit-exact resume with EMA on."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
import torch

from benchmarks.in_process import fit_in_process
from vae_restore.config import Config
from vae_restore.errors import CheckpointError
from vae_restore.models import VAE, Preset, load_model, sha256_file
from vae_restore.training import Trainer
from vae_restore.training.ema import EMA, EMA_FILE, ema_decay_at

from ..conftest import write_images

SMALL = Preset(name="ema_small", channels=(8, 16, 32, 64), hidden_dim=32, latent_dim=8)


def test_update_is_a_lerp_with_the_warmed_up_decay():
    torch.manual_seed(0)
    model = VAE(SMALL)
    ema = EMA(model, decay=0.99)
    before = [p.detach().clone() for p in ema.model.parameters()]
    for steps in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        d = ema_decay_at(0.99, steps)
        expected = [d * b + (1 - d) * p.detach() for b, p in zip(before, model.parameters(), strict=True)]
        ema.update(model)
        for got, want in zip(ema.model.parameters(), expected, strict=True):
            assert torch.allclose(got, want, atol=1e-6)
        before = [p.detach().clone() for p in ema.model.parameters()]
    assert ema_decay_at(0.99, 0) == pytest.approx(0.1) and ema_decay_at(0.99, 10_000) == 0.99
    assert all(not p.requires_grad for p in ema.model.parameters())


def test_state_round_trip_keeps_the_update_count(tmp_path):
    ema = EMA(VAE(SMALL), decay=0.9)
    ema.update(VAE(SMALL))
    ema.save(tmp_path)
    other = EMA(VAE(SMALL), decay=0.9)
    other.load(tmp_path)
    assert other.updates == 1
    assert all(torch.equal(a, b) for a, b in zip(ema.model.parameters(), other.model.parameters(), strict=True))
    with pytest.raises(CheckpointError, match="ema_decay 0"):
        other.load(tmp_path / "nowhere")


def run(tmp_path, out: str, resume: bool = False) -> Trainer:
    config = Config()
    config.train = replace(
        config.train,
        stage="clear",
        output_dir=str(tmp_path / out),
        max_train_steps=6,
        logging_steps=1,
        validation_steps=1000,
        checkpointing_steps=3,
        report_to="none",
        train_batch_size=2,
        resume_from_checkpoint="latest" if resume else None,
    )
    config.data = replace(config.data, train_data=str(tmp_path / "images"), val_crops_per_image=1)
    config.loss = replace(config.loss, reconstruction="charbonnier", kl_warmup_steps=4)
    config.optim = replace(config.optim, ema_decay=0.9)
    return fit_in_process(config.validate())


def test_saved_weights_are_the_average_and_resume_is_bit_exact(tmp_path):
    torch.set_num_threads(1)
    write_images(tmp_path / "images", 3, size=(130, 140))
    straight = run(tmp_path, "straight")
    saved = load_model(tmp_path / "straight" / "clear")
    raw = straight.accelerator.unwrap_model(straight.model)
    for name, tensor in saved.state_dict().items():
        assert torch.equal(tensor, straight.ema.model.state_dict()[name].cpu().float())
    assert any(not torch.equal(a.detach(), b) for a, b in zip(raw.parameters(), saved.parameters(), strict=True))
    checkpoint = tmp_path / "straight" / "clear" / "checkpoints" / "checkpoint-3"
    assert (checkpoint / EMA_FILE).is_file()

    resumed_dir = tmp_path / "resumed" / "clear" / "checkpoints"
    resumed_dir.mkdir(parents=True)
    shutil.copytree(checkpoint, resumed_dir / "checkpoint-3")
    resumed = run(tmp_path, "resumed", resume=True)
    assert resumed.resumed_from is not None and resumed.ema.updates == 6
    assert sha256_file(tmp_path / "resumed" / "clear" / "model.safetensors") == sha256_file(
        tmp_path / "straight" / "clear" / "model.safetensors"
    )
