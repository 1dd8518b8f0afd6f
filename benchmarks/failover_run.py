"""One failover run of ``benchmarks.failover``: a fresh Sentinel set-up (``benchmarks.sentinel_hosts``),
one stack's workers on their hosts, an unpaced grid for the throughput, then the grid again with
the fault applied mid-run, and every point checked on the master the sentinels name at the end.

Workers: compute on ``compute-a`` and ``compute-b``, results on ``collector``, and one compute
worker on ``redis-1`` beside the first master: a client on the master's side of the partition,
which keeps writing to the cut-off master until ``min-replicas-to-write`` stops it. The
submitter (``benchmarks.failover_submit``) runs in the root namespace. The harness reads the
servers directly (one attempt each, short timeouts), never through the pipeline's clients.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from benchmarks.hosts import queue_summary
from benchmarks.netns import Host, SetupFailed, in_host, wait_for
from benchmarks.sentinel_hosts import NET, REDIS_HOSTS, URL, SentinelHosts, client
from benchmarks.stacks import Stack
from shared.backend import Backend, OpsBackend
from shared.replication import MIN_REPLICAS_ENV
from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK, active_table
from shared.settings import Settings
from shared.store import ResultStore
from shared.tasks import CPU_COST_ENV, Grid, Point
from shared.workers import WorkerGroup

COMPUTE_A = Host("compute-a", "comp-a", 31, NET)
COMPUTE_B = Host("compute-b", "comp-b", 32, NET)
COLLECTOR = Host("collector", "collect", 33, NET)
HOSTS = (*REDIS_HOSTS, COMPUTE_A, COMPUTE_B, COLLECTOR)
#: Our paths must recover within this with the knob on (issue 18's bar).
RECOVERY_LIMIT_S = 30.0
#: How long every worker host gets, once the run is over, to show a connection on the new master.
FOLLOW_S = 20.0
#: A run whose count stood still this long since its failover was over (the old master dead or a
#: replica) and its submitter done is over: what is missing then stays missing (a dead worker's
#: messages come back within 15 s).
STALL_S = 20.0
REPO = Path(__file__).resolve().parent.parent

SCENARIOS = {
    "kill-master": "SIGKILL the master's redis-server; the sentinels promote a replica",
    "partition-master": "cut the master's host off (its sentinel and the compute worker beside it "
    "too); mended after the partition time, or once the grid is done",
    "sentinel-failover": "`SENTINEL FAILOVER`, a planned switchover: the old master takes writes "
    "until the sentinels make it a replica, seconds later",
    "switchover": "`redis-pipeline switchover`, the same planned switchover with writes paused on the "
    "master until its replicas hold everything, the old master made a replica before they resume",
}
#: Every replica of the master: what a plain ``SENTINEL FAILOVER`` needs the knob at (a ``WAIT 1``
#: can be answered by the replica that is not promoted, which then drops what it confirmed).
ALL_REPLICAS = len(REDIS_HOSTS) - 1


def required(scenario: str, stack: Stack, min_replicas: int) -> bool:
    """Whether a run must pass: our paths with the knob on, and for a plain ``SENTINEL FAILOVER``
    with the knob at every replica (below that Redis itself loses confirmed writes: README)."""
    needed = ALL_REPLICAS if scenario == "sentinel-failover" else 1
    return stack.ours and min_replicas >= needed


@dataclass(frozen=True)
class Config:
    grid: Grid
    per_host: int = 1
    fault_at: float = 0.3
    #: The fault run's submitter spreads the grid over this many seconds (it crosses the fault).
    submit_seconds: float = 6.0
    #: Submit the whole grid before the fault instead: only the pipeline's own writes cross it.
    submit_before: bool = False
    cpu_ms: float = 0.0
    timeout: float = 90.0
    partition_seconds: float = 12.0


@dataclass
class FailoverRow:
    scenario: str
    stack: str
    profile: str
    min_replicas: int
    lost: int | None
    doubled: int | None
    wrong: int | None
    redeliveries: int | None
    recovery_s: float | None
    throughput: float | None
    tasks: int
    stored_at_fault: int = 0
    workers_alive: bool = False
    #: Every host with a live worker had a connection on the final master once the run was over.
    followed: bool = False
    submit_errors: int = 0
    #: The run's wall time, set-up included.
    seconds: float = 0.0
    #: Our path with the knob on: must pass. Knob off and the baseline: reported.
    required: bool = False
    note: str = ""

    @property
    def passed(self) -> bool:
        return (
            self.lost == 0
            and self.wrong == 0
            and self.doubled == 0
            and self.recovery_s is not None
            and self.recovery_s <= RECOVERY_LIMIT_S
            and self.workers_alive
            and self.followed
        )

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


class FailoverRun:
    def __init__(self, scenario: str, stack: Stack, min_replicas: int, config: Config, logs: Path) -> None:
        self.scenario, self.stack, self.config, self.logs = scenario, stack, config, logs
        self.cluster = SentinelHosts(logs / "redis")
        self.groups: dict[Host, WorkerGroup] = {}
        self.submitters: list[subprocess.Popen[str]] = []
        #: What ``redis-pipeline switchover`` printed (the switchover scenario).
        self.switched = ""
        logs.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "REDIS_URL": URL, MIN_REPLICAS_ENV: str(min_replicas)}
        if config.cpu_ms:
            self.env[CPU_COST_ENV] = str(config.cpu_ms)
        unmeasured: dict[str, Any] = dict.fromkeys(
            ("lost", "doubled", "wrong", "redeliveries", "recovery_s", "throughput")
        )
        self.row = FailoverRow(
            scenario,
            stack.stack,
            stack.profile,
            min_replicas,
            **unmeasured,
            tasks=config.grid.size,
            required=required(scenario, stack, min_replicas),
        )

    def execute(self) -> FailoverRow:
        started = time.monotonic()
        try:
            self.cluster.start()
            self.backend = backend = self.stack.make(Settings(URL))
            self.name = backend.store.backend
            # Making a stack may set variables its workers and submitter must share (Celery's
            # queue prefix, benchmarks.celery_app): the environment as it is now, then the run's.
            self.env = {**os.environ, **self.env}
            self._start_workers(backend)
            self.row.throughput = self._steady()
            self._fault_run()
        except (SetupFailed, redis.RedisError) as exc:
            self.row.note = f"{type(exc).__name__}: {exc}"
            (self.logs / "error.txt").write_text(traceback.format_exc())
        finally:
            for process in self.submitters:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            for group in self.groups.values():
                group.stop(timeout=10)
            self.cluster.stop()
        self.row.seconds = round(time.monotonic() - started, 1)
        return self.row

    def _start_workers(self, backend: Backend) -> None:
        routing = active_table()
        compute, result = routing.queue_for(COMPUTE_TASK), routing.queue_for(HANDLE_RESULT_TASK)
        plan = {
            COMPUTE_A: (self.config.per_host, compute),
            COMPUTE_B: (self.config.per_host, compute),
            REDIS_HOSTS[0]: (1, compute),  # beside the first master: on its side of the partition
            COLLECTOR: (2 * self.config.per_host, result),
        }
        since = time.time() - 1.0
        for host, (count, queue) in plan.items():
            group = self.groups[host] = WorkerGroup(self.env, self.logs / host.name)
            for _ in range(count):
                group.start(queue, in_host(host, backend.worker_command([queue])))
        total = sum(count for count, _ in plan.values())
        if not wait_for(lambda: backend.live_workers(since) >= total or bool(self._dead()), 60, 0.2):
            raise SetupFailed(f"workers not live after 60 s:\n{self._dead() or '(none exited)'}")
        if dead := self._dead():
            raise SetupFailed(f"a worker exited at start:\n{dead}")

    def _dead(self) -> str:
        return "\n".join(w.tail() for g in self.groups.values() for w in g.dead())

    def _store(self, host: Host) -> ResultStore:
        return ResultStore(client(host), self.name)

    def _submit(self, seconds: float, label: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "benchmarks.failover_submit", self.stack.label]
        with (self.logs / f"submit-{label}.log").open("a") as log:
            process = subprocess.Popen(
                [*command, str(self.config.grid), str(seconds)],
                env=self.env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self.submitters.append(process)
        return process

    def _collect(self, process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
        """The submitter's report; killed (and said so) if it is still going after ``timeout``."""
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
        lines = out.strip().splitlines()
        report: dict[str, Any] = json.loads(lines[-1]) if lines else {}
        if process.returncode != 0:
            report["failed"] = f"submitter exited {process.returncode}"
        return report

    def _steady(self) -> float | None:
        """The grid at full speed, before any fault: tasks/s from the first submit to the last result."""
        store, size = self._store(REDIS_HOSTS[0]), self.config.grid.size
        process = self._submit(0, "steady")
        last = _Progress(store.count)
        wait_for(lambda: last.poll() >= size or bool(self._dead()), self.config.timeout, 0.01)
        report = self._collect(process, 10)
        if last.count < size or "started" not in report:
            raise SetupFailed(f"steady run: {last.count}/{size} stored ({report}):\n{self._dead()}")
        store.clear()
        return round(size / (last.at - report["started"]), 1)

    def _fault_run(self) -> None:
        config, cluster, old = self.config, self.cluster, REDIS_HOSTS[0]
        size = config.grid.size
        process = self._submit(0 if config.submit_before else config.submit_seconds, "fault")
        before = self._store(old)
        wait_for(
            lambda: (
                before.count() >= config.fault_at * size
                and (not config.submit_before or process.poll() is not None)
            ),
            config.timeout,
            0.005,
        )
        fault = time.monotonic()
        self.row.stored_at_fault = before.count()
        if self.scenario == "kill-master":
            cluster.kill(old)
        elif self.scenario == "partition-master":
            cluster.cut(old)
        elif self.scenario == "switchover":
            self._switchover()
        else:
            cluster.switch_over()
        new, progress, settled = None, _Progress(lambda: -1), 0.0
        while time.monotonic() < fault + config.timeout:
            done = progress.count >= size and process.poll() is not None
            if old in cluster.cut_off and (done or time.monotonic() > fault + config.partition_seconds):
                cluster.heal(old)
            master = cluster.master()
            if master is not None and master != old:
                if master != new:
                    new, progress = master, _Progress(self._store(master).count)
                progress.poll()
            if new is not None and not settled and self._settled(old):
                settled = time.monotonic()
            # Stalled: nothing stored for a while since the failover was over and the submitter done.
            quiet = time.monotonic() - max(progress.at, settled)
            if settled and (done or (process.poll() is not None and quiet > STALL_S)):
                break
            time.sleep(0.05)
        if old in cluster.cut_off:
            cluster.heal(old)
        self._finish(new, old, fault, progress, process)

    def _switchover(self) -> None:
        """``redis-pipeline switchover`` as an operator runs it, from the root namespace; its line
        (how long writes were paused) goes in the row's note."""
        command = [str(Path(sys.executable).parent / "redis-pipeline"), "switchover"]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise SetupFailed(f"redis-pipeline switchover failed: {done.stderr.strip()}")
        self.switched = done.stdout.strip()

    def _settled(self, old: Host) -> bool:
        """The old master is gone for good (killed) or has been made a replica."""
        return self.scenario == "kill-master" or self.cluster.info(old).get("role") == "slave"

    def _finish(
        self, new: Host | None, old: Host, fault: float, progress: _Progress, process: subprocess.Popen[str]
    ) -> None:
        row, size = self.row, self.config.grid.size
        # Dead workers follow nothing (workers_alive says so): the hosts of the live ones.
        hosts = [h for h, g in self.groups.items() if any(w.alive() for w in g.workers)]
        if new is not None and hosts:
            row.followed = wait_for(
                lambda: all(h.address in self.cluster.connections(new) for h in hosts), FOLLOW_S, 0.5
            )
        row.workers_alive = not self._dead()
        report = self._collect(process, 30)
        row.submit_errors = int(report.get("errors", 0))
        notes = [self.switched, report.get("failed", ""), report.get("first_error", "")]
        final = new or self.cluster.master() or old
        v = self._store(final).verify(self.config.grid)
        row.lost, row.wrong = len(v.missing), len(v.wrong) + len(v.unexpected)
        row.doubled = 0  # a Redis hash holds a point once (HSETNX): a redelivery stores nothing
        row.redeliveries = self._store(final).deliveries() - v.stored
        if progress.count >= size and not v.missing:
            row.recovery_s = round(progress.at - fault, 2)
        if v.missing:
            notes.append(self._missing(v.missing, report))
        if new is None:
            notes.append("no new master named")
        if not row.followed:
            names = {h.address: h.name for h in HOSTS} | {NET.root_address: "submitter"}
            seen = [names.get(a, a) for a in (self.cluster.connections(final) if new else {})]
            notes.append(f"a host with live workers not on {final.name} (on it: {', '.join(seen) or 'none'})")
        row.note = "; ".join(n for n in notes if n)

    def _missing(self, missing: list[Point], report: dict[str, Any]) -> str:
        """Which points are missing (as runs of the submission order: a run lost with the old
        master is one range) and where the pipeline's messages are now."""
        height = self.config.grid.height
        runs = _ranges([x * height + y for x, y in missing])
        text = f"missing #{runs} of the {report.get('submitted', '?')} submitted"
        if isinstance(self.backend, OpsBackend):
            with contextlib.suppress(redis.RedisError):
                text += f" ({queue_summary(self.backend.status().queues)})"
        return text


def _ranges(indices: list[int]) -> str:
    """``3-7, 12``: sorted indices as runs."""
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    shown = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in runs[:5])
    return shown + (f", … {len(runs) - 5} more runs" if len(runs) > 5 else "")


class _Progress:
    """A count polled over time and when it last changed (the last result stored)."""

    def __init__(self, count: Callable[[], int]) -> None:
        self.count_of, self.count, self.at = count, 0, time.monotonic()

    def poll(self) -> int:
        try:
            count = self.count_of()
        except redis.RedisError:
            return self.count
        if count != self.count:
            self.count, self.at = count, time.monotonic()
        return count
