"""Workers stop on SIGTERM whatever Redis is doing, and lose nothing (``shared.stopping``).

Each case has a private redis-server of its own (paused or killed here: not the suite's shared
one), real stock-CLI workers, and a grid with a few milliseconds of work per point so messages are
in flight. Redis is paused (SIGSTOP: connections open, no answer, the worst case for timeouts) or
killed (connections refused); the workers get SIGTERM (the main process only, as systemd's
``KillMode=mixed``) and must exit within the README unit's ``TimeoutStopSec``. Then Redis comes
back, fresh workers start, and every point must be stored, right and once: what the stopped
workers could not ack was delivered again.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq.serializers import JSONSerializer

from rq_impl import tasks
from rq_impl.worker import PipelineWorker
from shared import stopping
from shared.backend import load_ops_backend
from shared.embedded import RedisServer
from shared.runner import start_workers
from shared.settings import Settings
from shared.tasks import CPU_COST_ENV, Grid
from shared.workers import WorkerGroup
from tests.helpers import wait_until

GRID = Grid(20, 25)
README = Path(__file__).resolve().parent.parent / "README.md"


def readme_stop_timeout() -> float:
    """The ``TimeoutStopSec`` of the README's systemd unit: the bound the workers must meet."""
    found = re.search(r"^TimeoutStopSec=(\d+)$", README.read_text(), re.MULTILINE)
    assert found, "the README's systemd unit names no TimeoutStopSec"
    return float(found.group(1))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server that fsyncs every write, so a killed one comes back with its data."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory, args=["--appendonly", "yes", "--appendfsync", "always"])
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


def take_redis_away(server: RedisServer, fault: str) -> None:
    assert server.process is not None
    if fault == "paused":
        os.kill(server.process.pid, signal.SIGSTOP)
    else:
        server.process.kill()
        server.process.wait()


def bring_redis_back(server: RedisServer, fault: str) -> None:
    assert server.process is not None
    if fault == "paused":
        os.kill(server.process.pid, signal.SIGCONT)
    else:
        server.start()


def sigterm_and_wait(group: WorkerGroup, bound: float) -> list[str]:
    """SIGTERM each worker's main process; the workers still running after ``bound`` seconds."""
    for w in group.workers:
        w.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + bound
    running = []
    for w in group.workers:
        try:
            w.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            running.append(w.role)
    return running


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["paused", "down"])
@pytest.mark.parametrize("backend_name", ["dramatiq", "rq"])
def test_sigterm_while_redis_is_away_stops_in_time_and_loses_nothing(
    backend_name: str, fault: str, server: RedisServer, tmp_path: Path
) -> None:
    bound = readme_stop_timeout()
    backend = load_ops_backend(backend_name, Settings(server.url))
    env = {**os.environ, "REDIS_URL": server.url, CPU_COST_ENV: "5"}

    with WorkerGroup(env, tmp_path / "stopped") as first:
        start_workers(backend, first, compute_workers=1)
        backend.submit_many(GRID.points())
        assert wait_until(lambda: backend.store.count() >= GRID.size // 5, timeout=120)
        take_redis_away(server, fault)
        running = sigterm_and_wait(first, bound)
        logs = "\n".join(w.tail(25) for w in first.workers)
        assert not running, f"{running} still running {bound:.0f} s after SIGTERM:\n{logs}"
        assert [w.process.returncode for w in first.workers] == [0, 0], logs

    bring_redis_back(server, fault)
    assert backend.store.count() < GRID.size, "the stop came after the grid was done"

    with WorkerGroup(env, tmp_path / "fresh") as fresh:
        start_workers(backend, fresh, compute_workers=1)
        done = wait_until(lambda: backend.store.count() >= GRID.size, timeout=180, interval=0.2)
        logs = "\n".join(w.tail(25) for w in fresh.workers)
        assert done, f"{backend.store.count()}/{GRID.size} stored after the restart:\n{logs}"

    verification = backend.store.verify(GRID)
    assert verification.ok, verification.problems()  # each point stored once (HSETNX), right
    queues = backend.status().queues
    assert all(q.depth == q.dead == 0 for q in queues), queues  # nothing left over, nothing dead


def test_a_worker_stopped_inside_a_process_that_goes_on_leaves_its_retries_as_they_were(
    client: redis.Redis,
) -> None:
    """The stop budget is the stopping worker's: once it has stopped, the process's clients retry
    through an outage again (tests run RQ workers in-process; so may an application)."""
    worker = PipelineWorker([tasks.queue("compute", client)], connection=client, serializer=JSONSerializer)
    worker.request_stop(signal.SIGTERM, None)
    assert stopping.requested()
    worker.work()
    assert not stopping.requested() and not stopping.gave_up()
