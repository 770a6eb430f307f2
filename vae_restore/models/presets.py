"""Named architectures of the VAE family; a checkpoint stores the preset name and its fields.

Every preset keeps the family's shape: an encoder, a latent with mu/logvar (sampled while training, mu
when restoring), a decoder that adds the encoder's features back at each scale. Two architectures:

`arch="fc"` (`vae_arch`, the original network and its variants): four stride-2 4×4 encoder convolutions,
an FC bottleneck, a mirrored decoder; fixed `image_size` tiles. Its optional parts, all off in `original`:

- `refine_channels`/`refine_layers`: the last up-convolution yields `refine_channels` features at full
  resolution, refined by `refine_layers` 3×3 convolutions (+ ReLU) and mapped to RGB by a 3×3 `head`;
- `full_res_skip`: a 3×3 encoder convolution at full resolution (`conv0`, skip `s0`) added to those features;
- `residual`: the decoder predicts a correction in logit space, restored = sigmoid(logit(input) + correction),
  so an untrained decoder starts near the identity and every loss keeps working on logits.

`arch="conv"` (`fullconv_arch`): one stage of `blocks` residual blocks per entry of `channels`, 2×2 stride-2
steps between them, a spatial latent of `latent_dim` channels at the deepest scale, skips at every other
scale and a pixel-space residual output. Fully convolutional: any H×W that is a multiple of `multiple`;
`image_size` is then only the training crop side and the export's example size.

New fields must have defaults: weights saved before a field existed still load.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..errors import ConfigError

ARCHS = ("fc", "conv")


@dataclass(frozen=True)
class Preset:
    """Shape of one VAE: encoder stages, a mu/logvar latent and a mirrored decoder with skips."""

    name: str
    channels: tuple[int, ...] = (32, 64, 128, 256)
    hidden_dim: int = 512
    latent_dim: int = 128
    image_size: int = 128
    in_channels: int = 3
    refine_channels: int = 0
    refine_layers: int = 0
    full_res_skip: bool = False
    residual: bool = False
    arch: str = "fc"  # fc: FC bottleneck, fixed tiles; conv: fully convolutional, spatial latent
    blocks: int = 0  # conv: residual blocks per scale, in the encoder and again in the decoder

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ConfigError(f"preset {self.name!r}: arch must be one of {ARCHS}, got {self.arch!r}")
        if self.arch == "fc" and len(self.channels) != 4:
            raise ConfigError(f"preset {self.name!r}: an fc preset has 4 channel counts, got {self.channels}")
        if self.arch == "conv" and (len(self.channels) < 2 or self.blocks < 1):
            raise ConfigError(f"preset {self.name!r}: a conv preset needs >= 2 scales and blocks >= 1")
        if self.image_size % 16:
            raise ConfigError(f"preset {self.name!r}: image_size must be a multiple of 16, got {self.image_size}")
        if (self.refine_layers or self.full_res_skip) and self.refine_channels <= 0:
            raise ConfigError(f"preset {self.name!r}: refine_layers and full_res_skip need refine_channels > 0")

    @property
    def fully_convolutional(self) -> bool:
        """True when the network takes any H×W (a multiple of `multiple`) rather than fixed tiles."""
        return self.arch == "conv"

    @property
    def multiple(self) -> int:
        """What an input's height and width must be a multiple of (fc presets: exactly `image_size`)."""
        return 2 ** (len(self.channels) - 1) if self.fully_convolutional else self.image_size

    def fits(self, height: int, width: int) -> bool:
        """Whether the network takes an H×W input as it is."""
        if self.fully_convolutional:
            return height % self.multiple == 0 and width % self.multiple == 0
        return height == width == self.image_size

    @property
    def bottleneck_size(self) -> int:
        """Spatial side of the deepest feature map (four stride-2 convolutions)."""
        return self.image_size // 16

    @property
    def has_head(self) -> bool:
        """True when full-resolution features are mapped to RGB by a 3×3 `decoder.head`."""
        return self.refine_channels > 0

    def skip_shapes(self) -> dict[str, tuple[int, int, int]]:
        """Skip name -> (channels, height, width), in the order the encoder returns them."""
        c1, c2, c3, _ = self.channels
        s = self.image_size
        shapes = {"s1": (c1, s // 2, s // 2), "s2": (c2, s // 4, s // 4), "s3": (c3, s // 8, s // 8)}
        if self.full_res_skip:
            shapes["s0"] = (self.refine_channels, s, s)
        return shapes

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Preset:
        """Rebuild a preset from `to_dict()` output; fields written by a newer version are refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"preset fields {unknown} are unknown to this version of vae-restore; upgrade it")
        return cls(**{**data, "channels": tuple(data.get("channels", cls.channels))})


@dataclass(frozen=True)
class PresetCost:
    """Listed size and compute of a preset: checked against the model by tests/models/test_presets.py."""

    parameters: int
    flops: int  # one restoration forward of one image_size² tile, counted by torch's FlopCounterMode
    tile: int = 128  # that tile's side

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    @property
    def gflops_per_megapixel(self) -> float:
        """GFLOP per million restored pixels (tile presets: tiles laid edge to edge, no overlap)."""
        return self.flops / self.tile**2 * 1e6 / 1e9


PRESETS: dict[str, Preset] = {}
COSTS: dict[str, PresetCost] = {}
DESCRIPTIONS: dict[str, str] = {}


def register_preset(preset: Preset, cost: PresetCost | None = None, description: str = "") -> Preset:
    if preset.name in PRESETS:
        raise ValueError(f"preset {preset.name!r} is already registered")
    PRESETS[preset.name] = preset
    if cost is not None:
        COSTS[preset.name] = cost
    DESCRIPTIONS[preset.name] = description
    return preset


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None


ORIGINAL = register_preset(
    Preset(name="original"),
    PresetCost(parameters=18_371_523, flops=461_766_656),
    "the original network, bit for bit: the original code's layers and parameter names",
)
register_preset(
    Preset(name="wide", channels=(64, 128, 256, 512)),
    PresetCost(parameters=39_297_667, flops=1_728_446_464),
    "twice the channels at every stage",
)
register_preset(
    Preset(name="refine", refine_channels=32, refine_layers=2),
    PresetCost(parameters=18_405_763, flops=1_215_692_800),
    "32 full-resolution features refined by two 3×3 convolutions and a 3×3 head",
)
register_preset(
    Preset(name="residual", residual=True),
    PresetCost(parameters=18_371_523, flops=461_766_656),
    "original layers, output = sigmoid(logit(input) + predicted correction)",
)
register_preset(
    Preset(name="fullres", refine_channels=32, refine_layers=2, full_res_skip=True, residual=True),
    PresetCost(parameters=18_406_659, flops=1_244_004_352),
    "refine + a full-resolution skip (3×3 encoder conv) + residual output",
)
register_preset(
    Preset(name="fullconv", arch="conv", channels=(16, 32, 64, 128), blocks=2, latent_dim=64, residual=True),
    PresetCost(parameters=1_680_707, flops=2_557_476_864),
    "fully convolutional: 2 residual blocks per scale at 4 scales, a 64-channel spatial latent, "
    "skips at full resolution and below, residual output; whole images of any size",
)
