"""`model.onnx.json`, the manifest beside an exported model: what it is, where it came from, how it was checked.

Torch-free: `vae_restore.inference` reads it to verify the model file before running it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..checksums import sha256_file
from ..errors import CheckpointError

MANIFEST_SUFFIX = ".json"
MULTIPLE_KEY = "vae_restore.multiple"  # graph metadata of a dynamic-H×W export: H and W must be multiples of it
FORMAT_VERSION = 2  # 2: a fully convolutional export records "spatial": "dynamic" and its "multiple"


def manifest_path(onnx_path: str | os.PathLike) -> Path:
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(onnx_path.name + MANIFEST_SUFFIX)


def write_manifest(path: Path, manifest: dict) -> None:
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")


def publish(tmp_model: Path, output: Path, manifest: dict) -> None:
    """Rename a checked graph to `output` with its manifest beside it; the manifest is written under a temporary
    name first, so a reader finds both or the previous pair, and nothing half-written is left behind."""
    tmp_manifest = manifest_path(tmp_model)
    try:
        write_manifest(tmp_manifest, manifest)
        os.replace(tmp_model, output)
        os.replace(tmp_manifest, manifest_path(output))
    finally:
        tmp_manifest.unlink(missing_ok=True)


def read_manifest(onnx_path: str | os.PathLike) -> dict:
    path = manifest_path(onnx_path)
    if not path.is_file():
        raise CheckpointError(
            f"no manifest {path} beside {onnx_path}; export with `python -m export.onnx`, "
            "or run it unverified with Restorer(..., verify=False)"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable manifest ({e})") from None
    if not isinstance(manifest, dict) or "sha256" not in manifest:
        raise CheckpointError(f"{path}: no 'sha256' key; re-export the model with `python -m export.onnx`")
    return manifest


def verify_model_file(onnx_path: str | os.PathLike) -> dict:
    """Return the manifest if the file's sha256 matches it; refuse a modified or swapped file."""
    manifest = read_manifest(onnx_path)
    actual = sha256_file(onnx_path)
    if actual != manifest["sha256"]:
        raise CheckpointError(
            f"{onnx_path}: sha256 {actual[:16]}… does not match {manifest_path(onnx_path).name} "
            f"({str(manifest['sha256'])[:16]}…); the file was changed or belongs to another export — re-export it"
        )
    return manifest


def package_versions(names: tuple[str, ...] = ("vae-restore", "torch", "onnx", "onnxscript", "onnxruntime")) -> dict:
    """Installed versions by distribution name; onnxruntime-gpu counts as onnxruntime."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        for dist in (name, f"{name}-gpu") if name == "onnxruntime" else (name,):
            try:
                found[name] = version(dist)
                break
            except PackageNotFoundError:
                found[name] = None
    return found
