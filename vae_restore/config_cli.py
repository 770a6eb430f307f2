"""The config as command-line flags: one flag per leaf key, documented by the comment beside its field."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize
import typing
from pathlib import Path

from .config import STAGES, Config
from .config_io import build_config, coerce_value, hints, sections
from .errors import ConfigError


def field_comments(cls: type) -> dict[str, str]:
    """The comment beside each field of a dataclass: the one place a key is documented, shown by `--help`."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments = {
        tok.start[0]: tok.string.lstrip("# ")
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }
    body = ast.parse(source).body[0].body
    return {
        node.target.id: comments[node.lineno]
        for node in body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.lineno in comments
    }


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per leaf key; unset flags are absent from the namespace so they don't override YAML."""
    for section, cls in sections().items():
        own_doc = cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}(")  # not dataclass's signature
        group = parser.add_argument_group(section, description=inspect.cleandoc(cls.__doc__) if own_doc else None)
        comments = field_comments(cls)
        for f in dataclasses.fields(cls):
            hint = hints(section)[f.name]
            nargs = len(typing.get_args(hint)) if typing.get_origin(hint) is tuple else None
            flag = hint is bool  # `--compile` alone means true, as diffusers' store_true flags
            about = "; ".join(filter(None, [comments.get(f.name), "true or false (alone: true)" if flag else ""]))
            # configs/<stage>.yaml usually sets the key, so the dataclass default alone would mislead.
            default = "" if f.default is dataclasses.MISSING else f"; default: the YAML config's, else {f.default!r}"
            group.add_argument(
                f"--{f.name}",
                default=argparse.SUPPRESS,
                nargs="?" if flag else nargs,
                const="true" if flag else None,
                metavar="V" if nargs else f.name.upper(),
                help=f"{about} ({section}.{f.name}{default})".lstrip(),
            )


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag per field of a small flat config (a command's own, such as the detector's), documented the same way."""
    comments, types_ = field_comments(cls), typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = types_[f.name]
        nargs = len(typing.get_args(hint)) if typing.get_origin(hint) is tuple else None
        parser.add_argument(
            f"--{f.name}",
            default=argparse.SUPPRESS,
            nargs=nargs,
            metavar="V" if nargs else f.name.upper(),
            help=f"{comments.get(f.name, '')} (default: {f.default!r})".lstrip(),
        )


def dataclass_from_args(cls: type, args: argparse.Namespace):
    """`cls` from the flags that were given (the others keep their defaults), each coerced to its field's type."""
    types_ = typing.get_type_hints(cls)
    return cls(**{k: coerce_value(v, types_[k], k) for k, v in vars(args).items() if k in types_})


def stage_yaml(configs: str | Path, stage: str) -> Path:
    """The stage's default YAML; the stage is checked first so a typo lists the stages, not a missing file."""
    if stage not in STAGES:
        raise ConfigError(f"stage must be one of {STAGES}, got {stage!r}")
    return Path(configs) / f"{stage}.yaml"


def config_from_args(args: argparse.Namespace, default_yaml: str | Path | None) -> Config:
    """Build the config from `--config` (or the default YAML) and the flags that were given."""
    given = {k: v for k, v in vars(args).items() if k != "config"}
    return build_config(getattr(args, "config", None) or default_yaml, given)
