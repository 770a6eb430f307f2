"""PSNR and SSIM of one image against its clear original, in numpy alone.

`vae-restore restore --reference` scores in the inference install, which has no torch; these are the
definitions of `vae_restore.metrics` (data range 1, SSIM with a 7×7 uniform window, sample covariance,
mean over the valid region and the channels, as scikit-image's `structural_similarity`), so a score
printed here equals the one evaluation reports for the same pixels.
"""

from __future__ import annotations

import numpy as np

SSIM_WINDOW = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _unit_float(image: np.ndarray) -> np.ndarray:
    """H×W×C uint8 -> float64 in [0, 1]; floats are taken as already in [0, 1]."""
    image = np.asarray(image)
    return image.astype(np.float64) / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)


def _check_pair(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape != y.shape:
        raise ValueError(f"scores compare images of the same size, got {x.shape} and {y.shape}")


def psnr(x: np.ndarray, y: np.ndarray) -> float:
    """10·log10(1 / MSE) in dB; identical images give +inf."""
    _check_pair(x, y)
    error = float(np.mean(np.square(_unit_float(x) - _unit_float(y))))
    return float("inf") if error == 0 else 10.0 * float(np.log10(1.0 / error))


def _window_mean(t: np.ndarray) -> np.ndarray:
    """Mean over every 7×7 window that fits (H-6)×(W-6), per channel, from a summed-area table."""
    s = np.zeros((t.shape[0] + 1, t.shape[1] + 1, *t.shape[2:]), dtype=np.float64)
    s[1:, 1:] = t.cumsum(0).cumsum(1)
    w = SSIM_WINDOW
    return (s[w:, w:] - s[:-w, w:] - s[w:, :-w] + s[:-w, :-w]) / (w * w)


def ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Mean SSIM over the valid region and the channels of two H×W×C (or H×W) images."""
    _check_pair(x, y)
    x, y = _unit_float(x), _unit_float(y)
    if min(x.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {x.shape[:2]}")
    n = SSIM_WINDOW**2
    cov_norm = n / (n - 1)
    ux, uy = _window_mean(x), _window_mean(y)
    vx = cov_norm * (_window_mean(x * x) - ux * ux)
    vy = cov_norm * (_window_mean(y * y) - uy * uy)
    vxy = cov_norm * (_window_mean(x * y) - ux * uy)
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    local = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return float(local.mean())
