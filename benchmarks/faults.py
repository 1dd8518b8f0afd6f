"""The faults of the reliability scenarios, each applied to a running stack at ~30 % progress."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.embedded import RedisServer
from shared.workers import WorkerGroup, WorkerProcess

if TYPE_CHECKING:
    from benchmarks.postgres_server import PostgresServer

#: Seconds Redis stays away in the "unreachable" scenario.
OUTAGE_SECONDS = 10.0
#: Seconds the results' PostgreSQL stays stopped in the "postgres-restart" scenario.
POSTGRES_OUTAGE_SECONDS = 3.0


@dataclass
class Target:
    """What a fault can reach: the workers, how to start another of a role, the Redis server, and
    the PostgreSQL the results go to (a PostgreSQL-store stack's only)."""

    group: WorkerGroup
    server: RedisServer
    #: role -> the stock worker command, made anew for each start (Celery needs a fresh node name:
    #: a restart under the old one collides with its pidbox queue while RabbitMQ still holds it).
    commands: dict[str, Callable[[], list[str]]]
    #: Workers a fault stopped on purpose; they do not count against "workers alive".
    retired: list[WorkerProcess] = field(default_factory=list)
    postgres: PostgresServer | None = None

    def workers(self, role: str) -> list[WorkerProcess]:
        return [w for w in self.group.workers if w.role == role and w.alive()]

    def kill(self, worker: WorkerProcess, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the worker's whole process group (the CLI and any children), as a host loss would."""
        self.retired.append(worker)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, sig)

    def restart(self, role: str) -> None:
        """Start a replacement, as a supervisor (systemd ``Restart=always``) would."""
        self.group.start(role, self.commands[role]())

    def expected_alive(self) -> list[WorkerProcess]:
        return [w for w in self.group.workers if w not in self.retired]


def kill_compute(t: Target) -> None:
    t.kill(t.workers("compute")[0])


def kill_result(t: Target) -> None:
    t.kill(t.workers("result")[0])
    time.sleep(1.0)
    t.restart("result")


def redis_restart(t: Target) -> None:
    """SIGKILL redis-server (appendfsync always: every acknowledged write is on disk) and start it."""
    assert t.server.process is not None
    t.server.process.kill()
    t.server.process.wait()
    t.server.start()


def redis_unreachable(t: Target) -> None:
    """Redis gone for OUTAGE_SECONDS: connections refused, then the same server back."""
    assert t.server.process is not None
    t.server.process.kill()
    t.server.process.wait()
    time.sleep(OUTAGE_SECONDS)
    t.server.start()


def postgres_restart(t: Target) -> None:
    """Stop the results' PostgreSQL (``pg_ctl stop -m fast``: sessions cut, committed rows kept),
    start it again POSTGRES_OUTAGE_SECONDS later on the same port."""
    assert t.postgres is not None, "postgres-restart runs only on a stack storing in PostgreSQL"
    t.postgres.stop()
    time.sleep(POSTGRES_OUTAGE_SECONDS)
    t.postgres.start()


def sigterm_all(t: Target) -> None:
    """Warm shutdown of every worker, then all of them started again."""
    running = [w for w in t.group.workers if w.alive()]
    for w in running:
        # The CLI's own process only, as `kill PID` or systemd's KillMode=mixed does: Dramatiq's
        # main process forwards it, and a worker process that gets a second SIGTERM stops hard.
        t.retired.append(w)
        w.process.send_signal(signal.SIGTERM)
    for w in running:
        w.process.wait(60)
    for w in running:
        t.restart(w.role)


def no_fault(t: Target) -> None:
    """The poison scenario's fault is in its input."""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    fault: Callable[[Target], None]
    poison_per_queue: int = 0
    redis_args: Sequence[str] = ("--appendonly", "yes", "--appendfsync", "always", "--save", "")
    #: Runs only on a stack whose results go to the harness's own PostgreSQL (it stops and starts it).
    needs_postgres: bool = False


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("kill-compute", "SIGKILL one compute worker at ~30 %", kill_compute),
    Scenario(
        "kill-result", "SIGKILL the result worker at ~30 %, a replacement starts 1 s later", kill_result
    ),
    Scenario("redis-restart", "SIGKILL redis-server (AOF, fsync always) and start it again", redis_restart),
    Scenario("redis-unreachable", f"Redis down for {OUTAGE_SECONDS:.0f} s, then back", redis_unreachable),
    Scenario("sigterm-all", "SIGTERM every worker (warm shutdown), then restart them", sigterm_all),
    Scenario("poison", "1,000 malformed messages per queue interleaved with the grid", no_fault, 1000),
)


POSTGRES_RESTART = Scenario(
    "postgres-restart",
    f"stop the results' PostgreSQL at ~30 %, start it again {POSTGRES_OUTAGE_SECONDS:.0f} s later",
    postgres_restart,
    needs_postgres=True,
)

#: What also runs on the stacks storing results in PostgreSQL (``benchmarks.chaos.POSTGRES_STACKS``).
STORE_SCENARIOS: tuple[Scenario, ...] = (
    next(s for s in SCENARIOS if s.name == "kill-result"),
    POSTGRES_RESTART,
)
#: Every scenario, each once, in table order.
ALL_SCENARIOS: tuple[Scenario, ...] = (*SCENARIOS, POSTGRES_RESTART)


def by_name(names: Sequence[str] | None) -> list[Scenario]:
    """Scenarios by name; none named: ``SCENARIOS`` (the ones every stack of ``make chaos`` runs)."""
    if not names:
        return list(SCENARIOS)
    known = {s.name: s for s in ALL_SCENARIOS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; choose from {list(known)}")
    return [known[n] for n in names]
