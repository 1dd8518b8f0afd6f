"""``python -m benchmarks run --task MODULE:FUNCTION --args FILE.jsonl``: a user's own task on our stacks.

The task is one declared with ``@task`` (``shared.pipeline``) in the user's module; its calls are
read and checked as ``redis-pipeline run --task`` reads them (``shared.task_runner``). Each of our
backends runs them per message (``own-task``) and chunked (``own-task-chunked``, the task's own
``chunk_size`` calls per message), with the grid's workers, timing, verification (every call
stored exactly once; with ``--check``, each value right), report and charts: a ``CallSet`` takes
the grid's place in the run's one case, ``task``. Latency is not measured (its probe times grid
points), and the results go to the store ``--store`` names, the run's Redis by default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import redis

from benchmarks.result_stores import STORES, StoreKind
from benchmarks.stacks import Stack, redis_problem
from benchmarks.task_stacks import TaskStack, TaskStore, environ
from benchmarks.workloads import WARMUP, Case, Profile
from shared.backend import Backend, TaskBackend, load_task_backend
from shared.results import Check, Results
from shared.settings import Settings
from shared.tasks import Grid
from shared.verification import Verification

if TYPE_CHECKING:
    from shared.pipeline import Call, Task

#: The workload's name in the results, and the stacks' profiles.
WORKLOAD = "task"
PER_MESSAGE, CHUNKED = "own-task", "own-task-chunked"
NO_LATENCY = "a user's task: latency is timed on grid points only"


@dataclass(frozen=True)
class CallSet(Grid):
    """A user's checked calls in a case's ``grid`` slot: ``size`` and ``points()`` are all a run
    uses of a grid, here ``len(calls) x 1``, each call once (a call sent twice is stored once)."""

    calls: tuple[Call, ...] = ()
    source: str = ""

    @classmethod
    def of(cls, calls: Iterable[Call], source: str) -> CallSet:
        distinct = tuple({call.key: call for call in calls}.values())
        return cls(len(distinct), 1, distinct, source)

    def points(self) -> Iterator[Any]:
        return iter(self.calls)

    def head(self, count: int) -> CallSet:
        return CallSet.of(self.calls[:count], self.source)

    def __str__(self) -> str:
        return f"{self.width} calls from {self.source}"


class OwnTaskStore(TaskStore):
    """``TaskStore`` over the user's task's results, verified call by call (``Results.verify``)."""

    def __init__(self, url: str, broker: redis.Redis, task: Task, check: Check | None) -> None:
        super().__init__(url, broker, task.name)
        self.check = check

    def verify(self, grid: Grid) -> Verification:
        if not isinstance(grid, CallSet):
            raise TypeError(f"a user's task is verified on its calls, not on the grid {grid}")
        return Results(self.store).verify(grid.calls, self.check)


class OwnTaskStack(TaskStack):
    """``TaskStack`` with the user's task and module in place of the grid's ``product``."""

    def __init__(
        self, inner: TaskBackend, results_url: str, task: Task, check: Check | None, chunk_size: int | None
    ) -> None:
        self.task, self.check, self.module = task, check, task.fn.__module__
        super().__init__(inner, results_url, chunk_size)

    def declared_task(self) -> Task:
        return self.task

    def open_store(self, url: str, broker: redis.Redis) -> TaskStore:
        return OwnTaskStore(url, broker, self.task, self.check)

    def submit(self, x: int, y: int) -> None:
        raise NotImplementedError("a user's task is submitted by its calls (submit_many)")

    def submit_many(self, points: Iterable[Any]) -> int:
        with environ(self.worker_env()):
            return len(self.task.send_calls(list(points), self.chunk_size))


def stacks(task: Task, check: Check | None, store: StoreKind) -> list[Stack]:
    """Both backends, per message and chunked, storing in ``store``."""

    def make(path: str, chunk_size: int | None) -> Callable[[Settings], Backend]:
        def build(settings: Settings) -> Backend:
            url = STORES.url(store, settings)
            return OwnTaskStack(load_task_backend(path, settings), url, task, check, chunk_size)

        return build

    def problem(settings: Settings) -> str | None:
        return redis_problem(settings) or STORES.problem(store)

    return [
        Stack(path, profile, make(path, size), problem, latency_unmeasurable=NO_LATENCY, sliceable=False)
        for path in ("dramatiq", "rq")
        for profile, size in ((PER_MESSAGE, None), (CHUNKED, task.options.chunk_size))
    ]


def profile(base: Profile, calls: CallSet, repeats: int | None, workers: Sequence[int]) -> Profile:
    """``base``'s repetitions and warm-up, on one case per worker count: the user's calls."""
    note = f"Your task's {calls.width} calls ({calls.source}) instead of the grid, on our stacks only."
    cases = tuple(Case(WORKLOAD, calls, compute_workers=n, note=note) for n in workers)
    return replace(base, cases=cases, repeats=repeats or base.repeats, warmup_grid=calls.head(WARMUP.size))


def own_task_run(
    spec: str,
    args_file: str | None,
    check_spec: str | None,
    store: StoreKind,
    base: Profile,
    repeats: int | None,
) -> tuple[list[Stack], Profile]:
    """``run --task``'s stacks and profile; a bad task, arguments file or check is one line, exit 2
    (click's usage error), as for ``redis-pipeline run --task``."""
    import click  # the CLI's error type; this module is otherwise the harness's

    from shared.pipeline import resolve
    from shared.task_runner import load_check, read_calls

    if args_file is None:
        raise click.UsageError("--task needs --args FILE (one JSON array of arguments per line)")
    try:
        task = resolve(spec)
        calls = CallSet.of(task.calls(read_calls(args_file)), args_file)
        check = load_check(check_spec) if check_spec else None
    except ValueError as exc:  # InvalidArguments and CallsFileError (a ConfigError) are ValueErrors
        raise click.UsageError(str(exc)) from None
    workers = sorted({c.compute_workers for c in base.cases if c.workload == "grid"})
    return stacks(task, check, store), profile(base, calls, repeats, workers)
