"""One measured run: idle workers, then the clock, submit, wait, verify; plus what the workers cost.

Workers are started and live before the clock starts (``shared.runner.start_workers``); the clock
stops when the last result is stored (``shared.runner.wait_for_count``).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

from benchmarks import idle, memory, stats
from benchmarks.stored_at import StoredAt
from benchmarks.task_stacks import stack_environment
from benchmarks.workloads import Case
from shared.backend import Backend
from shared.runner import ProgressCallback, WorkersFailed, start_workers, wait_for_count
from shared.store import Verification
from shared.tasks import CPU_COST_ENV
from shared.workers import WorkerGroup

#: Hook between the last result and verification (the tests use it to lose a result on purpose).
BeforeVerify = Callable[[Backend], None]
MB = memory.MB
#: Seconds idle workers get for a warm shutdown after the clock stopped (Celery's solo pool and
#: Dramatiq take several: not what is measured, so the rest are killed to keep the run short).
STOP_GRACE = 3.0


@dataclass
class RunRecord:
    """One row of ``results.json`` ``runs``."""

    stack: str
    profile: str
    workload: str
    tasks: int
    compute_workers: int
    repeat: int
    grid: str
    cpu_cost_ms: float
    rate_per_s: float | None
    status: str = "ok"
    verified: bool = False
    problems: str = ""
    seconds: float = 0.0
    throughput: float = 0.0
    submit_rate: float | None = None
    latency_ms: dict[str, float] | None = None
    cpu_s_per_1k: float | None = None
    peak_rss_mb: float | None = None
    #: Peak RSS of the largest compute worker tree, and of the result worker tree.
    peak_rss_compute_mb: float | None = None
    peak_rss_result_mb: float | None = None
    redis_mem_delta_mb: float | None = None
    redelivered: int = 0
    latency_samples_ms: list[float] | None = field(default=None, repr=False)
    #: Cases with ``rss_every``: the RSS curve (``memory.RssSeries.as_json``) and its growth per role.
    rss_series: dict[str, Any] | None = field(default=None, repr=False)
    rss_growth: dict[str, dict[str, float]] | None = None
    #: Idle cases: Redis commands per second per idle worker.
    idle_commands_per_s: float | None = None


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _cpu_snapshot(pids: list[int]) -> dict[tuple[int, float], float]:
    """CPU seconds per live process of the trees, including children it has already reaped."""
    seen: dict[tuple[int, float], float] = {}
    for pid in pids:
        for proc in _tree(pid):
            try:
                with proc.oneshot():
                    t = proc.cpu_times()
                    seen[(proc.pid, proc.create_time())] = (
                        t.user + t.system + t.children_user + t.children_system
                    )
            except psutil.NoSuchProcess:
                continue
    return seen


class _Trees:
    """The worker process trees, looked up again at most every ``refresh`` s: finding a process's
    children walks all of /proc (~2 ms a tree here), and sampling must not cost the cores the
    workers are being measured on."""

    def __init__(self, pids: list[int], refresh: float = 1.0) -> None:
        self.pids = pids
        self.refresh = refresh
        self._procs: dict[int, list[psutil.Process]] = {}
        self._found_at = -math.inf

    def rss(self) -> list[int]:
        """RSS of each tree, in the order of ``pids``."""
        if time.monotonic() - self._found_at > self.refresh:
            self._procs = {pid: _tree(pid) for pid in self.pids}
            self._found_at = time.monotonic()
        totals = []
        for pid in self.pids:
            total = 0
            for proc in self._procs[pid]:
                try:
                    total += proc.memory_info().rss
                except psutil.NoSuchProcess:
                    self._found_at = -math.inf  # a child went: find the tree again next time
            totals.append(total)
        return totals


def _used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


class Sampler:
    """Worker CPU between enter and exit; peak RSS per worker tree and Redis memory, sampled.

    With ``series``, the RSS of every tree is also kept every ``series.every`` s: the soak's curve.
    """

    def __init__(
        self,
        pids: list[int],
        client: redis.Redis,
        interval: float = 0.2,
        series: memory.RssSeries | None = None,
    ) -> None:
        self.pids = pids
        self.trees = _Trees(pids)
        self.client = client
        # With a series, sample at a whole fraction of its step so every kept sample is on schedule.
        self.interval = series.every / math.ceil(series.every / interval) if series else interval
        self.series = series
        self.peak_rss = dict.fromkeys(pids, 0)
        self.redis_base = self.redis_peak = 0
        self.cpu_seconds = 0.0
        self._started = self._next_keep = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def _sample(self, keep: bool = False) -> None:
        rss = self.trees.rss()
        for pid, value in zip(self.pids, rss, strict=True):
            self.peak_rss[pid] = max(self.peak_rss[pid], value)
        self.redis_peak = max(self.redis_peak, _used_memory(self.client))
        now = time.perf_counter() - self._started
        # Kept on a fixed schedule (0, every, 2 every, ...), give or take half a sampling interval: the
        # curve neither drifts with sampling lag nor keeps a burst of samples after a late one.
        slack = self.interval / 2
        if self.series and (keep or now + slack >= self._next_keep):
            self.series.add(now, rss)
            while self._next_keep <= now + slack:
                self._next_keep += self.series.every

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Sampler:
        self._cpu_start = _cpu_snapshot(self.pids)
        self.redis_base = self.redis_peak = _used_memory(self.client)
        self._started = time.perf_counter()
        self._next_keep = 0.0
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(keep=True)
        end = _cpu_snapshot(self.pids)
        self.cpu_seconds = sum(v - self._cpu_start.get(k, 0.0) for k, v in end.items())


def _open_loop(backend: Backend, case: Case) -> dict[bytes, float]:
    """Submit one task every 1/rate s; latency is stored-at minus the *scheduled* submit time,
    so a slow submit counts against the stack (no coordinated omission)."""
    assert case.rate is not None
    # The results hash's field of a point: "x,y", or the store's own naming (a declared task's call key).
    field: Callable[[int, int], str] = getattr(backend.store, "field", None) or (lambda x, y: f"{x},{y}")
    due: dict[bytes, float] = {}
    start = time.perf_counter()
    for i, (x, y) in enumerate(case.grid.points()):
        when = start + i / case.rate
        if (delay := when - time.perf_counter()) > 0:
            time.sleep(delay)
        due[field(x, y).encode()] = when
        backend.submit(x, y)
    return due


def run_case(
    backend: Backend,
    record: RunRecord,
    case: Case,
    log_dir: Path,
    stall_timeout: float | None = None,
    progress: ProgressCallback | None = None,
    before_verify: BeforeVerify | None = None,
) -> RunRecord:
    """Measure ``case`` on ``backend`` once and fill ``record``; never raises for a failed run.
    ``stall_timeout`` overrides the case's. A backend's ``worker_env()`` (the task stacks) is in
    this process's environment for the run, and so in the workers'."""
    with stack_environment(backend):
        return _run_case(backend, record, case, log_dir, stall_timeout, progress, before_verify)


def _run_case(
    backend: Backend,
    record: RunRecord,
    case: Case,
    log_dir: Path,
    stall_timeout: float | None,
    progress: ProgressCallback | None,
    before_verify: BeforeVerify | None,
) -> RunRecord:
    log_dir.mkdir(parents=True, exist_ok=True)
    backend.purge()
    backend.store.clear()
    if case.mode == "submit":
        return _submit_only(backend, record, case)
    env = {**os.environ, "REDIS_URL": backend.settings.redis_url}
    if case.cpu_cost_ms:
        env[CPU_COST_ENV] = str(case.cpu_cost_ms)
    try:
        with WorkerGroup(env, log_dir) as group:
            start_workers(backend, group, case.compute_workers)
            if case.mode == "idle":
                client, workers = backend.store.client, len(group.workers)
                record.idle_commands_per_s = idle.commands_per_second(client, workers, case.idle_window)
                record.verified = True  # nothing was submitted, so nothing can be missing
                return record
            _measure(backend, record, case, group, stall_timeout or case.stall_timeout, progress)
            group.stop(timeout=STOP_GRACE)
    except WorkersFailed as exc:
        record.status, record.problems = "FAILED", str(exc).splitlines()[0]
        return record
    if before_verify:
        before_verify(backend)
    _judge(record, backend.store.verify(case.grid))
    return record


def _submit_only(backend: Backend, record: RunRecord, case: Case) -> RunRecord:
    """Time the producer alone: ``submit_many`` of the grid with no worker consuming, then drop it.
    Verified when every point was accepted and the queues hold messages afterwards."""
    started = time.perf_counter()
    submitted = backend.submit_many(case.grid.points())
    record.seconds = time.perf_counter() - started
    record.submit_rate = record.throughput = case.grid.size / max(record.seconds, 1e-9)
    waiting = sum(backend.queue_depths().values())
    backend.purge()
    record.verified = submitted == case.grid.size and waiting > 0
    if not record.verified:
        record.status = "FAILED"
        record.problems = f"{submitted} of {case.grid.size} points submitted, {waiting} messages waiting"
    return record


def _measure(
    backend: Backend,
    record: RunRecord,
    case: Case,
    group: WorkerGroup,
    stall_timeout: float,
    progress: ProgressCallback | None,
) -> None:
    stored = StoredAt(backend.store) if not case.closed else None
    due: dict[bytes, float] = {}
    roles = [w.role for w in group.workers]
    series = memory.RssSeries(roles, case.rss_every) if case.rss_every else None
    pids = [w.process.pid for w in group.workers]
    with Sampler(pids, backend.store.client, series=series) as sampler:
        if stored:
            stored.start()
        started = time.perf_counter()
        if stored:
            due = _open_loop(backend, case)
        else:
            backend.submit_many(case.grid.points())
            record.submit_rate = case.grid.size / max(time.perf_counter() - started, 1e-9)
        # How often to count results: a store that counts slowly (SQL) asks to be counted less often.
        floor, ceiling = getattr(backend.store, "poll_interval", (0.002, 0.02))
        wait_for_count(backend.store.count, case.grid.size, group, stall_timeout, progress, floor, ceiling)
        record.seconds = time.perf_counter() - started
    if stored:
        stored.stop()
        samples = [(stored.first_seen[k] - t) * 1000 for k, t in due.items() if k in stored.first_seen]
        record.latency_samples_ms = [round(s, 3) for s in samples]
        record.latency_ms = stats.latency_summary(samples)
    record.throughput = case.grid.size / record.seconds if record.seconds > 0 else 0.0
    record.cpu_s_per_1k = sampler.cpu_seconds / case.grid.size * 1000
    record.peak_rss_mb = max(sampler.peak_rss.values(), default=0) / MB
    peaks = memory.peak_by_role(roles, [sampler.peak_rss[pid] for pid in pids])
    record.peak_rss_compute_mb, record.peak_rss_result_mb = peaks.get("compute"), peaks.get("result")
    if series:
        record.rss_series = series.as_json()
        record.rss_growth = memory.growth_by_role(record.rss_series)
    record.redis_mem_delta_mb = (sampler.redis_peak - sampler.redis_base) / MB


def _judge(record: RunRecord, verification: Verification) -> None:
    record.verified = verification.ok
    record.redelivered = len(verification.redelivered)
    if not verification.ok:
        record.status, record.problems = "FAILED", verification.problems()
