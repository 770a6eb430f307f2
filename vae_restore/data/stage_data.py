"""A stage's data: training pixels decoded once into banks on the device, validation images, and a summary.

Under several processes each one trains on its own shard of the images, or, for a global batch stream,
holds all of them. With the disk cache the local main process decodes (once per machine) and the others
wait, then map the same file.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config import PIXEL_CACHES, DataConfig
from ..errors import DataError
from .decode import map_ordered
from .disk_cache import cached_pixels
from .files import find_records
from .image_set import ImageSet, decode_records, load_image_set, split_records, split_train_val
from .listing import ImageRecord
from .packing import DecodeReport, ListSink, decode_into, is_paired
from .pixel_bank import PixelBank

logger = logging.getLogger(__name__)

DEVICE_MEMORY_SHARE = 0.5  # at most this share of free accelerator memory holds pixels; beyond it they stream


@dataclass(frozen=True)
class Shard:
    """This process's place among `count` processes; `keep_all`: it holds every image (a global batch
    stream draws each crop from all of them, whichever process trains on it)."""

    index: int = 0
    count: int = 1
    keep_all: bool = False

    def indices(self, n: int) -> list[int]:
        if self.keep_all:
            return list(range(n))
        if n < self.count:
            logger.warning("%d training images for %d processes: every process samples all of them", n, self.count)
            return list(range(n))
        return list(range(self.index, n, self.count))


@dataclass
class TrainingData:
    target: PixelBank  # clear images (this process's shard)
    source: PixelBank | None  # their distorted partners, for paired data
    val: ImageSet
    num_images: int  # training images kept
    skipped: list[str]  # unreadable files, each message names the file
    padded: list[str]  # images smaller than the crop, reflect-padded
    summary_is_global: bool  # False: the three fields above cover this process's shard only

    @property
    def paired(self) -> bool:
        return self.source is not None


def available_memory() -> int:
    """Bytes the kernel could hand out now (MemAvailable counts reclaimable page cache; free pages do not)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def files_of(records: list[ImageRecord]) -> list[Path]:
    return [p for r in records for p in (r.clear, r.distorted) if p is not None]


def header_sizes(paths: list[Path]) -> dict[Path, int | None]:
    """Each file's decoded RGB size from its header alone; None where it does not even open."""
    sizes: list[int | None] = []

    def probe(path: Path) -> int | None:
        try:
            with Image.open(path) as im:
                return im.width * im.height * 3
        except Exception:  # a bad file is reported when it is decoded
            return None

    map_ordered(probe, paths, sizes.append)
    return dict(zip(paths, sizes, strict=True))


def split_readable(
    records: list[ImageRecord], sizes: dict[Path, int | None], fraction: float, seed: int
) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """`split_records` over the records whose files open: a corrupt file held back would leave validation
    without images and stop the run, depending on the seed. The others join the side of their clear file
    (else training), to be reported there: stage clear would otherwise train on a held-back clear image."""
    opens = [all(sizes[p] is not None for p in files_of([r])) for r in records]
    train, val = split_records([r for r, ok in zip(records, opens, strict=True) if ok], fraction, seed)
    held = {r.clear for r in val}
    broken = [r for r, ok in zip(records, opens, strict=True) if not ok]
    return train + [r for r in broken if r.clear not in held], val + [r for r in broken if r.clear in held]


def choose_pixel_cache(
    choice: str, records: list[ImageRecord], shard: Shard, sizes: Callable[[], dict[Path, int | None]]
) -> str:
    """`disk` when asked, when several processes share a machine, or when the pixels would not fit in memory
    (`sizes`: the files' header sizes, read only when this needs them)."""
    if choice not in PIXEL_CACHES:
        raise DataError(f"pixel_cache must be one of {', '.join(PIXEL_CACHES)}, got {choice!r}")
    if choice != "auto":
        return choice
    if shard.count > 1:
        return "disk"
    need, have = sum(sizes()[p] or 0 for p in files_of(records)), available_memory()
    if need > have // 2:
        logger.info("decoded data needs %.1f GB, %.1f GB free: using the disk cache", need / 1e9, have / 1e9)
        return "disk"
    return "memory"


def place(bank: PixelBank, device: torch.device) -> PixelBank:
    """Pixels on the accelerator when they fit, else on the host (gathered there, crops moved).

    On the CPU a memory-mapped bank stays mapped: pages are read on demand, so it may exceed memory.
    """
    if device.type == "cpu":
        return bank
    if device.type != "cuda":
        return bank.compact().to(device)
    free, _ = torch.cuda.mem_get_info(device)
    if bank.nbytes <= free * DEVICE_MEMORY_SHARE:
        return bank.compact().to(device)
    logger.warning(
        "training pixels (%.1f GB) exceed %.0f%% of free GPU memory: crops stream from host memory",
        bank.nbytes / 1e9,
        100 * DEVICE_MEMORY_SHARE,
    )
    return bank.to(device, pixels=False)


@dataclass
class Decoded:
    """Banks of the records that decoded, and the report (its indices point into `records`)."""

    target: PixelBank
    source: PixelBank | None
    report: DecodeReport
    records: list[ImageRecord]

    def shard(self, shard: Shard) -> Decoded:
        mine = shard.indices(len(self.target))
        source = None if self.source is None else self.source.subset(mine)
        return Decoded(self.target.subset(mine), source, self.report, self.records)

    def image_set(self) -> ImageSet:
        """The decoded images as H×W×3 arrays (views of the banks' pixels)."""
        hwc = lambda bank: [bank.image(i).permute(1, 2, 0).numpy() for i in range(len(bank))]  # noqa: E731
        return ImageSet(
            [str(self.records[i].clear) for i in self.report.kept],
            hwc(self.target),
            None if self.source is None else hwc(self.source),
            self.report.skipped,
            [str(self.records[i].clear) for i in self.report.padded],
        )


def _decoded(clear: torch.Tensor, distorted: torch.Tensor | None, report: DecodeReport, records) -> Decoded:
    """Banks over packed (P, 3) pixels, one image after another as the report lists them."""
    sizes = torch.tensor(report.heights), torch.tensor(report.widths)
    source = None if distorted is None else PixelBank.from_buffer(distorted, *sizes)
    return Decoded(PixelBank.from_buffer(clear, *sizes), source, report, records)


def decode_in_memory(records: list[ImageRecord], min_side: int) -> Decoded:
    clear, distorted = ListSink(), ListSink() if is_paired(records) else None
    report = decode_into(records, min_side, clear, distorted)
    pack = lambda sink: torch.from_numpy(np.concatenate([im.reshape(-1, 3) for im in sink.images]))  # noqa: E731
    return _decoded(pack(clear), None if distorted is None else pack(distorted), report, records)


def decode_on_disk(records: list[ImageRecord], min_side: int, cache_dir: Path) -> Decoded:
    """Through the disk cache: decoded only when no earlier run (or process) has cached these bytes."""
    cached = cached_pixels(records, min_side, cache_dir)
    logger.info("pixel cache %s: %d images", cached.folder, len(cached.report.kept))
    return _decoded(cached.clear, cached.distorted, cached.report, records)


def clear_only(records: list[ImageRecord]) -> list[ImageRecord]:
    """Each clear file once, without its distorted partners."""
    return [ImageRecord(c) for c in dict.fromkeys(r.clear for r in records)]


def _check_strict(config: DataConfig, skipped: list[str]) -> None:
    if config.strict_data and skipped:
        listed = "\n  ".join(skipped[:10])
        raise DataError(
            f"{len(skipped)} unreadable file(s) and strict_data is on:\n  {listed}\n"
            "remove or fix them, or pass --strict_data false to skip them"
        )


def _embedded(config: DataConfig, seed: int, device: torch.device, shard: Shard) -> TrainingData:
    images = load_image_set(None)
    val = None
    if config.val_data:
        val_records = find_records(config.val_data, config.data_layout, config.allow_unpaired)
        val = decode_records(val_records, config.crop_size)
        _check_strict(config, val.skipped)
    train, held = (images, val) if val is not None else split_train_val(images, config.val_fraction, seed)
    mine = train.subset(shard.indices(len(train)))
    target = place(PixelBank(mine.clear, config.crop_size), device)
    return TrainingData(
        target, None, held, len(train), held.skipped, list(dict.fromkeys(held.padded + train.padded)), True
    )


def load_training_data(
    config: DataConfig,
    seed: int,
    device: torch.device | str = "cpu",
    cache_dir: str | Path = "runs/cache",
    shard: Shard = Shard(),
    main_first: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    pairs: bool = True,
) -> TrainingData:
    """Find, pair, split and decode the data of `config`; fail before training on anything `strict_data` forbids.

    `pairs=False` (stage clear) decodes only the clear files of paired data, each once.
    """
    device = torch.device(device)
    if config.train_data is None:
        return _embedded(config, seed, device, shard)
    records = find_records(config.train_data, config.data_layout, config.allow_unpaired)
    sizes = functools.cache(functools.partial(header_sizes, files_of(records)))  # headers read once, if at all
    if config.val_data is not None:
        val_records = find_records(config.val_data, config.data_layout, config.allow_unpaired)
    else:
        records, val_records = split_readable(records, sizes(), config.val_fraction, seed)
    if not pairs:
        records, val_records = clear_only(records), clear_only(val_records)
    mode = choose_pixel_cache(config.pixel_cache, records, shard, sizes)
    if mode == "disk":
        with main_first():  # the local main process builds the caches while the others wait, then they map them
            val = decode_on_disk(val_records, config.crop_size, Path(cache_dir)).image_set()
            train = decode_on_disk(records, config.crop_size, Path(cache_dir)).shard(shard)
    else:
        val = decode_records(val_records, config.crop_size)
        _check_strict(config, val.skipped)
        train = decode_in_memory([records[i] for i in shard.indices(len(records))], config.crop_size)
    skipped = val.skipped + train.report.skipped
    _check_strict(config, skipped)
    padded = list(dict.fromkeys(val.padded + [str(train.records[i].clear) for i in train.report.padded]))
    source = None if train.source is None else place(train.source, device)
    # else each process saw its shard
    is_global = mode == "disk" or shard.count == 1 or shard.keep_all or len(records) < shard.count
    return TrainingData(place(train.target, device), source, val, len(train.report.kept), skipped, padded, is_global)
