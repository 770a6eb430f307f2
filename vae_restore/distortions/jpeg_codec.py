"""Baseline JPEG's lossy steps in torch, as libjpeg does them at a given quality, for whole batches on the GPU.

Entropy coding is lossless, so leaving it out changes no pixel: colour conversion, 4:2:0 chroma
subsampling, the 8×8 DCT, quantisation with the IJG tables scaled by quality, and the decoder's
"fancy" chroma upsampling give what Pillow's round trip gives, up to libjpeg's integer DCT rounding
(`tests/data/test_distortions.py` measures the difference). Every image keeps its own quality, nothing
leaves the device and nothing synchronises with it, unlike an encoder that takes one quality per call
and bytes that must cross to the host (torchvision's nvJPEG encoder is also 4:4:4 only, milder than the
4:2:0 that cameras save and that evaluation uses).
"""

from __future__ import annotations

import math
from functools import cache

import torch
from torch.nn import functional as F

from .sampling import device_constant

# ITU T.81 Annex K: the luminance and chrominance tables at quality 50, row = vertical frequency.
LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
) + ((99,) * 8,) * 4
MCU = 16  # a 4:2:0 minimum coded unit: 16×16 pixels, 8×8 of each chroma plane


@cache
def _dct_matrix(device: torch.device) -> torch.Tensor:
    """The orthonormal 8-point DCT-II: JPEG's 2-D transform of a block B is D @ B @ D.T."""
    k = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * 0.5
    d[0] /= math.sqrt(2)
    return d.to(device)


def quant_tables(quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 8, 8) luminance and chrominance divisors for integer qualities 1..100, as `jpeg_set_quality` makes them."""
    q = quality.long().clamp(1, 100)[:, None, None, None]
    scale = torch.where(q < 50, 5000 // q, 200 - 2 * q)
    base = device_constant((LUMA_TABLE, CHROMA_TABLE), quality.device, torch.int64)  # (2, 8, 8), quality 50
    tables = ((base * scale + 50) // 100).clamp(1, 255).double()  # baseline: 8-bit
    return tables[:, 0], tables[:, 1]


def _blockwise(planes: torch.Tensor, fn) -> torch.Tensor:
    """Apply `fn` to (B, C, nh, nw, 8, 8) blocks of (B, C, H, W) planes, H and W multiples of 8."""
    b, c, h, w = planes.shape
    blocks = planes.reshape(b, c, h // 8, 8, w // 8, 8).transpose(3, 4)
    return fn(blocks).transpose(3, 4).reshape(b, c, h, w)


def _quantise_dct(planes: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Level shift, DCT, quantise, dequantise, inverse DCT, back to 8-bit samples; `table` is (B, 8, 8).

    In float64: TF32 matmuls (`torch.backends.cuda.matmul.allow_tf32`) would move coefficients of up to
    ±2040 by whole quantisation steps; the transform is a small part of a training step either way.
    """
    d = _dct_matrix(planes.device)
    table = table[:, None, None, None]

    def lossy(blocks: torch.Tensor) -> torch.Tensor:
        coefficients = d @ (blocks - 128.0) @ d.T
        coefficients = torch.round(coefficients / table) * table
        return d.T @ coefficients @ d + 128.0

    return _blockwise(planes.double(), lossy).round().clamp(0, 255).float()


def _rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    r, g, b = rgb.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168735892 * r - 0.331264108 * g + 0.5 * b + 128.0
    cr = 0.5 * r - 0.418687589 * g - 0.081312411 * b + 128.0
    return torch.stack([y, cb, cr], 1).round().clamp(0, 255)


def _ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    y, cb, cr = ycc.unbind(1)
    cb, cr = cb - 128.0, cr - 128.0
    r = y + (1.402 * cr).round()
    g = y + (-0.344136286 * cb - 0.714136286 * cr).round()
    b = y + (1.772 * cb).round()
    return torch.stack([r, g, b], 1).clamp(0, 255)


def _downsample(chroma: torch.Tensor) -> torch.Tensor:
    """libjpeg's 2×2 box average, with its rounding bias alternating 1, 2 along each row."""
    sums = F.avg_pool2d(chroma, 2, divisor_override=1)
    bias = 1.0 + (torch.arange(sums.shape[-1], device=chroma.device) % 2)
    return torch.floor((sums + bias) / 4)


def _upsample(chroma: torch.Tensor) -> torch.Tensor:
    """libjpeg's "fancy" 2×2 upsampling: a triangle filter (weights 9, 3, 3, 1 / 16), edges replicated."""
    padded = F.pad(chroma, (0, 0, 1, 1), mode="replicate")
    above = 3 * chroma + padded[..., :-2, :]
    below = 3 * chroma + padded[..., 2:, :]
    rows = torch.stack([above, below], -2).flatten(-3, -2)  # (.., 2H, W): column sums ×4
    padded = F.pad(rows, (1, 1, 0, 0), mode="replicate")
    left = torch.floor((3 * rows + padded[..., :-2] + 8) / 16)
    right = torch.floor((3 * rows + padded[..., 2:] + 7) / 16)
    return torch.stack([left, right], -1).flatten(-2)


def jpeg_roundtrip(images: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) 8-bit values (any float or integer dtype) through baseline JPEG at 4:2:0.

    `quality` holds one integer 1..100 per image. Returns float32 8-bit values of the input's size;
    sizes that are not multiples of 16 are padded by edge replication, as libjpeg pads its MCUs.
    """
    h, w = images.shape[-2:]
    x = images.float()
    pad = (0, -w % MCU, 0, -h % MCU)
    if any(pad):
        x = F.pad(x, pad, mode="replicate")
    luma_table, chroma_table = quant_tables(quality)
    ycc = _rgb_to_ycbcr(x)
    y = _quantise_dct(ycc[:, :1], luma_table)
    chroma = _quantise_dct(_downsample(ycc[:, 1:]), chroma_table)
    rgb = _ycbcr_to_rgb(torch.cat([y, _upsample(chroma)], 1))
    return rgb[..., :h, :w]


__all__ = ["jpeg_roundtrip", "quant_tables"]
