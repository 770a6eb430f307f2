"""Decode records once into packed pixels: every good image written in order, every bad one skipped and named.

The pixels go to a sink: memory (a list) or a file (written as they come, so a dataset larger
than memory never has to fit in it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import DataError
from .decode import decode_rgb, map_ordered
from .listing import ImageRecord
from .pixel_bank import needs_padding, reflect_pad_to

logger = logging.getLogger(__name__)


class ListSink:
    """Collects decoded images in memory."""

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []

    def add(self, image: np.ndarray) -> None:
        self.images.append(image)


class FileSink:
    """Appends raw RGB bytes to a file; `finish` closes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: BinaryIO = open(path, "wb")  # noqa: SIM115 (closed in finish)

    def add(self, image: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(image).data)

    def finish(self) -> Path:
        self.file.close()
        return self.path


@dataclass
class DecodeReport:
    """Which records made it into the sinks (in order), their sizes, and what was skipped or padded."""

    kept: list[int] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one message per skipped record, naming the file
    padded: list[int] = field(default_factory=list)  # record indices that were reflect-padded


def group_by_clear(records: list[ImageRecord]) -> list[list[int]]:
    """Indices of consecutive records sharing a clear file, so each clear file is decoded once."""
    groups: list[list[int]] = []
    for i, r in enumerate(records):
        if groups and records[groups[-1][0]].clear == r.clear:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


Outcome = tuple[int, np.ndarray | None, np.ndarray | None, str | None]


def _decode_group(records: list[ImageRecord], group: list[int]) -> list[Outcome]:
    """(record index, clear, distorted, error message) for each record of a group."""
    try:
        clear = decode_rgb(records[group[0]].clear)
    except DataError as e:
        return [(i, None, None, str(e)) for i in group]
    out: list[Outcome] = []
    for i in group:
        path = records[i].distorted
        if path is None:
            out.append((i, clear, None, None))
            continue
        try:
            distorted = decode_rgb(path)
        except DataError as e:
            out.append((i, None, None, str(e)))
            continue
        if distorted.shape != clear.shape:
            message = (
                f"{path}: {distorted.shape[1]}x{distorted.shape[0]} but its clear image {records[i].clear} is "
                f"{clear.shape[1]}x{clear.shape[0]}; paired images must have the same size"
            )
            out.append((i, None, None, message))
            continue
        out.append((i, clear, distorted, None))
    return out


def decode_into(
    records: list[ImageRecord], min_side: int, clear_sink, distorted_sink=None, workers: int | None = None
) -> DecodeReport:
    """Decode every record into the sinks (distorted only for paired records), reflect-padding small images."""
    report = DecodeReport()

    def handle(outcomes: list[Outcome]) -> None:
        for i, clear, distorted, error in outcomes:
            if error is not None:
                logger.warning("skipping %s", error)
                report.skipped.append(error)
                continue
            if needs_padding(clear, min_side):
                report.padded.append(i)
                clear = reflect_pad_to(clear, min_side)
                distorted = None if distorted is None else reflect_pad_to(distorted, min_side)
            clear_sink.add(clear)
            if distorted_sink is not None:
                distorted_sink.add(distorted)
            report.kept.append(i)
            report.heights.append(clear.shape[0])
            report.widths.append(clear.shape[1])

    map_ordered(lambda g: _decode_group(records, g), group_by_clear(records), handle, workers)
    if not report.kept:
        listed = "\n  ".join(report.skipped[:10])
        raise DataError(f"none of the {len(records)} images could be read:\n  {listed}")
    return report


def is_paired(records: list[ImageRecord]) -> bool:
    return bool(records) and records[0].distorted is not None
