"""Restore image files with an exported model on onnxruntime (no torch): files, folders and globs.

Folders and globs yield image files only (by suffix); a file named explicitly is always tried.
Each output keeps its input's name (folders keep their sub-folders) under --output. An output that
would land on an input is refused before anything runs; a file that fails is reported and the rest
go on; the exit status is non-zero if any file failed.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..tiling import MAX_WHOLE_PIXELS

NAME = "restore"
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (searched recursively), globs")
    parser.add_argument(
        "--model",
        type=Path,
        help="model.onnx from `python -m export.onnx`, or pretrained:NAME (`vae-restore models`; default: "
        "pretrained:auto, which picks the bundled model for each image's damage)",
    )
    parser.add_argument("--output", required=True, type=Path, help="folder for the restored images")
    parser.add_argument(
        "--providers",
        default="auto",
        help="auto (CUDA, then CPU), cpu, cuda, or onnxruntime provider names, comma-separated (default auto)",
    )
    parser.add_argument("--batch_size", type=int, default=16, help="tiles per onnxruntime call (default 16)")
    parser.add_argument(
        "--max_pixels",
        type=int,
        metavar="N",
        help="refuse image files over N pixels (default: PIL's decompression-bomb limit, about 89.5 million)",
    )
    parser.add_argument(
        "--max_whole_pixels",
        type=int,
        metavar="N",
        default=MAX_WHOLE_PIXELS,
        help="fully convolutional models: restore images of up to N (padded) pixels in one call, larger ones in "
        f"tiles; 0 always tiles (default {MAX_WHOLE_PIXELS})",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        metavar="CLEAR",
        help="the clear original of the one INPUT image: print the PSNR and SSIM of the input and of its "
        "restoration against it (numpy only, the definitions evaluation uses)",
    )


def plan_jobs(inputs: list[str], output: Path) -> tuple[list[Job], list[str]]:
    """Expand INPUTs into (source, target) jobs; inputs that match nothing come back as failure messages."""
    from ..data.decode import IMAGE_SUFFIXES
    from ..data.encode import writable_path
    from ..data.files import list_images
    from ..errors import DataError

    jobs, failures = [], []
    resolved_output = output.resolve()
    for item in inputs:
        if GLOB_CHARS & set(item) and not Path(item).exists():
            found = (Path(p) for p in glob.glob(item, recursive=True))
            matches = sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not matches:
                failures.append(f"{item}: no image file matches this pattern")
            jobs += [
                Job(p, output / p.name) for p in earlier_outputs_left_out(matches, glob_root(item), resolved_output)
            ]
        elif Path(item).is_dir() and Path(item).resolve() == resolved_output and len(inputs) > 1:
            print(f"note: {item} is the --output folder, left out of the inputs", file=sys.stderr)  # `restore dir/*`
        elif Path(item).is_dir():
            try:
                found = earlier_outputs_left_out(list_images(Path(item)), Path(item), resolved_output)
            except DataError as e:
                failures.append(str(e))
            else:
                jobs += [Job(p, output / p.relative_to(item)) for p in found]
        elif Path(item).is_file():
            jobs.append(Job(Path(item), writable_path(output / Path(item).name)))  # any name: PNG if unknown
        else:
            failures.append(f"{item}: no such file or folder")
    return list(dict.fromkeys(jobs)), failures


def glob_root(pattern: str) -> Path:
    """The folder a glob searches: its path up to the first part with a wildcard."""
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if GLOB_CHARS & set(part))
    return Path(*parts[:fixed]) if fixed else Path(".")


def earlier_outputs_left_out(found: list[Path], folder: Path, output: Path) -> list[Path]:
    """`found` without what an earlier run wrote into an --output folder inside the scanned folder."""
    if output == folder.resolve():  # writing onto the inputs themselves: check_targets refuses that
        return found
    return [p for p in found if output not in p.resolve().parents]


def check_targets(jobs: list[Job]) -> str | None:
    """Why the plan is refused (an output on an input, two inputs onto one output), or None."""
    sources = {job.source.resolve(): job.source for job in jobs}
    seen: dict[Path, Path] = {}
    for job in jobs:
        target = job.target.resolve()
        if target in sources:
            return f"{job.source} would be written onto the input {sources[target]}; choose another --output folder"
        if target in seen and seen[target] != job.source.resolve():
            return f"{seen[target]} and {job.source} would both be written to {job.target}; restore them separately"
        seen[target] = job.source.resolve()
    return None


def progress(jobs: list[Job]) -> Iterator[Job]:
    """tqdm's bar where tqdm is installed; the inference-only install (no tqdm) gets a line per image."""
    try:
        from tqdm import tqdm
    except ImportError:
        for i, job in enumerate(jobs, 1):
            print(f"[{i}/{len(jobs)}] {job.source}", file=sys.stderr, flush=True)
            yield job
    else:
        yield from tqdm(jobs, unit="image", file=sys.stderr, disable=None)


def run(args: argparse.Namespace) -> int:
    from ..data.encode import save_rgb
    from ..inference import Restorer

    if args.output.exists() and not args.output.is_dir():
        print(f"error: --output {args.output} is a file; name a folder for the restored images", file=sys.stderr)
        return 2
    jobs, failures = plan_jobs(args.inputs, args.output)
    refusal = check_targets(jobs) or reference_refusal(args.reference, jobs, failures)
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    try:
        restorer = Restorer(
            args.model,
            providers=args.providers,
            batch_size=args.batch_size,
            max_pixels=args.max_pixels,
            max_whole_pixels=args.max_whole_pixels,
        )
    except (ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"restoring {len(jobs)} image(s) with {restorer.describe()} on {restorer.provider}", file=sys.stderr)
    start, done, used = time.perf_counter(), 0, Counter()
    for job in progress(jobs):
        try:
            restored, model = restorer.restore_named(job.source)
            save_rgb(restored, job.target, job.source, args.max_pixels)
            done += 1
            used[model] += 1
            if args.reference is not None:
                print(score_line(job.source, restored, args.reference, args.max_pixels))
        except (ValueError, OSError, RuntimeError, MemoryError) as e:  # one bad file must not stop the rest
            failures.append(str(e) if str(job.source) in str(e) else f"{job.source}: {e}")
            print(f"failed: {failures[-1]}", file=sys.stderr)
    seconds = time.perf_counter() - start
    print(f"restored {done} of {done + len(failures)} into {args.output} in {seconds:.1f} s ({restorer.provider})")
    if restorer.router:
        print("  by model: " + ", ".join(f"{name} {count}" for name, count in used.most_common()))
    for failure in failures:
        print(f"  failed: {failure}")
    return 1 if failures else 0


def reference_refusal(reference: Path | None, jobs: list[Job], failures: list[str]) -> str | None:
    """Why --reference cannot score this plan (checked before the model is loaded), or None."""
    if reference is None:
        return None
    if not reference.is_file():
        return f"--reference {reference}: no such file"
    if len(jobs) != 1 or failures:
        return f"--reference scores one input image against its clear original; got {len(jobs) + len(failures)} inputs"
    return None


def score_line(source: Path, restored, reference: Path, max_pixels: int | None) -> str:
    """`INPUT vs CLEAR: input PSNR .. SSIM .. | restored PSNR .. SSIM .. (gain)`, from the decoded files."""
    from ..data.decode import decode_rgb
    from ..image_scores import psnr, ssim

    clear, distorted = decode_rgb(reference, max_pixels), decode_rgb(source, max_pixels)
    if clear.shape != distorted.shape:
        raise ValueError(
            f"--reference {reference} is {clear.shape[1]}x{clear.shape[0]} but {source} is "
            f"{distorted.shape[1]}x{distorted.shape[0]}: the clear original must have the input's size"
        )
    before, after = (psnr(x, clear) for x in (distorted, restored))
    ssim_before, ssim_after = (ssim(x, clear) for x in (distorted, restored))
    return (
        f"{source} vs {reference}: input PSNR {before:.2f} dB, SSIM {ssim_before:.4f} | restored PSNR "
        f"{after:.2f} dB, SSIM {ssim_after:.4f} ({after - before:+.2f} dB, SSIM {ssim_after - ssim_before:+.4f})"
    )
