"""The inference benchmark's FLOP count and table (the timings themselves are measured, not tested)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from vae_restore.benchmarks.inference import forward_flops, markdown_table
from vae_restore.models import ORIGINAL, PRESETS, VAE, Preset


def test_forward_flops_match_torch_flop_counter():
    narrow = Preset(name="narrow", channels=(8, 16, 32, 64), hidden_dim=64, latent_dim=16)
    for preset in (*PRESETS.values(), narrow):
        counter = FlopCounterMode(display=False)
        with counter:
            VAE(preset).restore(torch.rand(1, 3, preset.image_size, preset.image_size))
        assert abs(forward_flops(preset) - counter.get_total_flops()) <= 1e-3 * counter.get_total_flops()
    assert abs(forward_flops(ORIGINAL) / 1e9 - 0.46) < 0.01  # SPEC §1: about 0.46 GFLOP per 128×128 tile


def test_table_reports_the_speed_up_against_pytorch():
    rows = [
        {
            "engine": e,
            "image": "x 512×512",
            "tiles": 25,
            "provider": p,
            "ms_per_image": ms,
            "cpu_ms_per_image": ms / 2,
            "tiles_per_s": 25e3 / ms,
            "gflops": 1.0,
            "rss_loaded_mib": 100,
            "peak_rss_mib": 200,
        }
        for e, p, ms in (("onnxruntime", "CPUExecutionProvider", 500.0), ("pytorch", "cpu", 800.0))
    ]
    table = markdown_table(rows, "title")
    assert "| 1.60x / 1.60x |" in table and "| 1.00x / 1.00x |" in table
