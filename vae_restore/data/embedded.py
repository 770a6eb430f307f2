"""The default training data: colour sample images that scikit-image ships (no download)."""

from __future__ import annotations

import numpy as np

EMBEDDED_NAMES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "stereo_motorcycle",
    "colorwheel",
)


def embedded_images() -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8 H×W×3) for each sample; stereo_motorcycle gives its left view."""
    import skimage.data

    images = []
    for name in EMBEDDED_NAMES:
        image = getattr(skimage.data, name)()
        if isinstance(image, tuple):
            image = image[0]
        images.append((name, np.ascontiguousarray(image[..., :3], dtype=np.uint8)))
    return images
