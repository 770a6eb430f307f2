"""What every entry point shares: the toolkit's own errors end the program with one clear line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from .errors import Preempted, VAERestoreError

# Import names of the `train` extra: without them only restoring works (the `infer` install).
TRAINING_MODULES = frozenset(
    ("torch", "torchvision", "accelerate", "safetensors", "yaml", "tqdm", "skimage", "pywt", "wandb", "tensorboard")
    + ("onnx", "onnxscript")
)


def run_with_clear_errors(main: Callable[[], int]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    try:
        return main()
    except Preempted as e:
        print(str(e), file=sys.stderr)
        return e.exit_code
    except VAERestoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in TRAINING_MODULES:
            raise
        print(
            f"error: {e.name} is not installed; this command needs: pip install 'vae-restore[train]'", file=sys.stderr
        )
        return 2
