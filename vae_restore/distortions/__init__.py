"""Synthetic degradations that turn clear images into training inputs (batched, seeded, on any device)."""

from .artwork import aged, color_cast, cracks, dust, fading, scratches, yellowing
from .blur import gaussian_blur, motion_blur
from .jpeg import jpeg_compression
from .mixture import DistortionMixture, distortions_from_config
from .noise import gaussian_noise, poisson_noise
from .resample import down_up

__all__ = [
    "DistortionMixture",
    "aged",
    "color_cast",
    "cracks",
    "distortions_from_config",
    "down_up",
    "dust",
    "fading",
    "gaussian_blur",
    "gaussian_noise",
    "jpeg_compression",
    "motion_blur",
    "poisson_noise",
    "scratches",
    "yellowing",
]
