"""Serve restorations over HTTP (an API and a web page) with an exported model on onnxruntime (no torch).

Binds 127.0.0.1 unless --host says otherwise. Uploads are held in memory only, never written to disk.
SIGTERM stops accepting connections, finishes the requests in flight and exits 0 (Ctrl-C: the same, exit 130).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from ..cli_common import count_or_zero, positive_int

NAME = "serve"
INSTALL = "pip install 'vae-restore[serve]' (in a clone: pip install -e '.[serve]')"


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..serve.limits import Limits

    defaults = Limits()
    parser.add_argument(
        "--model",
        type=Path,
        help="model.onnx from `python -m export.onnx`, or pretrained:NAME (`vae-restore models`; default: "
        "pretrained:auto, which picks the bundled model for each image's damage)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--providers", default="auto", help="auto (CUDA, then CPU), cpu, cuda, or provider names")
    parser.add_argument("--batch_size", type=positive_int, default=16, help="tiles per onnxruntime call (default 16)")
    parser.add_argument(
        "--threads", type=positive_int, help="CPU threads for all restorations together (default: this process's cores)"
    )
    parser.add_argument(
        "--max_upload_mb",
        type=positive_float,
        default=defaults.max_upload_mb,
        help=f"largest request body, counted as it arrives; more is 413 (default {defaults.max_upload_mb:g})",
    )
    parser.add_argument(
        "--max_pixels",
        type=positive_int,
        default=defaults.max_pixels,
        help=f"largest image in pixels; more is 413 (default {defaults.max_pixels})",
    )
    parser.add_argument(
        "--max_concurrency",
        type=positive_int,
        default=defaults.max_concurrency,
        help=f"restorations at once, sharing the session's threads (default {defaults.max_concurrency})",
    )
    parser.add_argument(
        "--max_queue",
        type=count_or_zero,
        default=defaults.max_queue,
        help=f"requests that may wait for a restoration; more is 503 with Retry-After (default {defaults.max_queue})",
    )
    parser.add_argument(
        "--shutdown_timeout",
        type=positive_float,
        default=60.0,
        help="seconds SIGTERM waits for the requests in flight before cancelling them (default 60)",
    )
    parser.add_argument("--log_level", default="info", choices=("critical", "error", "warning", "info", "debug"))


def model_file(args: argparse.Namespace) -> Path | str | None:
    """--model, else the bundled default (`pretrained:auto`), else None."""
    from ..pretrained import default_model

    return args.model or default_model()


def run(args: argparse.Namespace) -> int:
    try:
        import python_multipart  # noqa: F401  (uploads are parsed with it, on the first request)
        import uvicorn

        from ..serve.app import create_app
    except ImportError as e:
        print(f"error: {e.name} is not installed; serving needs the serve extra: {INSTALL}", file=sys.stderr)
        return 2
    from ..inference import Restorer
    from ..serve.limits import Limits, session_threads

    model = model_file(args)
    if model is None:
        print(
            "error: this install bundles no model; pass --model model.onnx (from `python -m export.onnx`)",
            file=sys.stderr,
        )
        return 2
    limits = Limits(
        max_upload_mb=args.max_upload_mb,
        max_pixels=args.max_pixels,
        max_concurrency=args.max_concurrency,
        max_queue=args.max_queue,
    )
    threads = session_threads(limits.max_concurrency, args.threads)
    try:
        restorer = Restorer(
            model, providers=args.providers, batch_size=args.batch_size, threads=threads, max_pixels=limits.max_pixels
        )
    except (ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"serving {restorer.describe()} on {restorer.provider} ({limits.max_concurrency} at once, "
        f"{threads} intra-op thread(s) each) at http://{args.host}:{args.port}/",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(
        create_app(restorer, limits),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=args.shutdown_timeout,
    )
    stopped_by: list[int] = []
    # uvicorn shuts down gracefully on these, then re-raises the signal into the handler it found: record
    # it there instead of letting the default handler kill the process after a clean shutdown.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda received, frame: stopped_by.append(received))
    uvicorn.Server(config).run()
    return 128 + signal.SIGINT if signal.SIGINT in stopped_by else 0
