"""Decode-once image cache: every image's uint8 pixels packed into one flat buffer.

One buffer (instead of a list of tensors) lets a whole batch of crops be taken with a single
gather on the training device, with no per-image Python loop.
"""

from __future__ import annotations

import numpy as np
import torch


def reflect_pad_to(image: np.ndarray, min_side: int) -> np.ndarray:
    """Reflect-pad an image whose height or width is below `min_side`, centred (numpy reflects repeatedly)."""
    h, w = image.shape[:2]
    ph, pw = max(0, min_side - h), max(0, min_side - w)
    if not (ph or pw):
        return image
    return np.pad(image, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), mode="reflect")


def needs_padding(image: np.ndarray, min_side: int) -> bool:
    return image.shape[0] < min_side or image.shape[1] < min_side


class PixelBank:
    """Images of any sizes as one (P, 3) uint8 tensor plus per-image offset, height and width.

    The pixels may live on another device than the index tensors: a bank larger than the training
    device's memory keeps its pixels on the host (a memory-mapped cache file) and crops are gathered
    there, then moved.
    """

    def __init__(self, images: list[np.ndarray], min_side: int):
        if not images:
            raise ValueError("PixelBank needs at least one image")
        images = [reflect_pad_to(np.ascontiguousarray(im, dtype=np.uint8), min_side) for im in images]
        pixels = torch.from_numpy(np.concatenate([im.reshape(-1, 3) for im in images]))
        heights = torch.tensor([im.shape[0] for im in images], dtype=torch.int64)
        widths = torch.tensor([im.shape[1] for im in images], dtype=torch.int64)
        self._set(pixels, heights, widths)

    def _set(self, pixels: torch.Tensor, heights: torch.Tensor, widths: torch.Tensor, offsets=None) -> None:
        self.pixels, self.heights, self.widths = pixels, heights, widths
        sizes = heights * widths
        self.offsets = torch.cumsum(sizes, 0) - sizes if offsets is None else offsets

    @classmethod
    def from_buffer(cls, pixels: torch.Tensor, heights: torch.Tensor, widths: torch.Tensor) -> PixelBank:
        """A bank over already packed pixels (P, 3), images stored one after another in order."""
        if len(heights) == 0:
            raise ValueError("PixelBank needs at least one image")
        need = int((heights * widths).sum())
        if need != pixels.shape[0]:
            raise ValueError(f"pixel buffer holds {pixels.shape[0]} pixels, the image sizes need {need}")
        bank = cls.__new__(cls)
        bank._set(pixels, heights.to(torch.int64), widths.to(torch.int64))
        return bank

    def __len__(self) -> int:
        return len(self.heights)

    @property
    def nbytes(self) -> int:
        """Bytes of this bank's own images (a subset shares a larger buffer)."""
        return int((self.heights * self.widths).sum()) * 3

    def subset(self, indices: list[int] | torch.Tensor) -> PixelBank:
        """The chosen images, sharing this bank's pixel buffer (no copy)."""
        idx = torch.as_tensor(indices, dtype=torch.int64, device=self.heights.device)
        bank = PixelBank.__new__(PixelBank)
        bank._set(self.pixels, self.heights[idx], self.widths[idx], self.offsets[idx])
        return bank

    def compact(self) -> PixelBank:
        """A copy holding only this bank's images in a buffer of their own (e.g. one process's shard)."""
        if self.nbytes == self.pixels.numel():
            return self
        sizes = (self.heights * self.widths).tolist()
        parts = [self.pixels[o : o + n] for o, n in zip(self.offsets.tolist(), sizes, strict=True)]
        return PixelBank.from_buffer(torch.cat(parts), self.heights.clone(), self.widths.clone())

    def to(self, device: torch.device | str, pixels: bool = True) -> PixelBank:
        """Move the index tensors, and the pixels unless `pixels` is False (they stay where they are)."""
        names = ("pixels", "heights", "widths", "offsets") if pixels else ("heights", "widths", "offsets")
        for name in names:
            setattr(self, name, getattr(self, name).to(device))
        return self

    def same_geometry(self, other: PixelBank) -> bool:
        return torch.equal(self.heights.cpu(), other.heights.cpu()) and torch.equal(
            self.widths.cpu(), other.widths.cpu()
        )

    def crop_indices(
        self,
        index: torch.Tensor,
        top: torch.Tensor,
        left: torch.Tensor,
        size: int,
        hflip: torch.Tensor,
        vflip: torch.Tensor,
    ) -> torch.Tensor:
        """Flat pixel indices (B, size, size) of the requested crops, flips folded into the index."""
        ramp = torch.arange(size, device=index.device)
        rows = torch.where(vflip[:, None], top[:, None] + size - 1 - ramp, top[:, None] + ramp)
        cols = torch.where(hflip[:, None], left[:, None] + size - 1 - ramp, left[:, None] + ramp)
        width = self.widths[index]
        return self.offsets[index][:, None, None] + rows[:, :, None] * width[:, None, None] + cols[:, None, :]

    def gather(self, flat_index: torch.Tensor) -> torch.Tensor:
        """uint8 crops B×3×S×S in channels_last memory layout (a free view of the gathered pixels)."""
        if flat_index.device == self.pixels.device:
            return self.pixels[flat_index].permute(0, 3, 1, 2)
        crops = self.pixels[flat_index.to(self.pixels.device)]
        return crops.to(flat_index.device, non_blocking=True).permute(0, 3, 1, 2)

    def image(self, i: int) -> torch.Tensor:
        """Image `i` as uint8 3×H×W (a view into the buffer)."""
        h, w, o = int(self.heights[i]), int(self.widths[i]), int(self.offsets[i])
        return self.pixels[o : o + h * w].view(h, w, 3).permute(2, 0, 1)
