"""Random crops and flips drawn on the training device from a PixelBank.

The sampler owns the generator that decides every crop, so saving its state is enough to resume
the data stream exactly where it stopped.
"""

from __future__ import annotations

import torch

from .pixel_bank import PixelBank


def to_float(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.float().div_(255.0)


class CropSampler:
    """Uniform image choice, uniform crop position, random horizontal and vertical flips."""

    def __init__(
        self, clear: PixelBank, crop_size: int, generator: torch.Generator, distorted: PixelBank | None = None
    ):
        if distorted is not None and not distorted.same_geometry(clear):
            raise ValueError("distorted and clear images must have the same sizes")
        self.clear, self.distorted = clear, distorted
        self.crop_size = crop_size
        self.generator = generator

    def _positions(self, batch_size: int):
        g, dev, size = self.generator, self.clear.heights.device, self.crop_size
        index = torch.randint(len(self.clear), (batch_size,), generator=g, device=dev)
        u = torch.rand(batch_size, 2, generator=g, device=dev)
        top = (u[:, 0] * (self.clear.heights[index] - size + 1)).long()
        left = (u[:, 1] * (self.clear.widths[index] - size + 1)).long()
        flips = torch.rand(batch_size, 2, generator=g, device=dev) < 0.5
        return index, top, left, flips[:, 0], flips[:, 1]

    def sample(self, batch_size: int) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(distorted, clear) float crops in [0, 1]; distorted is None for clear-only data."""
        index, top, left, hflip, vflip = self._positions(batch_size)
        flat = self.clear.crop_indices(index, top, left, self.crop_size, hflip, vflip)
        clear = to_float(self.clear.gather(flat))
        distorted = None if self.distorted is None else to_float(self.distorted.gather(flat))
        return distorted, clear
