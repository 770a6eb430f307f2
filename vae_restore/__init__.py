"""vae-restore: train an image-restoration VAE with Accelerate, export it to ONNX, restore with onnxruntime.

The package root imports torch lazily so that `vae_restore.inference` stays torch-free.
"""

__version__ = "0.1.0"

__all__ = ["VAE", "__version__", "load_model"]


def __getattr__(name: str):
    if name in ("VAE", "load_model"):
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module 'vae_restore' has no attribute {name!r}")
