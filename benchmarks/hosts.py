"""Several hosts on one machine: network namespaces on a private bridge, one Redis, the workers on
their own addresses; then one compute host is cut off mid-run and the recovery is timed.

    python -m benchmarks.hosts              # (make hosts) both backends, steady run then cut run

Hosts (namespaces ``rcp-<host>``, addresses in 10.213.7.0/24 on the bridge ``rcp-br0``):
``redis`` .10 runs redis-server; ``compute-a`` .11 and ``compute-b`` .12 run compute workers;
``collector`` .13 runs the result worker; the submitter stays in the root namespace (.1). No
namespace has a route beyond the bridge and nothing is forwarded or NATed, so no packet leaves.
Everything named ``rcp-*`` is removed at start (leftovers of a crashed run) and in ``finally``.
Needs root and iproute2; exits with ``SKIPPED`` (77) where namespaces cannot be made.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from benchmarks.netns import (
    SKIPPED,
    Host,
    Net,
    SetupFailed,
    build_network,
    cleanup,
    finish_logs,
    in_host,
    ip,
    namespaces_unavailable,
    wait_for,
)
from shared.embedded import find_redis_server
from shared.ops import QueueStatus
from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK, active_table
from shared.tasks import Grid
from shared.workers import WorkerGroup

REDIS_PORT = 6379


NET = Net("rcp-", "10.213.7")
PREFIX, BRIDGE, SUBNET, ROOT_ADDRESS = NET.prefix, NET.bridge, NET.subnet, NET.root_address


REDIS = Host("redis", "redis", 10, NET)
COMPUTE_A = Host("compute-a", "comp-a", 11, NET)
COMPUTE_B = Host("compute-b", "comp-b", 12, NET)
COLLECTOR = Host("collector", "collect", 13, NET)
HOSTS = (REDIS, COMPUTE_A, COMPUTE_B, COLLECTOR)
REDIS_URL = f"redis://{REDIS.address}:{REDIS_PORT}/0"


@contextlib.contextmanager
def network(work_dir: Path) -> Iterator[redis.Redis]:
    """The namespaces, the bridge and a redis-server on the ``redis`` host; all gone afterwards."""
    cleanup(PREFIX)
    server: subprocess.Popen[bytes] | None = None
    try:
        build_network(HOSTS, NET)
        binary = find_redis_server()
        assert binary is not None  # checked by namespaces_unavailable
        args = ["--bind", REDIS.address, "--port", str(REDIS_PORT), "--protected-mode", "no"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(work_dir)]
        server = subprocess.Popen(
            in_host(REDIS, [binary, *args]),
            stdout=(work_dir / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=10)
        if not wait_for(lambda: _answers(client), 15):
            raise SetupFailed(f"redis-server on the redis host did not answer over {BRIDGE}")
        check = "import redis, sys; redis.Redis.from_url(sys.argv[1], socket_connect_timeout=3).ping()"
        for host in (COMPUTE_A, COMPUTE_B, COLLECTOR):
            done = subprocess.run(
                in_host(host, [sys.executable, "-c", check, REDIS_URL]), capture_output=True, text=True
            )
            if done.returncode != 0:
                raise SetupFailed(f"{host.name} cannot reach Redis: {done.stderr.strip()[-300:]}")
        yield client
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(10)
        cleanup(PREFIX)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@dataclass
class Run:
    line: str
    ok: bool


class Scenario:
    """One backend's workers on the compute and collector hosts, fed from the root namespace."""

    def __init__(self, backend_name: str, client: redis.Redis, grid: Grid, per_host: int, logs: Path) -> None:
        from shared.backend import load_ops_backend
        from shared.settings import Settings

        self.backend = load_ops_backend(backend_name, Settings(REDIS_URL))
        self.client = client
        self.grid = grid
        self.per_host = per_host
        self.logs = logs
        self.groups: dict[Host, WorkerGroup] = {}
        #: (results stored, seconds since submitting) of the steady run, to compare the cut run with.
        self.progress: list[tuple[int, float]] = []

    def start(self, label: str, timeout: float) -> None:
        self.client.flushall()  # our own server on our own bridge: nothing else lives there
        routing = active_table()
        env = {**os.environ, "REDIS_URL": REDIS_URL}
        plan = {
            COMPUTE_A: (self.per_host, routing.queue_for(COMPUTE_TASK)),
            COMPUTE_B: (self.per_host, routing.queue_for(COMPUTE_TASK)),
            # As many result workers as compute workers: results keep pace with the computing,
            # so at the cut compute-a still holds work of its own.
            COLLECTOR: (2 * self.per_host, routing.queue_for(HANDLE_RESULT_TASK)),
        }
        for host, (count, queue) in plan.items():
            log_dir = self.logs / self.backend.name / label / host.name
            log_dir.mkdir(parents=True, exist_ok=True)
            group = self.groups[host] = WorkerGroup(env, log_dir)
            for _ in range(count):
                group.start(queue, in_host(host, self.backend.worker_command([queue])))
        total = sum(count for count, _ in plan.values())
        live = wait_for(
            lambda: len(self.backend.status().workers) >= total or bool(self._dead()), timeout, 0.1
        )
        if dead := self._dead() or ("" if live else "(none exited)"):
            self.stop()
            raise SetupFailed(f"{self.backend.name}: workers not live after {timeout:.0f} s:\n{dead}")

    def _dead(self) -> str:
        return "\n".join(w.tail() for g in self.groups.values() for w in g.dead())

    def where(self) -> str:
        """Which host each live worker connects from, as Redis sees it (the ops view's address)."""
        by_address = {h.address: h.name for h in HOSTS}
        seen: dict[str, int] = {}
        for worker in self.backend.status().workers:
            host = by_address.get(worker.address.rsplit(":", 1)[0], worker.address or "?")
            seen[host] = seen.get(host, 0) + 1
        return ", ".join(f"{host} x{n}" for host, n in sorted(seen.items()))

    def stop(self) -> None:
        for group in self.groups.values():
            group.stop()
        self.groups.clear()

    def cut(self, host: Host) -> None:
        """Pull the host's cable, then kill everything it ran (no goodbye reaches Redis)."""
        ip("link", "set", host.link, "down")
        for worker in self.groups[host].workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.process.pid, signal.SIGKILL)

    def steady(self, timeout: float) -> Run:
        self.start("steady", timeout)
        try:
            where = self.where()
            started = time.perf_counter()
            self.backend.submit_many(self.grid.points())
            self.progress = [(0, 0.0)]

            def done() -> bool:
                stored = self.backend.store.count()
                if stored > self.progress[-1][0]:
                    self.progress.append((stored, time.perf_counter() - started))
                return stored >= self.grid.size

            wait_for(done, timeout)
            seconds = time.perf_counter() - started
        finally:
            self.stop()
        v = self.backend.store.verify(self.grid)
        head = f"{self.backend.name} steady: {v.verified}/{v.expected} results verified"
        if not v.ok:
            return Run(f"{head}: FAILED after {seconds:.1f} s, {v.problems()}", False)
        return Run(
            f"{head} in {seconds:.2f} s ({self.grid.size / seconds:.0f} tasks/s); workers: {where}", True
        )

    def _rest(self, at: int) -> str:
        """How long the steady run took from the same count to its end: recovery minus this is
        what the cut cost."""
        if not self.progress or self.progress[-1][0] < self.grid.size:
            return ""
        since = next(t for stored, t in self.progress if stored >= at)
        return f"; the steady run needed {self.progress[-1][1] - since:.2f} s from there"

    def cut_run(self, timeout: float, cut_at: float) -> Run:
        self.start("cut", timeout)
        name, size = self.backend.name, self.grid.size
        try:
            # The whole grid is queued before the cut, so compute-a holds messages when it dies
            # (cut during the submit, it may hold none); then a tight poll, and nothing between
            # it and the cut: at 7,000 tasks/s a status read first moved the cut by a fifth.
            self.backend.submit_many(self.grid.points())
            wait_for(lambda: self.backend.store.count() >= cut_at * size, timeout, interval=0.001)
            fault = time.monotonic()
            at = self.backend.store.count()
            self.cut(COMPUTE_A)
            held = self.backend.status().queue(active_table().queue_for(COMPUTE_TASK)).in_flight
            recovered = wait_for(lambda: self.backend.store.count() >= size, timeout)
            recovery = time.monotonic() - fault
            after = self.backend.status().queues
        finally:
            self.stop()
            ip("link", "set", COMPUTE_A.link, "up")  # mend the cable for the next run
        v = self.backend.store.verify(self.grid)
        twice = f"{len(v.redelivered)} points delivered more than once, each stored once"
        head = (
            f"{name} cut: {v.verified}/{v.expected} results verified; {COMPUTE_A.name} cut at {at}/{size}"
            f" stored, {held} compute messages in flight after the cut"
        )
        if recovered and v.ok:
            return Run(
                f"{head}; recovery {recovery:.2f} s (fault -> last result stored{self._rest(at)}); {twice}",
                True,
            )
        stuck = queue_summary(after)
        return Run(
            f"{head}; FAILED: not recovered {recovery:.0f} s after the fault ({v.problems()}; {stuck})", False
        )


def queue_summary(queues: list[QueueStatus]) -> str:
    return "; ".join(
        f"{q.name}: {q.depth} waiting, {q.in_flight} in flight, {q.dead} dead, {q.delayed} delayed"
        for q in queues
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hosts", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["dramatiq", "rq", "both"], default="both")
    parser.add_argument("--scenario", choices=["steady", "cut", "both"], default="both")
    parser.add_argument("--grid", default="50x50", help="WIDTHxHEIGHT (default 50x50)")
    parser.add_argument("--workers-per-host", type=int, default=2)
    parser.add_argument(
        "--cut-at",
        type=float,
        default=0.3,
        help="fraction stored before the cut (at the earliest once the whole grid is queued)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds each run may wait for results")
    parser.add_argument("--log-dir", type=Path, help="keep worker logs here (default: kept only on failure)")
    args = parser.parse_args(argv)
    if reason := namespaces_unavailable(PREFIX):
        print(f"SKIPPED: {reason}", file=sys.stderr)
        return SKIPPED
    # The task modules read REDIS_URL when imported; make it the redis host's before they are.
    os.environ["REDIS_URL"] = REDIS_URL
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` cleans up
    logs = args.log_dir or Path(tempfile.mkdtemp(prefix="rcp-hosts-"))
    logs.mkdir(parents=True, exist_ok=True)
    names = ["dramatiq", "rq"] if args.backend == "both" else [args.backend]
    grid = Grid.parse(args.grid)
    ok = True
    try:
        with network(logs) as client:
            for name in names:
                scenario = Scenario(name, client, grid, args.workers_per_host, logs)
                runs = []
                if args.scenario in ("steady", "both"):
                    runs.append(scenario.steady(args.timeout))
                if args.scenario in ("cut", "both"):
                    runs.append(scenario.cut_run(args.timeout, args.cut_at))
                for run in runs:
                    print(run.line, flush=True)
                    ok = ok and run.ok
    except SetupFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        ok = False
    return finish_logs(ok, logs, kept=args.log_dir is not None)


if __name__ == "__main__":
    sys.exit(main())
