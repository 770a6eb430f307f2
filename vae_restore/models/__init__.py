"""Model architectures (`*_arch`), the preset registry and safetensors I/O."""

from .io import (
    WEIGHTS_NAME,
    import_original_state_dict,
    load_model,
    read_metadata,
    save_model,
    sha256_file,
)
from .presets import ORIGINAL, PRESETS, Preset, get_preset, register_preset
from .vae_arch import VAE, VAEOutput

__all__ = [
    "ORIGINAL",
    "PRESETS",
    "WEIGHTS_NAME",
    "Preset",
    "VAE",
    "VAEOutput",
    "get_preset",
    "import_original_state_dict",
    "load_model",
    "read_metadata",
    "register_preset",
    "save_model",
    "sha256_file",
]
