"""Reliability scenarios: run the grid, inject a fault at ~30 %, count what was lost, wrong or doubled.

Every scenario runs against its own private redis-server (AOF, ``appendfsync always``) so a
restart loses nothing Redis acknowledged and the shared Redis is never touched.

The PostgreSQL stacks (``POSTGRES_STACKS``: the grid as the declared task ``bench.product``,
stored by the pipeline's result worker in the harness's private PostgreSQL) run
``STORE_SCENARIOS`` besides: the result worker SIGKILLed, and PostgreSQL stopped and started
again. Their workers, and this process while they run, get the stack's ``PIPELINE_*``
environment; the grid is sent from a child process (``benchmarks.chaos_submit``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.faults import ALL_SCENARIOS, SCENARIOS, STORE_SCENARIOS, Scenario, Target, by_name
from benchmarks.poison import PoisonPlan, PoisonTally, unwrap, writer_for
from benchmarks.result_stores import STORES
from benchmarks.stacks import CHUNKED_CHAOS_COST_MS, Stack, select
from benchmarks.task_stacks import TaskStack, TaskStore, environ
from shared.backend import Backend
from shared.embedded import RedisServer
from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK, active_table
from shared.runner import start_workers
from shared.settings import Settings
from shared.tasks import CPU_COST_ENV, Grid
from shared.workers import WorkerGroup

#: Our two paths must recover within this (issue #4's bar); the baselines are only reported.
RECOVERY_LIMIT_S = 30.0
#: Give up on a run when no new result arrived for this long.
STALL_S = 60.0
FAULT_AT = 0.30

#: The stacks whose results go to the harness's private PostgreSQL: ``STORE_SCENARIOS`` run on them.
POSTGRES_STACKS = (
    "dramatiq task-postgres",
    "rq task-postgres",
    "dramatiq task-postgres-chunked",
    "rq task-postgres-chunked",
)
#: Profiles of the declared-task stacks: our adapters, so their rows are judged as our paths are.
TASK_PROFILE_PREFIX = "task-"
REPO = Path(__file__).resolve().parent.parent


@dataclass
class ChaosResult:
    scenario: str
    stack: str
    profile: str
    tasks: int
    lost: int
    wrong: int
    redeliveries: int
    recovery_s: float | None
    poison_injected: int
    poison_accounted: int | None
    poison_without_reason: int
    pickle_file_created: bool
    workers_alive: bool
    required: bool  # our paths must pass; the baselines are reported beside them
    #: Results already stored when the fault struck: below ``tasks``, or the run proved nothing.
    stored_at_fault: int = 0
    note: str = ""
    #: Keys stored (``verify``), and rows beyond one per key (SQL: rows less distinct keys; a
    #: Redis hash holds a key once by construction, so 0 there).
    stored: int = 0
    doubled: int = 0
    #: Why the run could not happen here (no PostgreSQL): the row reads "skipped: <reason>".
    skipped: str = ""

    @property
    def passed(self) -> bool:
        poison_ok = self.poison_accounted == self.poison_injected and not self.poison_without_reason
        return (
            not self.skipped
            and self.lost == 0
            and self.wrong == 0
            and self.doubled == 0
            and self.recovery_s is not None
            and self.recovery_s <= RECOVERY_LIMIT_S
            and (poison_ok or not self.poison_injected)
            and not self.pickle_file_created
            and self.workers_alive
        )

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def _wait(backend: Backend, expected: int) -> float | None:
    """Wait for ``expected`` results; return when the last one arrived, None if they never did."""
    count = backend.store.count()
    last_change = time.monotonic()
    while count < expected:
        time.sleep(0.05)
        now = time.monotonic()
        new = backend.store.count()
        if new != count:
            count, last_change = new, now
        elif now - last_change > STALL_S:
            return None
    return last_change


def _submit_with_poison(backend: Backend, grid: Grid, scenario: Scenario, marker: Path) -> PoisonTally | None:
    writer = writer_for(backend)
    points = list(grid.points())
    if not scenario.poison_per_queue:
        backend.submit_many(points)
        return None
    if writer is None:
        backend.submit_many(points)
        return PoisonTally(accounted=None)
    queues = [active_table().queue_for(COMPUTE_TASK), active_table().queue_for(HANDLE_RESULT_TASK)]
    half = scenario.poison_per_queue // 2
    tally = writer.inject(unwrap(backend), PoisonPlan(queues, half, marker))
    backend.submit_many(points[: len(points) // 2])
    rest = writer.inject(unwrap(backend), PoisonPlan(queues, scenario.poison_per_queue - half, marker))
    backend.submit_many(points[len(points) // 2 :])
    tally.ids += rest.ids
    tally.injected += rest.injected
    return tally


def stores_in_postgres(stack: Stack) -> bool:
    return stack.label in POSTGRES_STACKS


def runs_on(scenario: Scenario, stack: Stack) -> bool:
    """Whether ``scenario`` can run on ``stack`` (a PostgreSQL restart needs a PostgreSQL store)."""
    return not scenario.needs_postgres or stores_in_postgres(stack)


def plan(
    scenario_names: Sequence[str], stack_labels: Sequence[str], default_stacks: Sequence[str]
) -> list[tuple[Scenario, Stack]]:
    """The (scenario, stack) runs of ``python -m benchmarks chaos``, in table order.

    Nothing named: ``SCENARIOS`` on ``default_stacks``, and ``STORE_SCENARIOS`` on
    ``POSTGRES_STACKS`` too. Scenarios named: each on its stacks of that plan. Stacks named: each
    with its scenarios of that plan (``SCENARIOS`` for a stack outside it). Both named: every pair
    that can run. Raises ValueError naming an unknown scenario or stack."""
    scenarios = by_name(scenario_names) if scenario_names else list(ALL_SCENARIOS)
    named = select(stack_labels) if stack_labels else None
    runs: list[tuple[Scenario, Stack]] = []
    for scenario in scenarios:
        if named is None:
            extra = select(POSTGRES_STACKS) if scenario in STORE_SCENARIOS else []
            candidates = select(default_stacks) + extra
        elif scenario_names:
            candidates = named
        else:
            candidates = [s for s in named if scenario in _planned_on(s)]
        runs += [(scenario, stack) for stack in candidates if runs_on(scenario, stack)]
    return runs


def _planned_on(stack: Stack) -> tuple[Scenario, ...]:
    return STORE_SCENARIOS if stores_in_postgres(stack) else SCENARIOS


def skipped_result(scenario: Scenario, stack: Stack, grid: Grid, reason: str) -> ChaosResult:
    """The row of a run that cannot happen on this machine: "skipped: <reason>", not a failure."""
    return ChaosResult(
        scenario=scenario.name,
        stack=stack.stack,
        profile=stack.profile,
        tasks=grid.size,
        lost=0,
        wrong=0,
        redeliveries=0,
        recovery_s=None,
        poison_injected=0,
        poison_accounted=0,
        poison_without_reason=0,
        pickle_file_created=False,
        workers_alive=False,
        required=False,
        skipped=reason,
    )


def skip_row(scenario: Scenario, stack: Stack, grid: Grid, problem: str) -> ChaosResult | None:
    """For a stack whose ``problem`` keeps it from running: a PostgreSQL stack's row reads
    "skipped: <problem>"; the other stacks are only named as skipped (None), as they always were."""
    return skipped_result(scenario, stack, grid, problem) if stores_in_postgres(stack) else None


def submit_task_grid(backend: TaskStack, grid: Grid, env: dict[str, str]) -> None:
    """Send the grid as calls of ``bench.product`` from a child with ``env``: this process's task
    drivers stay bound to the Redis of their first import, not this scenario's."""
    command = [sys.executable, "-m", "benchmarks.chaos_submit", f"{grid.width}x{grid.height}"]
    if backend.chunk_size:
        command.append(str(backend.chunk_size))
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=STALL_S)
    if done.returncode != 0 or done.stdout.strip() != str(grid.size):
        raise RuntimeError(f"submitting the grid failed ({done.returncode}): {done.stderr.strip()[-1500:]}")


def run_scenario(
    scenario: Scenario, stack: Stack, grid: Grid, log_dir: Path, compute_workers: int = 2
) -> ChaosResult:
    """One scenario on one stack; a PostgreSQL stack's run reads "skipped: <reason>" when the
    harness cannot have its PostgreSQL here (or cannot restart it, for ``postgres-restart``)."""
    if not runs_on(scenario, stack):
        raise ValueError(f"{scenario.name} runs only on a stack storing in PostgreSQL: {POSTGRES_STACKS}")
    if stores_in_postgres(stack):
        if problem := STORES.problem("postgres"):
            return skipped_result(scenario, stack, grid, problem)
        if scenario.needs_postgres and STORES.postgres_server() is None:
            reason = "the results' PostgreSQL was given by URL, not started here: not ours to restart"
            return skipped_result(scenario, stack, grid, reason)
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        marker = Path(tmp) / "pickle-was-run"
        server = RedisServer(Path(tmp), args=list(scenario.redis_args))
        server.start()
        old_url = os.environ.get("REDIS_URL")
        os.environ["REDIS_URL"] = server.url
        backend: Backend | None = None
        try:
            backend = stack.make(Settings(server.url))
            task_env = backend.worker_env() if isinstance(backend, TaskStack) else {}
            with environ(task_env):
                return _run(scenario, stack, backend, server, grid, log_dir, marker, compute_workers)
        finally:
            if backend is not None and isinstance(backend.store, TaskStore):
                backend.store.close()  # its counting connection and pool: one scenario's only
            server.stop()
            if old_url is None:
                os.environ.pop("REDIS_URL", None)
            else:
                os.environ["REDIS_URL"] = old_url


def _run(
    scenario: Scenario,
    stack: Stack,
    backend: Backend,
    server: RedisServer,
    grid: Grid,
    log_dir: Path,
    marker: Path,
    compute_workers: int,
) -> ChaosResult:
    backend.purge()
    backend.store.clear()
    routing = active_table()
    commands = {
        "compute": lambda: backend.worker_command([routing.queue_for(COMPUTE_TASK)]),
        "result": lambda: backend.worker_command([routing.queue_for(HANDLE_RESULT_TASK)]),
    }
    # The task stack's PIPELINE_* variables are in os.environ here (run_scenario), so in the workers'.
    env = {**os.environ, "REDIS_URL": server.url}
    cpu_cost = stack.chaos_cpu_cost_ms
    if isinstance(backend, TaskStack) and backend.chunk_size and not cpu_cost:
        cpu_cost = CHUNKED_CHAOS_COST_MS  # ten messages of 250 calls: a fault lands between them
    if cpu_cost:
        env[CPU_COST_ENV] = str(cpu_cost)
    with WorkerGroup(env, log_dir) as group:
        start_workers(backend, group, compute_workers)
        postgres = STORES.postgres_server() if stores_in_postgres(stack) else None
        target = Target(group, server, commands, postgres=postgres)
        if isinstance(backend, TaskStack):
            submit_task_grid(backend, grid, env)
            tally = None
        else:
            tally = _submit_with_poison(backend, grid, scenario, marker)
        deadline = time.monotonic() + STALL_S
        while backend.store.count() < grid.size * FAULT_AT and time.monotonic() < deadline:
            time.sleep(0.01)
        fault_at, stored_at_fault = time.monotonic(), backend.store.count()
        scenario.fault(target)
        last = _wait(backend, grid.size)
        if tally is not None and tally.accounted is not None:
            writer = writer_for(backend)
            assert writer is not None
            settle = time.monotonic() + 30
            while True:
                writer.count(unwrap(backend), tally)
                if tally.accounted == tally.injected or time.monotonic() > settle:
                    break
                time.sleep(0.2)
        alive = all(w.alive() for w in target.expected_alive())
    report = backend.store.verify(grid)
    deliveries = backend.store.deliveries()
    doubled = backend.store.doubled() if isinstance(backend.store, TaskStore) else 0
    result = ChaosResult(
        scenario=scenario.name,
        stack=stack.stack,
        profile=stack.profile,
        tasks=grid.size,
        lost=len(report.missing),
        wrong=len(report.wrong) + len(report.unexpected),
        redeliveries=deliveries - report.stored,
        recovery_s=None if last is None or report.missing else round(last - fault_at, 2),
        poison_injected=tally.injected if tally else 0,
        poison_accounted=tally.accounted if tally else 0,
        poison_without_reason=tally.missing_reasons if tally else 0,
        pickle_file_created=marker.exists(),
        workers_alive=alive,
        required=stack.ours or stack.profile.startswith(TASK_PROFILE_PREFIX),
        stored_at_fault=stored_at_fault,
        stored=report.stored,
        doubled=doubled,
    )
    if not result.passed:  # a baseline's documented way of failing here, if its backend knows one
        result.note = getattr(backend, "chaos_notes", {}).get(scenario.name, "")
    return result
