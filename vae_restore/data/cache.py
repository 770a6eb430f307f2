"""Decode-once image cache: every image's uint8 pixels packed into one flat buffer.

One buffer (instead of a list of tensors) lets a whole batch of crops be taken with a single
gather on the training device, with no per-image Python loop.
"""

from __future__ import annotations

import numpy as np
import torch


def reflect_pad_to(image: np.ndarray, min_side: int) -> np.ndarray:
    """Reflect-pad an image whose height or width is below `min_side` (edge-pad if reflect can't reach)."""
    h, w = image.shape[:2]
    ph, pw = max(0, min_side - h), max(0, min_side - w)
    if not (ph or pw):
        return image
    mode = "reflect" if ph < h and pw < w else "symmetric" if ph <= h and pw <= w else "edge"
    return np.pad(image, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), mode=mode)


class PixelBank:
    """Images of any sizes as one (P, 3) uint8 tensor plus per-image offset, height and width."""

    def __init__(self, images: list[np.ndarray], min_side: int):
        if not images:
            raise ValueError("PixelBank needs at least one image")
        images = [reflect_pad_to(np.ascontiguousarray(im, dtype=np.uint8), min_side) for im in images]
        self.heights = torch.tensor([im.shape[0] for im in images], dtype=torch.int64)
        self.widths = torch.tensor([im.shape[1] for im in images], dtype=torch.int64)
        sizes = self.heights * self.widths
        self.offsets = torch.cumsum(sizes, 0) - sizes
        self.pixels = torch.from_numpy(np.concatenate([im.reshape(-1, 3) for im in images]))

    def __len__(self) -> int:
        return len(self.heights)

    @property
    def nbytes(self) -> int:
        return self.pixels.numel()

    def to(self, device: torch.device | str) -> PixelBank:
        for name in ("pixels", "heights", "widths", "offsets"):
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
        return self.pixels[flat_index].permute(0, 3, 1, 2)

    def image(self, i: int) -> torch.Tensor:
        """Image `i` as uint8 3×H×W (a view into the buffer)."""
        h, w, o = int(self.heights[i]), int(self.widths[i]), int(self.offsets[i])
        return self.pixels[o : o + h * w].view(h, w, 3).permute(2, 0, 1)
