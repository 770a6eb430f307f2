"""Classical denoisers (scikit-image's, and CBM3D when the `bm3d` package is installed), scored next to the
model so its gain means something.

All take their strength from the noise level that `estimate_sigma` measures in the input, so a
clean-looking input (blur, JPEG) is left nearly as it is.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numpy as np

from ..errors import ConfigError

Baseline = Callable[[np.ndarray], np.ndarray]  # H×W×3 float in [0, 1] -> same


def estimated_sigma(image: np.ndarray) -> float:
    """Gaussian noise σ (in [0, 1] units), averaged over channels."""
    from skimage.restoration import estimate_sigma

    return float(np.mean(estimate_sigma(image, channel_axis=-1)))


def nl_means(image: np.ndarray) -> np.ndarray:
    """Non-local means with h = 0.8·σ̂ (scikit-image's recommended setting for fast mode)."""
    from skimage.restoration import denoise_nl_means

    sigma = estimated_sigma(image)
    out = denoise_nl_means(
        image, h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=5, patch_distance=6, channel_axis=-1
    )
    return np.clip(out, 0.0, 1.0)


def total_variation(image: np.ndarray) -> np.ndarray:
    """Chambolle total-variation denoising with weight σ̂ (≈0.1 for σ = 25/255, scikit-image's usual value)."""
    from skimage.restoration import denoise_tv_chambolle

    return np.clip(denoise_tv_chambolle(image, weight=max(estimated_sigma(image), 1e-4), channel_axis=-1), 0.0, 1.0)


def cbm3d(image: np.ndarray) -> np.ndarray:
    """CBM3D (the `bm3d` package, opponent colour space) with σ = σ̂, blind like the other baselines."""
    import bm3d

    return np.clip(bm3d.bm3d_rgb(image, sigma_psd=max(estimated_sigma(image), 1e-3)), 0.0, 1.0)


BASELINES: dict[str, Baseline] = {"nlmeans": nl_means, "tv": total_variation}
OPTIONAL_BASELINES = {"cbm3d": ("bm3d", cbm3d)}  # name -> (module it needs, function): listed when installed
for _name, (_module, _fn) in OPTIONAL_BASELINES.items():
    if importlib.util.find_spec(_module) is not None:
        BASELINES[_name] = _fn


def missing_baseline(name: str) -> str | None:
    """Why an optional baseline cannot run here (None when it can, or when the name is not optional)."""
    if name in OPTIONAL_BASELINES and name not in BASELINES:
        module = OPTIONAL_BASELINES[name][0]
        return f"baseline {name!r} needs the {module!r} package: pip install 'vae-restore[bench]'"
    return None


def check_baselines(names: list[str], missing_ok: bool = False) -> list[str]:
    """Known names, each once, in the order given; an optional one whose package is missing is an error
    unless `missing_ok` (the quality benchmark then leaves its row out)."""
    for name in names:
        if (reason := missing_baseline(name)) and not missing_ok:
            raise ConfigError(reason)
    unknown = [n for n in names if n not in BASELINES and n not in OPTIONAL_BASELINES]
    if unknown:
        raise ConfigError(f"unknown baseline {unknown[0]!r} in --baselines; known: {', '.join(BASELINES)}")
    return list(dict.fromkeys(names))


def parse_baselines(text: str | None) -> list[str]:
    """`nlmeans,tv` -> ["nlmeans", "tv"]; empty or `none` -> []."""
    return check_baselines([n.strip() for n in (text or "").split(",") if n.strip() and n.strip() != "none"])
