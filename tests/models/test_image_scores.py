"""The numpy PSNR/SSIM of `restore --reference` equal the torch metrics that validation and evaluation use."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from vae_restore import image_scores, metrics


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    clear = rng.integers(0, 256, size=(37, 52, 3), dtype=np.uint8)
    noisy = np.clip(clear + rng.normal(0, 20, clear.shape), 0, 255).astype(np.uint8)
    return noisy, clear


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None]


def test_scores_equal_the_torch_metrics(pair):
    noisy, clear = pair
    assert image_scores.psnr(noisy, clear) == pytest.approx(float(metrics.psnr(as_tensor(noisy), as_tensor(clear))))
    assert image_scores.ssim(noisy, clear) == pytest.approx(float(metrics.ssim(as_tensor(noisy), as_tensor(clear))))
    expected = structural_similarity(noisy, clear, channel_axis=2, data_range=255)
    assert image_scores.ssim(noisy, clear) == pytest.approx(expected, abs=1e-9)


def test_identical_images_score_perfectly(pair):
    _, clear = pair
    assert image_scores.psnr(clear, clear) == float("inf")
    assert image_scores.ssim(clear, clear) == pytest.approx(1.0)


def test_mismatched_or_tiny_images_are_refused(pair):
    noisy, clear = pair
    with pytest.raises(ValueError, match="same size"):
        image_scores.psnr(noisy[:10], clear)
    with pytest.raises(ValueError, match="at least 7x7"):
        image_scores.ssim(clear[:5, :5], clear[:5, :5])
