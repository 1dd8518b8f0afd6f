"""The seed's scenario end to end: start workers, fire the grid, wait for every result, verify."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import redis

from shared.backend import Backend, ChunkingBackend
from shared.ownership import claim
from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK, active_table
from shared.store import Verification
from shared.submission import slice_reporter, submit_in_slices
from shared.tasks import Grid, Point
from shared.workers import WorkerGroup

#: Called with (results stored so far, results expected) while waiting.
ProgressCallback = Callable[[int, int], None]


class RunRefused(RuntimeError):
    """A run that would mix its results with results already stored; the message says what to do."""


class WorkersFailed(RuntimeError):
    """A worker exited or never became ready; the message carries the tail of its log."""


@dataclass
class RunResult:
    backend: str
    grid: Grid
    seconds: float
    verification: Verification

    @property
    def ok(self) -> bool:
        return self.verification.ok

    @property
    def throughput(self) -> float:
        return self.grid.size / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        v = self.verification
        line = f"{self.backend}: {v.verified}/{v.expected} results verified in {self.seconds:.2f} s"
        if self.ok:
            return f"{line} ({self.throughput:.0f} tasks/s)"
        return f"{line}: FAILED, {v.problems()}"


def submitter(backend: Backend, chunk_size: int | None = None) -> Callable[[Iterable[Point]], int]:
    """``backend.submit_many``, or with ``chunk_size`` its chunked submit of that many points each."""
    if not chunk_size:
        return backend.submit_many
    if not isinstance(backend, ChunkingBackend):
        raise TypeError(f"backend {backend.name!r} has no chunked mode")
    return partial(backend.submit_chunks, size=chunk_size)


def start_workers(backend: Backend, group: WorkerGroup, compute_workers: int, timeout: float = 60.0) -> None:
    """Start ``compute_workers`` compute workers and one result worker; return once all are live."""
    routing = active_table()
    since = time.time() - 1.0  # tolerate small clock steps between us and Redis
    for _ in range(compute_workers):
        group.start("compute", backend.worker_command([routing.queue_for(COMPUTE_TASK)]))
    group.start("result", backend.worker_command([routing.queue_for(HANDLE_RESULT_TASK)]))
    wait_live(backend, group, since, timeout)


def wait_live(backend: Backend, group: WorkerGroup, since: float, timeout: float = 60.0) -> None:
    """Return once every worker of ``group`` showed life in Redis after ``since``; raise
    WorkersFailed with a worker's log tail if one exits or they are not all live in time."""
    deadline = time.monotonic() + timeout
    while backend.live_workers(since) < len(group.workers):
        if dead := group.dead():
            raise WorkersFailed(f"{dead[0].role} worker exited at start:\n{dead[0].tail()}")
        if time.monotonic() > deadline:
            raise WorkersFailed(f"workers not live after {timeout:.0f} s:\n{group.workers[-1].tail()}")
        time.sleep(0.05)


def wait_for_count(
    count: Callable[[], int],
    expected: int,
    group: WorkerGroup,
    stall_timeout: float,
    progress: ProgressCallback | None = None,
    interval: float = 0.02,
    max_interval: float = 0.02,
) -> None:
    """Return when ``count()`` reaches ``expected``, when it did not move for ``stall_timeout`` s,
    or when every worker died.

    Looks every ``interval`` s near the end, less often while much is left (``poll_pause``): every
    look costs a round trip and some Python on the cores the workers are measured on.
    """
    began = last_change = time.monotonic()
    last = -1
    while True:
        stored = count()
        if progress:
            progress(stored, expected)
        if stored >= expected:
            return
        now = time.monotonic()
        if stored != last:
            last, last_change = stored, now
        elif now - last_change > stall_timeout:
            return
        if len(group.dead()) == len(group.workers):
            return
        time.sleep(poll_pause(stored, expected, now - began, interval, max(interval, max_interval)))


def poll_pause(stored: int, expected: int, elapsed: float, floor: float, ceiling: float) -> float:
    """An eighth of the time the rest should take at the rate so far, within [floor, ceiling]: the
    end is still seen within ``floor`` unless the rate jumps eightfold."""
    if stored <= 0 or elapsed <= 0:
        return floor
    left = (expected - stored) * elapsed / stored
    return min(ceiling, max(floor, left / 8))


def run_grid(
    backend: Backend,
    grid: Grid,
    compute_workers: int = 2,
    log_dir: Path | None = None,
    stall_timeout: float = 30.0,
    progress: ProgressCallback | None = None,
    chunk_size: int | None = None,
    purge: bool = False,
    keep: bool = False,
    submitted: ProgressCallback | None = None,
) -> RunResult:
    """Run the whole scenario on ``backend``. Waiting messages or results already there refuse
    the run unless ``purge`` (``shared.ownership``); a verified run removes the keys it created,
    its results too unless ``keep``. With ``chunk_size``, the grid goes as chunks of that many
    points (``shared.chunks``). ``submitted(points so far, points)`` is called per slice of the
    submission (``shared.submission``)."""
    submit = submitter(backend, chunk_size)
    footprint = claim(backend, purge)
    env = {**os.environ, "REDIS_URL": backend.settings.redis_url}
    try:
        with WorkerGroup(env, log_dir or Path.cwd()) as group:
            start_workers(backend, group, compute_workers)
            started = time.perf_counter()
            report = slice_reporter(grid.size, submitted, progress, backend.store.count, grid.size)
            submit_in_slices(submit, grid.points(), chunk_size, report)
            wait_for_count(backend.store.count, grid.size, group, stall_timeout, progress)
            seconds = time.perf_counter() - started
        result = RunResult(backend.name, grid, seconds, backend.store.verify(grid))
    except BaseException:  # interrupted or failed: its keys stay for a while (``shared.ownership``)
        with contextlib.suppress(redis.RedisError):
            footprint.leave()
        raise
    if result.ok:
        footprint.tidy(keep)
    else:  # a failed run's keys stay for diagnosis (status, purge), its results for a while
        footprint.leave()
    return result
