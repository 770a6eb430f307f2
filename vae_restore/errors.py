"""Typed errors: each names what is wrong and, where there is one, the command that fixes it."""


class VAERestoreError(Exception):
    """Base class for the toolkit's own errors."""


class ConfigError(VAERestoreError, ValueError):
    """A configuration key or value is not valid."""


class DataError(VAERestoreError, ValueError):
    """Training or evaluation data is missing, unreadable or unpaired."""


class CheckpointError(VAERestoreError):
    """Weights or training state cannot be loaded."""


class TrainingError(VAERestoreError, RuntimeError):
    """Training cannot go on (a NaN loss, a missing parent stage)."""


class ExportError(VAERestoreError):
    """An ONNX export could not be written or did not pass the parity gate."""
