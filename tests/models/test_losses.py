"""Loss recipes: Charbonnier, the SSIM term (same SSIM as the metric), the KL warm-up, and their config keys."""

from __future__ import annotations

import pytest
import torch

from vae_restore.config import LossConfig
from vae_restore.config_io import build_config
from vae_restore.errors import ConfigError
from vae_restore.losses import CHARBONNIER_EPS, kl_divergence, kl_scale, reconstruction_loss, ssim_loss, vae_loss
from vae_restore.metrics import ssim
from vae_restore.models import VAEOutput


def make_output(restored: torch.Tensor, latent: int = 8) -> VAEOutput:
    torch.manual_seed(0)
    return VAEOutput(torch.logit(restored), torch.randn(len(restored), latent), torch.randn(len(restored), latent))


def test_charbonnier_is_a_smooth_l1():
    target = torch.rand(2, 3, 16, 16)
    restored = (target + 0.2 * torch.randn_like(target)).clamp(0.01, 0.99)
    logits = torch.logit(restored)
    charbonnier = reconstruction_loss("charbonnier", logits, target)
    l1 = reconstruction_loss("l1", logits, target)
    assert torch.all(charbonnier >= l1) and torch.all(charbonnier <= l1 + CHARBONNIER_EPS * 3 * 16 * 16)
    exact = reconstruction_loss("charbonnier", torch.logit(target.clamp(0.01, 0.99)), target.clamp(0.01, 0.99))
    assert torch.allclose(exact, torch.full((2,), CHARBONNIER_EPS * 3 * 16 * 16), rtol=1e-3)


def test_ssim_term_is_one_minus_the_metric_per_value():
    target = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    restored = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    expected = (1 - ssim(restored, target)) * 3 * 32 * 32
    assert torch.allclose(ssim_loss(restored, target), expected)
    assert torch.allclose(ssim_loss(target, target), torch.zeros(2, dtype=torch.float64), atol=1e-9)


def test_ssim_weight_adds_the_ssim_term_and_has_a_gradient():
    target = torch.rand(2, 3, 32, 32)
    restored = (target + 0.1 * torch.randn_like(target)).clamp(0.01, 0.99)
    output = make_output(restored)
    plain = vae_loss(LossConfig(reconstruction="l1", kl_weight=0.0), output, target)
    logits = output.logits.clone().requires_grad_(True)
    config = LossConfig(reconstruction="l1", kl_weight=0.0, ssim_weight=0.5)
    with_ssim = vae_loss(config, output._replace(logits=logits), target)
    extra = 0.5 * ssim_loss(restored, target).mean()
    assert torch.allclose(with_ssim.reconstruction, plain.reconstruction + extra, rtol=1e-5)
    with_ssim.loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_kl_warmup_ramps_linearly_then_holds():
    config = LossConfig(kl_weight=2.0, kl_warmup_steps=4)
    assert [kl_scale(config, s) for s in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert kl_scale(LossConfig(kl_weight=2.0), 0) == 2.0
    output = make_output(torch.full((2, 3, 8, 8), 0.5))
    target = torch.full((2, 3, 8, 8), 0.5)
    first = vae_loss(config, output, target, step=0)
    kl = kl_divergence(output.mu, output.logvar).mean()
    assert torch.allclose(first.loss - first.reconstruction, 0.5 * kl)
    assert torch.allclose(vae_loss(config, output, target, step=10).loss - first.reconstruction, 2.0 * kl)


def test_recipe_keys_are_flags_and_are_checked():
    config = build_config(None, {"ssim_weight": "0.2", "kl_warmup_steps": "100", "ema_decay": "0.999"})
    assert (config.loss.ssim_weight, config.loss.kl_warmup_steps, config.optim.ema_decay) == (0.2, 100, 0.999)
    with pytest.raises(ConfigError, match="ema_decay"):
        build_config(None, {"ema_decay": "1.0"})
    with pytest.raises(ConfigError, match="ssim_weight"):
        build_config(None, {"ssim_weight": "-1"})


def test_mean_reduction_makes_beta_independent_of_crop_and_latent_size():
    torch.manual_seed(0)
    for size in (32, 64):
        target = torch.rand(2, 3, size, size)
        logits = torch.logit(target.clamp(0.05, 0.95)) + 0.3
        mu, logvar = torch.randn(2, 8, size // 8, size // 8), torch.randn(2, 8, size // 8, size // 8)
        per_value = (torch.sigmoid(logits) - target).abs().flatten(1).mean(1)
        assert torch.allclose(reconstruction_loss("l1", logits, target, "mean"), per_value)
        assert torch.allclose(reconstruction_loss("l1", logits, target, "sum"), per_value * target[0].numel())
        kl_sum, kl_mean = kl_divergence(mu, logvar, "sum"), kl_divergence(mu, logvar, "mean")
        assert torch.allclose(kl_sum, kl_mean * mu[0].numel())
        assert torch.allclose(
            ssim_loss(torch.sigmoid(logits), target, "mean") * target[0].numel(),
            ssim_loss(torch.sigmoid(logits), target, "sum"),
        )
