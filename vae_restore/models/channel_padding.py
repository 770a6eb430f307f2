"""Convolutions whose few channels (the RGB ends of the network) can be zero-padded on the fly.

On GPUs, cuDNN's tensor-core kernels want channel counts that are multiples of 8: a 3-channel NHWC
layer runs on a generic kernel and pads its tensors on every call (a GPU profile of the training
step: about a fifth of it). Padding inputs, weights and bias with zeros, then dropping the extra output channels, gives
the same outputs and gradients. The parameters keep their shapes, so weights and checkpoints do not
change; export and inference never pad (`pad_channels_to` is 0 unless the trainer sets it).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def grow(t: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """`t` with zeros appended along `dim` up to `size` (unchanged if it is that long already)."""
    extra = size - t.shape[dim]
    if extra <= 0:
        return t
    return F.pad(t, [0, 0] * (t.dim() - 1 - dim) + [0, extra])


class PaddableConv2d(nn.Conv2d):
    pad_channels_to = 0  # 0: off; else channel counts below it are padded up to it (groups=1 layers only)

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        n = self.pad_channels_to
        if n <= min(self.in_channels, self.out_channels):
            return super()._conv_forward(x, weight, bias)
        weight = grow(grow(weight, 0, n), 1, n)
        out = super()._conv_forward(grow(x, 1, n), weight, None if bias is None else grow(bias, 0, n))
        return out[:, : self.out_channels]


class PaddableConvTranspose2d(nn.ConvTranspose2d):
    pad_channels_to = 0  # as PaddableConv2d's

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        n = self.pad_channels_to
        if n <= min(self.in_channels, self.out_channels) or output_size is not None:
            return super().forward(x, output_size)
        weight = grow(grow(self.weight, 0, n), 1, n)  # (in, out, kh, kw)
        bias = None if self.bias is None else grow(self.bias, 0, n)
        out = F.conv_transpose2d(
            grow(x, 1, n), weight, bias, self.stride, self.padding, self.output_padding, self.groups, self.dilation
        )
        return out[:, : self.out_channels]


def set_channel_padding(model: nn.Module, channels: int) -> int:
    """Pad every paddable layer of `model` with fewer than `channels` channels up to `channels` (0: none);
    return how many layers that pads."""
    layers = [m for m in model.modules() if isinstance(m, (PaddableConv2d, PaddableConvTranspose2d))]
    for layer in layers:
        layer.pad_channels_to = channels
    return sum(channels > min(layer.in_channels, layer.out_channels) for layer in layers)
