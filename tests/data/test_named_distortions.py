"""Named distortions: fixed settings, repeatable from a seed, and each does what its name says."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from vae_restore.data.embedded import embedded_images
from vae_restore.distortions.named import NAMED_DISTORTIONS, apply_named
from vae_restore.errors import ConfigError
from vae_restore.metrics import psnr


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    image = dict(embedded_images())["chelsea"][:160, :200]
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


@pytest.mark.parametrize("name", sorted(NAMED_DISTORTIONS))
def test_same_seed_same_result(name, photo):
    a, b = apply_named(name, photo, seed=3), apply_named(name, photo, seed=3)
    assert a.shape == photo.shape and a.dtype == photo.dtype
    assert torch.equal(a, b)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.equal(a, photo)


@pytest.mark.parametrize("sigma", [15, 25, 50])
def test_awgn_has_its_sigma(sigma):
    gray = torch.full((1, 3, 256, 256), 0.5)
    noisy = apply_named(f"awgn{sigma}", gray, seed=0)
    assert float((noisy - gray).std()) * 255 == pytest.approx(sigma, rel=0.03)
    assert not torch.equal(noisy, apply_named(f"awgn{sigma}", gray, seed=1))


def test_jpeg_is_a_real_round_trip(photo):
    q20, q10 = apply_named("jpeg20", photo, 0), apply_named("jpeg10", photo, 0)
    assert torch.equal(q20 * 255, (q20 * 255).round()), "decoded JPEG pixels are 8-bit"
    assert 24 < float(psnr(q20, photo)) < 40
    assert float(psnr(q10, photo)) < float(psnr(q20, photo))


def test_blur_matches_scipy_gaussian_filter_inside(photo):
    blurred = apply_named("blur", photo, 0)[0].numpy()
    reference = np.stack([gaussian_filter(c, sigma=2.0, truncate=3.0, mode="mirror") for c in photo[0].numpy()])
    np.testing.assert_allclose(blurred, reference, atol=1e-5)


def test_blur_noise_is_the_blur_plus_light_noise(photo):
    blurred = apply_named("blur", photo, 0)
    both = apply_named("blur_noise", photo, 0)
    residual = (both - blurred)[..., 8:-8, 8:-8]  # away from clipping at the borders of the value range
    assert float(residual.std()) * 255 == pytest.approx(5.0, rel=0.1)
    assert abs(float(residual.mean())) < 1e-3


def test_unknown_name_lists_the_known_ones(photo):
    with pytest.raises(ConfigError, match=r"unknown distortion 'awgn99'.*awgn25.*blur.*jpeg20"):
        apply_named("awgn99", photo, 0)


def test_registry_is_open(photo, monkeypatch):
    monkeypatch.setitem(NAMED_DISTORTIONS, "invert", lambda images, generator: 1 - images)
    assert torch.equal(apply_named("invert", photo, 0), 1 - photo)
