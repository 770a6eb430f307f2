"""Run a training subprocess and interrupt it when its progress bar reaches a given step."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

PROGRESS = re.compile(rb"(\d+)/\d+ \[")


class TrainingProcess:
    """A process group (the launcher and its workers) whose stderr is read as it is written."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path):
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        self.err = bytearray()
        self.out = bytearray()
        self._readers = [
            threading.Thread(target=self._pump, args=(s, b), daemon=True)
            for s, b in ((self.proc.stderr, self.err), (self.proc.stdout, self.out))
        ]
        for r in self._readers:
            r.start()

    def _pump(self, stream, buffer: bytearray) -> None:
        for chunk in iter(lambda: stream.read1(4096), b""):
            buffer.extend(chunk)

    def step(self) -> int:
        found = PROGRESS.findall(bytes(self.err))
        return int(found[-1]) if found else 0

    def wait_for_step(self, step: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.step() < step:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"process ended (rc={self.proc.returncode}) before step {step}:\n"
                    f"{self.err.decode(errors='replace')[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"step {step} not reached in {timeout}s")
            time.sleep(0.02)

    def wait_for_path(self, path: Path, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            assert self.proc.poll() is None, f"process ended before {path} appeared"
            assert time.monotonic() < deadline, f"{path} did not appear in {timeout}s"
            time.sleep(0.02)

    def pids(self) -> list[int]:
        """The launcher and all its descendants (torchrun starts each worker in a session of its own)."""
        found, frontier = [], [self.proc.pid]
        while frontier:
            pid = frontier.pop()
            found.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*"):
                with contextlib.suppress(OSError):
                    frontier += [int(c) for c in (task / "children").read_text().split()]
        return found

    def signal_all(self, signum: int) -> None:
        """Signal every process of the run, as a cluster scheduler signals every task of a job."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def kill(self) -> None:
        """SIGKILL the launcher and every worker at once, as an OOM killer or a lost node would."""
        self.signal_all(signal.SIGKILL)
        self.wait()

    def wait(self, timeout: float = 300) -> int:
        rc = self.proc.wait(timeout=timeout)
        for r in self._readers:
            r.join(timeout=10)
        return rc

    @property
    def output(self) -> str:
        return (self.out + self.err).decode(errors="replace")
