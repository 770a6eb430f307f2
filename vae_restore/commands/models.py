"""List the models bundled with this install (restore with --model pretrained:NAME, fine-tune from it)."""

from __future__ import annotations

import argparse

NAME = "models"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from .. import pretrained

    names = pretrained.names()
    if not names:
        print("no bundled models in this install; export one with `python -m export.onnx`")
        return 0
    if pretrained.AUTO in pretrained.available():
        default = " (default)" if pretrained.DEFAULT_MODEL == pretrained.AUTO else ""
        rule = pretrained.routing_rule().describe()
        print(f"{pretrained.AUTO}{default}: each image restored by the model its damage calls for ({rule})")
        print(f"  restore with --model {pretrained.PREFIX}{pretrained.AUTO}; fine-tune from one of the models below")
    for name in names:
        default = " (default)" if name == pretrained.DEFAULT_MODEL else ""
        print(f"{name}{default}: {pretrained.card_summary(name)}")
        spec = f"{pretrained.PREFIX}{name}"
        print(f"  graph {pretrained.onnx_path(name)}; restore with --model {spec}; fine-tune with --init_from {spec}")
    return 0
