"""Training recipes compared by the quality benchmark: named sets of config overrides for both stages.

Every recipe but `default` starts from `BASE` (the original code's loss, no extras), so a recipe means the
same thing whatever configs/*.yaml ship; `default` is exactly what configs/clear.yaml and distorted.yaml say.
More recipes can come from a YAML file (`name: {key: value, ...}`, keys as in the config).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vae_restore.config import Config
from vae_restore.config_io import apply_overrides
from vae_restore.errors import ConfigError

BASE = {"reconstruction": "bce", "kl_weight": 1.0, "kl_warmup_steps": 0, "ssim_weight": 0.0, "ema_decay": 0.0}


@dataclass(frozen=True)
class Recipe:
    name: str
    overrides: dict = field(default_factory=dict)  # leaf config keys, applied to both stages
    description: str = ""

    def apply(self, config: Config) -> Config:
        return apply_overrides(config, self.overrides)


def _recipe(name: str, description: str, **changes) -> Recipe:
    return Recipe(name, {**BASE, **changes}, description)


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("default", {}, "configs/clear.yaml + configs/distorted.yaml as shipped"),
        _recipe("bce", "the original loss: BCE + KL (β = 1)"),
        _recipe("l1", "L1 + KL", reconstruction="l1"),
        _recipe("mse", "MSE + KL", reconstruction="mse"),
        _recipe("charbonnier", "Charbonnier + KL", reconstruction="charbonnier"),
        _recipe("charbonnier_ssim", "Charbonnier + 0.2·SSIM + KL", reconstruction="charbonnier", ssim_weight=0.2),
        _recipe(
            "charbonnier_ema",
            "Charbonnier + KL warmed up over 100 steps, EMA 0.999",
            reconstruction="charbonnier",
            kl_warmup_steps=100,
            ema_decay=0.999,
        ),
    )
}


def load_recipe_file(path: str | Path) -> dict[str, Recipe]:
    """`name: {key: value}` recipes from YAML, on top of `BASE` like the built-in ones."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe file {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ConfigError(f"{path}: expected `name: {{config_key: value, ...}}` entries")
    recipes = {name: _recipe(str(name), f"from {path.name}", **values) for name, values in raw.items()}
    for recipe in recipes.values():
        recipe.apply(Config())  # unknown keys and bad values fail here, before any training
    return recipes


def select_recipes(names: list[str], extra: dict[str, Recipe] | None = None) -> list[Recipe]:
    known = {**RECIPES, **(extra or {})}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown recipe {unknown[0]!r} in --recipes; known: {', '.join(known)}")
    return [known[n] for n in dict.fromkeys(names)]
