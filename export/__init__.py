"""Export scripts run from the repository root: `python -m export.onnx`."""
