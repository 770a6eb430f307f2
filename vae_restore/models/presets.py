"""Named architectures of the VAE family; a checkpoint stores the preset name and its fields."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Preset:
    """Shape of one VAE: four stride-2 stages, an FC bottleneck and a mirrored decoder with skips."""

    name: str
    channels: tuple[int, int, int, int] = (32, 64, 128, 256)
    hidden_dim: int = 512
    latent_dim: int = 128
    image_size: int = 128
    in_channels: int = 3

    @property
    def bottleneck_size(self) -> int:
        """Spatial side of the deepest feature map (four stride-2 convolutions)."""
        return self.image_size // 16

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    if preset.name in PRESETS:
        raise ValueError(f"preset {preset.name!r} is already registered")
    PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None


ORIGINAL = register_preset(Preset(name="original"))
