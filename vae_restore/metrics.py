"""Image quality metrics (MSE, PSNR, SSIM, histogram correlation): one implementation for validation,
evaluation and benchmarks.

Inputs are N×3×H×W tensors, float in [0, 1] or uint8; each function returns one value per image.
SSIM follows `skimage.metrics.structural_similarity(channel_axis=..., data_range=1)` exactly
(7×7 uniform window, sample covariance, mean over the valid region, mean over channels).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

SSIM_WINDOW = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03
HIST_BINS = 256


def as_unit_float(x: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """uint8 -> [0, 1]; floats are taken as already in [0, 1]."""
    if x.dtype == torch.uint8:
        return x.to(dtype) / 255.0
    return x.to(dtype)


def check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    """Broadcasting would silently score one image against another: shapes must be equal."""
    if x.shape != y.shape:
        raise ValueError(f"metrics compare images of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    check_pair(x, y)
    return (as_unit_float(x) - as_unit_float(y)).square().flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """10·log10(1 / MSE) in dB (data range 1); identical images give +inf."""
    return 10.0 * torch.log10(1.0 / mse(x, y))


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    check_pair(x, y)
    return ssim_map(as_unit_float(x), as_unit_float(y)).flatten(2).mean(2).mean(1)


def ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """N×C×(H-6)×(W-6) local SSIM of float images in [0, 1], in their dtype (differentiable: the SSIM loss)."""
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {tuple(x.shape[-2:])}")
    n = SSIM_WINDOW**2
    cov_norm = n / (n - 1)
    ux, uy, xx, yy, xy = _window_mean(torch.cat([x, y, x * x, y * y, x * y], dim=1)).chunk(5, dim=1)
    vx = cov_norm * (xx - ux * ux)
    vy = cov_norm * (yy - uy * uy)
    vxy = cov_norm * (xy - ux * uy)
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def _window_mean(t: torch.Tensor) -> torch.Tensor:
    """7×7 uniform mean over the valid region, as two depthwise 1-D convolutions (5x faster than avg_pool2d
    on CPUs, forward and backward, which matters for the SSIM loss)."""
    c = t.shape[1]
    kernel = torch.full((c, 1, SSIM_WINDOW, 1), 1.0 / SSIM_WINDOW, dtype=t.dtype, device=t.device)
    return F.conv2d(F.conv2d(t, kernel, groups=c), kernel.transpose(2, 3), groups=c)


def _histograms(x: torch.Tensor) -> torch.Tensor:
    """N×C×256 counts; floats are binned as numpy.histogram(bins=256, range=(0, 1)) does."""
    scaled = x.long() if x.dtype == torch.uint8 else (x.double() * HIST_BINS).floor().clamp_(0, HIST_BINS - 1).long()
    bins = scaled.flatten(2)
    counts = torch.zeros(*bins.shape[:2], HIST_BINS, dtype=torch.float64, device=x.device)
    return counts.scatter_add_(2, bins, torch.ones_like(bins, dtype=torch.float64))


def histogram_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of 256-bin histograms per channel (OpenCV's HISTCMP_CORREL), mean over channels.

    As in OpenCV, a pair where either histogram is flat (zero variance) counts as a correlation of 1.
    A NaN or infinite pixel has no bin: that image's value is NaN, like the other metrics'.
    """
    check_pair(x, y)
    finite = torch.isfinite(x).flatten(1).all(1) & torch.isfinite(y).flatten(1).all(1)
    hx, hy = _histograms(x.nan_to_num(0.0, 0.0, 0.0)), _histograms(y.nan_to_num(0.0, 0.0, 0.0))
    dx, dy = hx - hx.mean(2, keepdim=True), hy - hy.mean(2, keepdim=True)
    num = (dx * dy).sum(2)
    den = torch.sqrt((dx * dx).sum(2) * (dy * dy).sum(2))
    corr = torch.where(den > 0, num / den.clamp_min(1e-300), torch.ones_like(num))
    return torch.where(finite, corr.mean(1), torch.nan)


METRICS = {"psnr": psnr, "ssim": ssim, "mse": mse, "hist_corr": histogram_correlation}


def compute_metrics(restored: torch.Tensor, reference: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every metric, per image, as float64 tensors."""
    return {name: fn(restored, reference) for name, fn in METRICS.items()}
