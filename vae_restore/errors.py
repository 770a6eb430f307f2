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


class Preempted(VAERestoreError):
    """The run stopped on SIGTERM/SIGINT after writing a checkpoint; the exit status says which signal."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class ExportError(VAERestoreError):
    """An ONNX export could not be written or did not pass the parity gate."""


class InferenceError(VAERestoreError, RuntimeError):
    """onnxruntime could not load or run the model (out of memory, a broken file, a failed provider)."""
