"""Worker processes started with the stock CLIs, watched, and stopped cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class WorkerProcess:
    role: str
    command: list[str]
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class WorkerGroup:
    """The worker processes of one run; each in its own process group so none outlives the run."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.workers: list[WorkerProcess] = []

    def start(self, role: str, command: Sequence[str]) -> WorkerProcess:
        log = self.log_dir / f"{role}-{len(self.workers)}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                list(command),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProcess(role, list(command), process, log)
        self.workers.append(worker)
        return worker

    def dead(self) -> list[WorkerProcess]:
        return [w for w in self.workers if not w.alive()]

    def stop(self, timeout: float = 20.0) -> None:
        """Warm shutdown (SIGTERM, as both CLIs expect), then SIGKILL whatever is left, also when
        the wait is interrupted (a second Ctrl-C): no worker outlives the run."""
        try:
            for w in self.workers:
                if w.alive():
                    w.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for w in self.workers:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    w.process.wait(max(0.0, deadline - time.monotonic()))
        finally:
            for w in self.workers:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(w.process.pid, signal.SIGKILL)
                w.process.wait()

    def __enter__(self) -> WorkerGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
