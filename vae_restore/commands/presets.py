"""List the model presets with their parameter count and compute (choose one with --preset NAME)."""

from __future__ import annotations

import argparse

from ..cli_common import add_switch

NAME = "presets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_switch(parser, "--json", "print the presets' fields and costs as JSON (default false)")


def run(args: argparse.Namespace) -> int:
    import json

    from ..models.presets import COSTS, DESCRIPTIONS, PRESETS

    if args.json:
        entries = {
            name: {
                **p.to_dict(),
                "parameters": COSTS[name].parameters,
                "flops_per_tile": COSTS[name].flops,
                "gflops_per_megapixel": round(COSTS[name].gflops_per_megapixel, 2),
            }
            for name, p in PRESETS.items()
        }
        print(json.dumps(entries, indent=2))
        return 0
    print(f"{'preset':<10} {'parameters':>12} {'GFLOP/tile':>11} {'GFLOP/MP':>9}  description")
    for name, preset in PRESETS.items():
        cost = COSTS[name]
        size = "any H×W" if preset.fully_convolutional else f"{preset.image_size}x{preset.image_size} tiles"
        print(
            f"{name:<10} {cost.parameters:>12,} {cost.gflops:>11.2f} {cost.gflops_per_megapixel:>9.1f}  "
            f"{DESCRIPTIONS[name]} ({size})"
        )
    return 0
