"""Long runs of ``redis-pipeline run`` (``shared.long_run``): a question above a size, progress
from the first slice submitted, and a Ctrl-C that stops the run's workers and says what is left.

The CLI runs as a subprocess on the suite's private Redis (``REDIS_URL``), its stderr on a
pseudo-terminal, as a user at a terminal sees it (rich draws no bars for a pipe).
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import redis

from shared.commands import stock_cli
from shared.embedded import RedisServer
from shared.long_run import CONFIRM_ABOVE, INTERRUPTED_EXIT
from shared.ownership import LEFTOVER_TTL_S

ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")
#: The results bar once a result is stored: "dramatiq stored ━━… 12/10000".
STORED = re.compile(r"stored\s\S*\s+([1-9]\d*)/\d+")


def cli() -> str:
    return stock_cli("redis-pipeline")


def plain(data: bytes) -> str:
    return ANSI.sub("", data.decode(errors="replace")).replace("\r\n", "\n")


class Terminal:
    """``redis-pipeline`` with stderr (and optionally stdin) on a pseudo-terminal."""

    def __init__(self, args: list[str], env: dict[str, str], tty_stdin: bool = False) -> None:
        self.master, slave = pty.openpty()
        self.output = b""
        self.process = subprocess.Popen(
            [cli(), *args],
            stdin=slave if tty_stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=env,
            # Ctrl-C must reach it as at a terminal, even if this test runs with SIGINT ignored.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        os.close(slave)

    def read_until(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str] | None:
        deadline = time.monotonic() + timeout
        while (found := pattern.search(plain(self.output))) is None and time.monotonic() < deadline:
            if not self._read(0.2) and self.process.poll() is not None:
                break
        return found

    def finish(self, timeout: float) -> tuple[int, str, str]:
        """Wait for the exit: (status, stdout, stderr as text)."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.2)
        code = self.process.wait(max(0.0, deadline - time.monotonic()))
        while self._read(0.1):
            pass
        assert self.process.stdout is not None
        return code, self.process.stdout.read().decode(), plain(self.output)

    def write(self, text: str) -> None:
        os.write(self.master, text.encode())

    def _read(self, wait: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], wait)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the other end is closed: the process exited
            return False
        self.output += data
        return bool(data)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)


def test_a_run_above_the_threshold_without_yes_and_no_terminal_is_refused_in_one_line(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    side = CONFIRM_ABOVE // 1000 + 1  # (side x 1000) calls: just over the threshold
    env = {**os.environ, "REDIS_URL": redis_server.url}
    done = subprocess.run(
        [cli(), "run", "--grid", f"{side}x1000"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "--yes" in done.stderr and f"{side * 1000:,} calls" in done.stderr
    assert "Traceback" not in done.stderr
    assert client.dbsize() == 0  # nothing enqueued, nothing written


def test_a_run_above_the_threshold_asks_at_a_terminal_and_no_enqueues_nothing(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    side = CONFIRM_ABOVE // 1000 + 1
    env = {**os.environ, "REDIS_URL": redis_server.url}
    term = Terminal(["run", "--grid", f"{side}x1000"], env, tty_stdin=True)
    try:
        assert term.read_until(re.compile(r"Submit them\? \[y/N\]"), timeout=60), plain(term.output)
        term.write("n\n")
        code, _, err = term.finish(timeout=60)
    finally:
        term.close()
    assert code == 1
    assert f"{side * 1000:,} calls is a long run" in err
    assert client.dbsize() == 0


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["dramatiq", "rq"])
def test_ctrl_c_stops_the_workers_and_says_what_is_left(
    backend: str, redis_server: RedisServer, client: redis.Redis, tmp_path: Path
) -> None:
    # 10,000 points of 5 ms each on 2 compute workers: ~25 s of work, interrupted in its first seconds.
    env = {**os.environ, "REDIS_URL": redis_server.url, "PIPELINE_CPU_COST_MS": "5", "COLUMNS": "200"}
    args = ["run", "--backend", backend, "--grid", "100x100", "--log-dir", str(tmp_path)]
    term = Terminal(args, env)
    try:
        assert term.read_until(STORED, timeout=120), plain(term.output)
        workers = psutil.Process(term.process.pid).children(recursive=True)
        assert len(workers) >= 3  # 2 compute + 1 result worker (Dramatiq: and their processes)
        term.process.send_signal(signal.SIGINT)
        code, out, err = term.finish(timeout=120)
    finally:
        term.close()
    report = err[err.index("Interrupted:") :] if "Interrupted:" in err else err
    assert code == INTERRUPTED_EXIT, report
    assert "Traceback" not in err and "Aborted!" not in err, report
    left = re.search(rf"{backend}: ([\d,]+) messages remain queued on .*: compute ([\d,]+)", report)
    assert left, report
    assert f"redis-pipeline purge --backend {backend} --yes" in report
    assert "finish them" in report and " compute\n" in report  # a worker command for the queue
    assert "does not resume" in report
    assert out == ""  # no summary line: the run did not finish
    alive = [p.pid for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"worker processes left behind: {alive}"
    # The count is Redis's own: the queues' lists hold that many messages.
    prefix = "dramatiq:" if backend == "dramatiq" else "rq:queue:"
    waiting = client.llen(f"{prefix}compute") + client.llen(f"{prefix}result")
    # The results so far stay a while, not for ever (shared.ownership.LEFTOVER_TTL_S), and it says so.
    results = f"pipeline:{backend}:results"
    assert 0 < client.ttl(results) <= LEFTOVER_TTL_S and client.hlen(results) > 0
    assert f"the results so far stay in {results} for 7 days, then expire" in report
    client.flushdb()  # the suite's private Redis: later tests start on empty queues
    assert int(left.group(1).replace(",", "")) == waiting > 0, report
