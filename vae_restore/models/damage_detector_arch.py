"""A small blind damage detector: which kinds of damage an image shows, one probability per group.

It looks at a whole image of any size (convolutions at 1, 1/2, 1/4 and 1/8 scale, then the mean and the
maximum of every channel over the image), so one scratch or a global colour cast can both raise its score.
The bundled models are routed by it: an image it calls aged goes to `aged`, any other to `general`.
"""

from __future__ import annotations

import torch
from torch import nn

# The damage groups it is trained on, in the order the distortion mixture applies them; "aging" is fading,
# yellowing, scratches and dust drawn together (`--p_aging`).
DAMAGE_GROUPS = ("aging", "gaussian_blur", "gaussian_noise", "jpeg")


class DamageDetector(nn.Module):
    """N×3×H×W images in [0, 1], any H and W of at least 8 -> N×len(groups) logits."""

    def __init__(self, width: int = 24, groups: tuple[str, ...] = DAMAGE_GROUPS):
        super().__init__()
        self.groups = groups
        layers: list[nn.Module] = []
        channels = 3
        for level, out in enumerate((width, 2 * width, 4 * width, 4 * width)):
            if level:
                layers += [nn.Conv2d(channels, out, 2, stride=2), nn.ReLU()]
                channels = out
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU()]
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * channels, len(groups))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.features(image - 0.5)
        return self.head(torch.cat([features.mean((2, 3)), features.amax((2, 3))], 1))
