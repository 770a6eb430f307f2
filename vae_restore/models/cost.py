"""Parameter count and FLOPs of a preset, measured on the model itself (torch's FlopCounterMode)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .presets import COSTS, PRESETS, Preset, PresetCost
from .vae_arch import VAE


def measure_cost(preset: Preset) -> PresetCost:
    """Parameters of the whole VAE (logvar head included) and FLOPs of one tile's restoration forward."""
    model = VAE(preset).eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model.restore(torch.rand(1, preset.in_channels, preset.image_size, preset.image_size))
    return PresetCost(sum(p.numel() for p in model.parameters()), int(counter.get_total_flops()))


def preset_cost(preset: Preset) -> PresetCost:
    """The registered cost of a built-in preset, else measured (a preset read from a checkpoint may differ)."""
    return COSTS[preset.name] if PRESETS.get(preset.name) == preset and preset.name in COSTS else measure_cost(preset)
