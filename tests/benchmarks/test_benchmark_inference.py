"""The inference benchmark's FLOP count and table (the timings themselves are measured, not tested)."""

from __future__ import annotations

from benchmarks.inference import markdown_table
from vae_restore.models import ORIGINAL, Preset
from vae_restore.models.cost import measure_cost, preset_cost
from vae_restore.models.presets import COSTS


def test_flops_of_a_checkpoints_preset_are_counted_when_not_registered():
    narrow = Preset(name="narrow", channels=(8, 16, 32, 64), hidden_dim=64, latent_dim=16)
    assert preset_cost(narrow) == measure_cost(narrow) and preset_cost(narrow).flops < preset_cost(ORIGINAL).flops
    assert preset_cost(ORIGINAL) is COSTS["original"]
    assert abs(preset_cost(ORIGINAL).gflops - 0.46) < 0.01  # the original VAE: about 0.46 GFLOP per 128×128 tile


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
