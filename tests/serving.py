"""A real `vae-restore serve` process on 127.0.0.1, on a port the OS picks, for the service's end-to-end tests.

Its temporary folder and working folder are empty folders of the test's own, so a test can check that
nothing an upload carried was written to disk.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from .conftest import subprocess_env

STARTED = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")


class Server:
    def __init__(self, model: Path, folder: Path, *args: str, timeout: float = 60):
        self.folder, self.tmp, self.cwd = folder, folder / "tmp", folder / "cwd"
        self.tmp.mkdir(parents=True)
        self.cwd.mkdir()
        self.log = folder / "server.log"
        command = [sys.executable, "-m", "vae_restore.cli", "serve", "--model", str(model), "--port", "0"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [*command, "--threads", "1", *args],
                cwd=self.cwd,
                env=subprocess_env(TMPDIR=str(self.tmp)),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not (found := STARTED.search(self.output)):
            assert self.proc.poll() is None, f"the server ended ({self.proc.returncode}):\n{self.output}"
            assert time.monotonic() < deadline, f"the server did not start in {timeout}s:\n{self.output}"
            time.sleep(0.05)
        self.url = found.group(1)
        self.at_start = set(self._files())  # onnxruntime's own `.ses` telemetry-session file, written at load

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, and the exit status once it has finished what it was doing."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def _files(self) -> list[Path]:
        return [p for folder in (self.tmp, self.cwd) for p in folder.rglob("*")]

    def written(self) -> list[Path]:
        """Files that appeared in its temporary and working folders since it started (there should be none)."""
        return [p for p in self._files() if p not in self.at_start]
