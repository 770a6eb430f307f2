"""Reading and writing configs: YAML files and overrides, coerced to the schema's types with errors that
name the key; a run folder's config.json, which is a config too."""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from .cli_common import true_or_false
from .config import Config
from .errors import ConfigError


def sections() -> dict[str, type]:
    """Section name -> its dataclass, in the schema's order."""
    return typing.get_type_hints(Config)


def _leaf_owner() -> dict[str, str]:
    """Map each leaf key to its section; leaf names are unique so each can be a flag."""
    owner: dict[str, str] = {}
    for section, cls in sections().items():
        for f in dataclasses.fields(cls):
            assert f.name not in owner, f"config key {f.name!r} is defined twice"
            owner[f.name] = section
    return owner


def hints(section: str) -> dict[str, Any]:
    return typing.get_type_hints(sections()[section])


def coerce_value(value: Any, hint: Any, key: str) -> Any:
    """Turn YAML or command-line values into the annotated type, with an error that names the key.

    Strings (the command line, quoted YAML) are parsed; other YAML types must already fit, so that a YAML
    boolean, null or list is not silently turned into "False", "None" or 1.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return coerce_value(value, next(a for a in args if a is not type(None)), key)
    try:
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            if len(items) != len(args):
                raise ValueError(f"expected {len(args)} values")
            return tuple(coerce_value(v, a, key) for v, a in zip(items, args, strict=True))
        if hint is bool:
            if isinstance(value, str):
                return true_or_false(value)
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError("expected true or false")
        if isinstance(value, bool) and hint is str:
            raise ValueError("YAML reads no/yes/on/off as booleans; quote the value, e.g. mixed_precision: 'no'")
        if isinstance(value, bool):
            raise ValueError(f"expected {hint.__name__}, not a boolean")
        if hint is str and not isinstance(value, str | int | float | os.PathLike):
            raise ValueError("expected a string")
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise ValueError("expected an integer")
        return hint(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config key {key!r}: cannot read {value!r} ({e})") from None


def apply_overrides(config: Config, overrides: dict[str, Any]) -> Config:
    """Set leaf keys (`learning_rate`) or dotted ones (`optim.learning_rate`) on the config."""
    owner = _leaf_owner()
    for key, value in overrides.items():
        leaf = key.split(".")[-1]
        if leaf not in owner or ("." in key and key.split(".")[0] != owner[leaf]):
            raise ConfigError(f"unknown config key {key!r}")
        section = owner[leaf]
        setattr(getattr(config, section), leaf, coerce_value(value, hints(section)[leaf], key))
    return config


RUN_SUMMARY = "run"


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config: sections (`train:`, `optim:` ...) or flat leaf keys, both accepted; a run
    folder's config.json (JSON is YAML) is one too."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"config file {path} is not a file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file {path}{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key == RUN_SUMMARY and isinstance(value, dict):
            continue  # a run folder's config.json: what that run did, not settings
        if key in sections():
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: section {key!r} must be a mapping")
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def build_config(yaml_path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    config = Config()
    if yaml_path is not None:
        apply_overrides(config, load_yaml(yaml_path))
    apply_overrides(config, overrides or {})
    return config.validate()


def save_config(config: Config, path: str | Path, run: dict[str, Any] | None = None) -> None:
    """The resolved config by section, and what the run did under `run`: `--config` takes the file back."""
    data = config.to_dict() | ({RUN_SUMMARY: run} if run is not None else {})
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
