"""The torch metrics agree with the references (scikit-image, a direct Pearson formula, OpenCV's rule) to 1e-6."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from vae_restore.data.embedded import embedded_images
from vae_restore.metrics import compute_metrics, histogram_correlation, mse, psnr, ssim

TOL = 1e-6
SIZES = [(7, 7), (37, 53), (64, 64), (101, 77)]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H×W×3 -> 1×3×H×W, dtype kept."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]


def unit(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)


def reference_hist_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Per channel: 256-bin numpy histograms, Pearson correlation written out, OpenCV's rule when a variance is 0.

    OpenCV's compareHist(HISTCMP_CORREL) returns 1 when the product of the two variances is (numerically) zero.
    """
    corrs = []
    for c in range(3):
        if a.dtype == np.uint8:
            ha = np.bincount(a[..., c].ravel(), minlength=256).astype(np.float64)
            hb = np.bincount(b[..., c].ravel(), minlength=256).astype(np.float64)
        else:
            ha = np.histogram(a[..., c], bins=256, range=(0.0, 1.0))[0].astype(np.float64)
            hb = np.histogram(b[..., c], bins=256, range=(0.0, 1.0))[0].astype(np.float64)
        n = 256
        num = (ha * hb).sum() - ha.sum() * hb.sum() / n
        den2 = ((ha * ha).sum() - ha.sum() ** 2 / n) * ((hb * hb).sum() - hb.sum() ** 2 / n)
        corrs.append(num / np.sqrt(den2) if abs(den2) > np.finfo(np.float64).eps else 1.0)
    return float(np.mean(corrs))


def references(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """The reference value of each metric for restored `a` against clear `b` (H×W×3, uint8 or float in [0, 1])."""
    fa, fb = unit(a), unit(b)
    return {
        "psnr": peak_signal_noise_ratio(fb, fa, data_range=1.0),
        "ssim": structural_similarity(fa, fb, channel_axis=-1, data_range=1.0),
        "mse": mean_squared_error(fa, fb),
        "hist_corr": reference_hist_corr(a, b),
    }


def assert_matches(a: np.ndarray, b: np.ndarray) -> None:
    ours = {k: float(v.item()) for k, v in compute_metrics(to_tensor(a), to_tensor(b)).items()}
    for name, expected in references(a, b).items():
        assert ours[name] == pytest.approx(expected, abs=TOL, rel=0), f"{name}: {ours[name]} vs reference {expected}"


def noisy_pair(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    clear = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    noisy = np.clip(clear.astype(np.int16) + rng.integers(-40, 41, clear.shape), 0, 255).astype(np.uint8)
    return noisy, clear


@pytest.mark.parametrize("size", SIZES)
def test_random_uint8_images_match_references(size):
    assert_matches(*noisy_pair(np.random.default_rng(sum(size)), *size))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", SIZES)
def test_random_float_images_match_references(size, dtype):
    rng = np.random.default_rng(sum(size) + 1)
    a, b = rng.random((*size, 3)).astype(dtype), rng.random((*size, 3)).astype(dtype)
    b[0, 0] = 1.0  # the top edge belongs to the last bin, as in numpy.histogram
    assert_matches(a, b)


@pytest.mark.parametrize("index", range(len(embedded_images())))
def test_real_images_match_references(index):
    name, clear = embedded_images()[index]
    clear = clear[: 3 * clear.shape[0] // 4 + 1, : 3 * clear.shape[1] // 4 + 1]  # odd crop keeps the test quick
    rng = np.random.default_rng(index)
    noisy = np.clip(clear + rng.normal(0, 20, clear.shape), 0, 255).round().astype(np.uint8)
    assert_matches(noisy, clear)
    assert_matches(unit(noisy), unit(clear))


def test_uint8_and_float_inputs_give_the_same_values():
    noisy, clear = noisy_pair(np.random.default_rng(5), 45, 61)
    as_uint8 = compute_metrics(to_tensor(noisy), to_tensor(clear))
    for dtype in (np.float32, np.float64):
        as_float = compute_metrics(to_tensor(unit(noisy).astype(dtype)), to_tensor(unit(clear).astype(dtype)))
        for name in as_uint8:
            assert float(as_float[name]) == pytest.approx(float(as_uint8[name]), abs=TOL, rel=0), (name, dtype)
    mixed = compute_metrics(to_tensor(noisy), to_tensor(unit(clear)))
    for name in as_uint8:
        assert float(mixed[name]) == pytest.approx(float(as_uint8[name]), abs=TOL, rel=0), name


def test_batches_score_each_image_on_its_own():
    rng = np.random.default_rng(9)
    pairs = [noisy_pair(rng, 33, 40) for _ in range(3)]
    batch = compute_metrics(torch.cat([to_tensor(a) for a, _ in pairs]), torch.cat([to_tensor(b) for _, b in pairs]))
    for i, (a, b) in enumerate(pairs):
        for name, expected in references(a, b).items():
            assert float(batch[name][i]) == pytest.approx(expected, abs=TOL, rel=0), (name, i)


def test_constant_histograms_follow_opencv():
    """A flat histogram has zero variance: OpenCV's HISTCMP_CORREL (and ours) call that a correlation of 1."""
    flat = np.stack([np.random.default_rng(c).permutation(256).reshape(16, 16) for c in range(3)], -1)
    flat = flat.astype(np.uint8)
    other = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert reference_hist_corr(flat, other) == 1.0
    assert float(histogram_correlation(to_tensor(flat), to_tensor(other))) == 1.0
    assert float(histogram_correlation(to_tensor(other), to_tensor(flat))) == 1.0


def test_histogram_correlation_detects_different_distributions():
    dark = np.random.default_rng(0).integers(0, 100, (32, 32, 3), dtype=np.uint8)
    bright = np.random.default_rng(1).integers(150, 256, (32, 32, 3), dtype=np.uint8)
    value = float(histogram_correlation(to_tensor(dark), to_tensor(bright)))
    assert value == pytest.approx(reference_hist_corr(dark, bright), abs=TOL)
    assert value < 0
    assert float(histogram_correlation(to_tensor(dark), to_tensor(dark))) == pytest.approx(1.0, abs=1e-12)


def test_identical_images_score_perfectly():
    image = torch.rand(2, 3, 20, 24)
    assert torch.all(mse(image, image) == 0)
    assert torch.all(torch.isinf(psnr(image, image)))
    assert torch.allclose(ssim(image, image), torch.ones(2, dtype=torch.float64))


def test_too_small_for_ssim_is_refused():
    with pytest.raises(ValueError, match="at least 7x7"):
        ssim(torch.rand(1, 3, 6, 30), torch.rand(1, 3, 6, 30))


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="same shape"):
        compute_metrics(torch.rand(1, 3, 16, 16), torch.rand(2, 3, 16, 16))
