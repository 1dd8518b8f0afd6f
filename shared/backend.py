"""The one interface both adapters implement, so the CLI and the benchmarks never branch on a name.

Backends are found by name: ``load_backend("rq")`` imports ``rq_impl.backend`` and calls its
``create(settings)``. ``shared`` never imports an adapter directly.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from shared.dead import DeadMessage
from shared.errors import ConfigError, config_error
from shared.ops import Status
from shared.settings import Settings
from shared.store import ResultStore, ScriptRow
from shared.tasks import Point

if TYPE_CHECKING:
    from shared.pipeline import Task, TaskOptions
    from shared.results import Row, Store

#: Backend name -> the module that provides ``create(settings) -> Backend``.
BACKENDS = {
    "dramatiq": "dramatiq_impl.backend",
    "rq": "rq_impl.backend",
}


#: Backend name -> the module whose ``driver()`` runs declared tasks (``shared.pipeline``) on it.
DRIVERS = {
    "dramatiq": "dramatiq_impl.driver",
    "rq": "rq_impl.driver",
}
#: Which backend ``Task.submit`` / ``map`` use, and where ``@task`` declares its task.
BACKEND_ENV = "PIPELINE_BACKEND"
#: ``PIPELINE_TASKS``: comma-separated modules whose tasks a worker may run (RQ workers import them).
TASKS_ENV = "PIPELINE_TASKS"
DEFAULT_BACKEND = "dramatiq"


class UnknownBackend(ConfigError):
    """A backend name no adapter provides."""


def configured_backend() -> str:
    """``PIPELINE_BACKEND`` (default dramatiq); raise naming the choices if it is unknown."""
    name = os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND
    if name not in DRIVERS:
        choices = ", ".join(DRIVERS)
        raise config_error(f"{BACKEND_ENV}={name!r} is not a backend; choose from {choices}", UnknownBackend)
    return name


class Driver(Protocol):
    """What an adapter does for declared tasks: make them actors / jobs, and send their calls."""

    name: str

    def declare(self, task: Task) -> None:
        """Make ``task`` known to the library (idempotent), so a worker of this process runs it."""

    def send(
        self,
        task: Task,
        queue: str,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        options: TaskOptions | None = None,
    ) -> None:
        """Enqueue one checked call of ``task`` on ``queue`` (held back with the running message's
        ack when called from a worker)."""

    def send_many(
        self,
        task: Task,
        queue: str,
        calls: Sequence[tuple[Sequence[Any], dict[str, Any]]],
        options: TaskOptions | None = None,
    ) -> int:
        """Enqueue many checked calls in pipelined round trips; returns how many."""

    def defer_store(self, store: Store, rows: Sequence[Row]) -> bool:
        """In a worker: have ``rows`` committed to ``store`` before the running message is acked,
        batched with other messages' rows where the backend can, and return True; else False."""

    def defer(self, rows: Sequence[ScriptRow]) -> bool:
        """In a worker: write ``rows`` (to the broker's Redis) with the running message's ack, in
        the same script, and return True; else False (the caller writes them)."""


@cache
def load_driver(name: str) -> Driver:
    """The driver of backend ``name`` (one per process)."""
    try:
        module = importlib.import_module(DRIVERS[name])
    except KeyError:
        raise UnknownBackend(f"unknown backend {name!r}; choose from {', '.join(DRIVERS)}") from None
    driver: Driver = module.driver()
    return driver


class Backend(Protocol):
    """What a queueing library has to offer the pipeline."""

    name: str
    settings: Settings
    store: ResultStore

    def submit(self, x: int, y: int) -> None:
        """Validate and enqueue one ``compute(x, y)``."""

    def submit_many(self, points: Iterable[Point]) -> int:
        """Validate every point, then enqueue them all in pipelined round trips; returns the count."""

    def queue_depths(self) -> dict[str, int]:
        """Messages waiting per queue of the routing table."""

    def purge(self) -> None:
        """Drop every waiting message of this backend's queues (not the results)."""

    def worker_command(self, queues: Sequence[str]) -> list[str]:
        """The stock CLI command line of one worker process consuming ``queues``."""

    def live_workers(self, since: float) -> int:
        """Worker processes that showed life in Redis at or after ``since`` (epoch seconds)."""


@runtime_checkable
class ChunkingBackend(Backend, Protocol):
    """A backend with chunked mode (``shared.chunks``): both adapters. Separate from ``Backend``
    so the benchmark baselines need not implement it."""

    def submit_chunks(self, points: Iterable[Point], size: int) -> int:
        """Validate every point, then enqueue ``compute_chunk`` messages of ``size`` points in
        pipelined round trips; returns the number of points."""


@runtime_checkable
class OpsBackend(Backend, Protocol):
    """A backend the ops commands (``status``, ``dead``, ``requeue``, ``purge``) can drive: both
    adapters. Separate from ``Backend`` so the benchmark baselines need not implement it."""

    def status(self) -> Status:
        """Per queue depth / in flight / dead / delayed, the live workers, results stored."""

    def requeue(self, ids: Sequence[str] | None = None) -> list[str]:
        """Move dead-lettered / failed messages (``ids``, or all if None) back to their queue."""

    def purge_queues(self, queues: Sequence[str] | None = None, dead: bool = False) -> dict[str, int]:
        """Drop waiting and delayed messages of ``queues`` (all if None), and with ``dead`` the
        dead-letter / failed ones too; never what workers hold. Returns dropped per queue."""

    def dead(self, queues: Sequence[str] | None = None, limit: int | None = None) -> list[DeadMessage]:
        """Dead-lettered / failed messages of ``queues`` (all if None), newest first, at most
        ``limit`` per queue (all if None); their ids are the ones ``requeue`` takes."""


@runtime_checkable
class TaskBackend(Backend, Protocol):
    """A backend whose workers run declared tasks (``shared.pipeline``): both adapters."""

    def task_worker_command(self, queues: Sequence[str], modules: Sequence[str]) -> list[str]:
        """The stock CLI command line of a worker consuming ``queues`` that runs the tasks of
        ``modules`` (with ``PIPELINE_TASKS`` naming them in its environment)."""


def load_backend(name: str, settings: Settings | None = None) -> Backend:
    try:
        module = importlib.import_module(BACKENDS[name])
    except KeyError:
        raise UnknownBackend(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}") from None
    backend: Backend = module.create(settings or Settings.from_env())
    return backend


def load_chunking_backend(name: str, settings: Settings | None = None) -> ChunkingBackend:
    backend = load_backend(name, settings)
    if not isinstance(backend, ChunkingBackend):
        raise TypeError(f"backend {name!r} has no chunked mode")  # every backend in BACKENDS has one
    return backend


def load_ops_backend(name: str, settings: Settings | None = None) -> OpsBackend:
    backend = load_backend(name, settings)
    if not isinstance(backend, OpsBackend):
        raise TypeError(f"backend {name!r} has no ops view")  # every backend in BACKENDS has one
    return backend


def load_task_backend(name: str, settings: Settings | None = None) -> TaskBackend:
    backend = load_backend(name, settings)
    if not isinstance(backend, TaskBackend):
        raise TypeError(f"backend {name!r} runs no declared tasks")  # every backend in BACKENDS does
    return backend
