"""Train the damage detector that routes images between the bundled models, and export it to ONNX.

    python launch/train_detector.py --train_data_dir ../shared/data/train_photos --output_dir runs/detector

Writes OUTPUT_DIR/detector.safetensors and OUTPUT_DIR/detector.onnx (+ manifest), which must agree with
PyTorch on onnxruntime. `launch/bundle_router.py` puts it into the package. Every key is a flag (see --help).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vae_restore.cli_common import run_with_clear_errors


def main(argv: list[str] | None = None) -> int:
    from vae_restore.config_cli import add_dataclass_arguments, dataclass_from_args
    from vae_restore.training.detector_fit import DetectorConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_arguments(parser, DetectorConfig)
    config = dataclass_from_args(DetectorConfig, parser.parse_args(argv))
    from vae_restore.export.detector_export import export_detector
    from vae_restore.training.detector_fit import save_detector, train_detector

    model = train_detector(config)
    weights = save_detector(model, config)
    graph = export_detector(model, Path(config.output_dir), weights)
    print(f"wrote {weights} and {graph}")
    return 0


if __name__ == "__main__":
    sys.exit(run_with_clear_errors(main))
