"""What one request may cost, and how many may wait: the bounds that keep a shared server up under load.

Every refusal is a `Refused` with its HTTP status and a message, turned into `{"error": "..."}` by the app.
Uploads are counted while they stream in (a client's Content-Length is only a hint), and held in memory only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

MB = 1024 * 1024


class Refused(Exception):
    """A request the service answers with `status` and `{"error": message}` (plus `headers`)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass(frozen=True)
class Limits:
    """`max_upload_mb` per body, `max_pixels` per image, `max_concurrency` restorations at once (sharing the
    session's threads), `max_queue` more waiting for one; past that, 503 with `Retry-After: retry_after_s`."""

    max_upload_mb: float = 50.0
    max_pixels: int = 16_000_000
    max_concurrency: int = 2
    max_queue: int = 16
    retry_after_s: int = 1

    def __post_init__(self):
        for name in ("max_upload_mb", "max_pixels", "max_concurrency", "retry_after_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_queue < 0:
            raise ValueError(f"max_queue must be 0 or more, got {self.max_queue}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MB)


def available_cores() -> int:
    """The cores this process may run on (its affinity, as `taskset` sets it), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def session_threads(max_concurrency: int, threads: int | None = None) -> int:
    """onnxruntime intra-op threads for one shared session: the cores split between the restorations in
    flight, since each concurrent run adds its own calling thread to the session's pool."""
    return max(1, (threads or available_cores()) // max_concurrency)


class Admission:
    """At most `max_concurrency` restorations run and `max_queue` wait; one more is refused at once (503).

    Lives on the event loop (no lock needed): the counts change only between awaits.
    """

    def __init__(self, limits: Limits):
        self.limits = limits
        self.admitted = 0
        self.running = 0
        self._slots = asyncio.Semaphore(limits.max_concurrency)

    @property
    def waiting(self) -> int:
        return self.admitted - self.running

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold a place from before the upload is read until the answer is ready; refuse when all are taken."""
        if self.admitted >= self.limits.max_concurrency + self.limits.max_queue:
            raise Refused(
                503,
                f"the server is busy ({self.admitted} restorations running or queued); retry shortly",
                {"Retry-After": str(self.limits.retry_after_s)},
            )
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """One of the `max_concurrency` places in the onnxruntime session."""
        async with self._slots:
            self.running += 1
            try:
                yield
            finally:
                self.running -= 1


async def read_body(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    """The whole body in memory, refused with 413 as soon as it passes `limit` bytes.

    A Content-Length over the limit is refused before reading; the count itself never trusts it.
    """
    too_large = Refused(413, f"the upload is larger than this server's limit of {limit / MB:g} MB (--max_upload_mb)")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    received, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large
        received.append(chunk)
    return b"".join(received)
