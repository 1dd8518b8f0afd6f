"""The declared-task stacks: the grid through ``@task`` (``benchmarks.grid_tasks.product``) on our
Dramatiq or RQ adapter, stored by the pipeline's result worker in Redis, SQLite or PostgreSQL.

Workers are the stock CLIs on ``benchmarks.grid_tasks``; their environment, and the harness
process's while the stack runs (``stack_environment``), carries ``PIPELINE_BACKEND``,
``PIPELINE_TASKS`` and ``PIPELINE_RESULTS_URL`` (``worker_env``). The SQLite file and the private
PostgreSQL live for one harness run (``benchmarks.result_stores``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import Connection, exc, func, select

from benchmarks.result_stores import STORES, StoreKind
from benchmarks.stacks import Wrapped
from shared.backend import BACKEND_ENV, Backend, TaskBackend, load_task_backend
from shared.results import RESULTS_URL_ENV, RedisStore, Results, Store, open_store
from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK, active_table
from shared.settings import Settings
from shared.sql_store import SqlStore, results_table
from shared.store import ResultStore, ScriptRow, Verification
from shared.tasks import Grid, Point, compute

if TYPE_CHECKING:
    from shared.pipeline import Task

#: The module the workers run the declared task from, and the task's name in the store.
MODULE = "benchmarks.grid_tasks"
TASK_NAME = "bench.product"


def _product() -> Task:
    # Imported when a stack is made, not with this module: importing ``shared.pipeline`` declares
    # its own tasks, which loads the configured backend's driver, bound to REDIS_URL from then on;
    # the harness sets REDIS_URL (its private Redis) after this module is imported.
    from benchmarks.grid_tasks import product

    return product


@contextmanager
def environ(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set, restored afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def stack_environment(backend: Backend) -> Any:
    """``environ`` of the backend's ``worker_env()`` if it has one (the task stacks), else a no-op."""
    worker_env = getattr(backend, "worker_env", None)
    return environ(worker_env() if worker_env else {})


def _point(key: str) -> Any:
    """A call key of ``product`` (``[x,y]``) as the point ``(x, y)``; anything else as it is."""
    try:
        x, y = json.loads(key)
        return int(x), int(y)
    except (ValueError, TypeError):
        return key


class TaskStore(ResultStore):
    """What the harness uses of ``ResultStore`` (count, clear, verify, deliveries, the Redis client
    and results hash for latency) over ``product``'s results in the store at ``url``.

    The harness counts results while the clock runs: a SQL count costs 1-4 ms (a Redis HLEN tens of
    microseconds), so it goes over one held autocommit connection, and less often (``poll_interval``),
    so as not to load the store it measures."""

    #: (floor, ceiling) seconds between the harness's counts while it waits (``poll_pause``).
    poll_interval = (0.002, 0.02)

    def __init__(self, url: str, broker: redis.Redis, task_name: str = TASK_NAME) -> None:
        self.store: Store = open_store(url)
        self.task_name = task_name
        # Sampler and idle counts read the broker's memory and commands; latency reads the results hash.
        client = self.store.client if isinstance(self.store, RedisStore) else broker
        super().__init__(client, task_name)
        self.results_key = RedisStore.results_key(task_name)
        self.deliveries_key = RedisStore.deliveries_key(task_name)
        self._counter: Connection | None = None
        self._count_query = (
            select(func.count()).select_from(results_table).where(results_table.c.task == task_name)
        )
        if isinstance(self.store, SqlStore):
            self.poll_interval = (0.01, 0.05)
            STORES.on_close(self.close)

    def field(self, x: int, y: int) -> str:
        """The results hash field of point (x, y): the call's key."""
        return _product().call(x, y).key

    def put_many(self, rows: Iterable[tuple[int, int, int]]) -> int:
        return self.store.put_many([(TASK_NAME, self.field(x, y), result) for x, y, result in rows])

    def script_row(self, x: int, y: int, result: int) -> ScriptRow:
        raise NotImplementedError("the result worker stores these rows (shared.pipeline.store_results)")

    def get(self, x: int, y: int) -> int | None:
        return self.store.values(TASK_NAME).get(self.field(x, y))

    def count(self) -> int:
        if not isinstance(self.store, SqlStore):
            return self.store.count(self.task_name)
        try:
            if self._counter is None:
                connection = self.store.engine.connect()
                self._counter = connection.execution_options(isolation_level="AUTOCOMMIT")
            return int(self._counter.execute(self._count_query).scalar_one())
        except exc.DBAPIError:
            self.close()
            return self.store.count(self.task_name)  # which waits out a restart

    def close(self) -> None:
        """Close the counting connection and the SQL store's pool (both reopen on use)."""
        counter, self._counter = self._counter, None
        with suppress(exc.DBAPIError):
            if counter is not None:
                counter.close()
            if isinstance(self.store, SqlStore):
                self.store.close()

    def deliveries(self) -> int:
        return sum(self.store.deliveries(self.task_name).values())

    def doubled(self) -> int:
        """Rows beyond one per call key: in SQL, rows less distinct keys (0 unless the table's
        primary key let a redelivery through); a Redis hash holds a key once by construction."""
        if not isinstance(self.store, SqlStore):
            return 0
        table = results_table
        extra = func.count() - func.count(func.distinct(table.c.key))
        query = select(extra).where(table.c.task == self.task_name)
        with self.store.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def clear(self) -> None:
        self.store.clear(self.task_name)

    def verify(self, grid: Grid) -> Verification:
        """``Results.verify`` of every point's call, checked against ``compute``, by point."""
        calls = _product().calls(grid.points())
        found = Results(self.store).verify(calls, check=lambda value, x, y: value == compute(x, y))
        return Verification(
            expected=found.expected,
            stored=found.stored,
            missing=[_point(k) for k in found.missing],
            wrong=[(_point(k), v) for k, v in found.wrong],
            unexpected=[_point(k) for k in found.unexpected],
            redelivered={_point(k): n for k, n in found.redelivered.items()},
        )


class TaskStack(Wrapped):
    """The grid as calls of ``product`` (``map``; with ``chunk_size``, that many calls per message)
    on a backend's stock-CLI workers, stored in the store at ``results_url``."""

    #: The module the workers import (``PIPELINE_TASKS``): the one declaring the task.
    module = MODULE

    def __init__(self, inner: TaskBackend, results_url: str, chunk_size: int | None = None) -> None:
        super().__init__(inner)
        self.tasks = inner
        self.results_url = results_url
        self.chunk_size = chunk_size
        self.product = self.declared_task()
        self.store = self.open_store(results_url, inner.store.client)

    def declared_task(self) -> Task:
        return _product()

    def open_store(self, url: str, broker: redis.Redis) -> TaskStore:
        return TaskStore(url, broker)

    def worker_env(self) -> dict[str, str]:
        from shared.pipeline import TASKS_ENV

        return {BACKEND_ENV: self.name, TASKS_ENV: self.module, RESULTS_URL_ENV: self.results_url}

    def submit(self, x: int, y: int) -> None:
        with environ(self.worker_env()):
            if self.chunk_size:
                self.product.map([(x, y)], self.chunk_size)
            else:
                self.product.submit(x, y)

    def submit_many(self, points: Iterable[Point]) -> int:
        with environ(self.worker_env()):
            return len(self.product.map(list(points), self.chunk_size))

    def worker_command(self, queues: Sequence[str]) -> list[str]:
        """The harness asks for the seed's compute and result queues; these workers consume the
        task's queue and ``store_results``' queue instead."""
        from shared.pipeline import store_results

        routing = active_table()
        queue_of = {
            routing.queue_for(COMPUTE_TASK): self.product.queue,
            routing.queue_for(HANDLE_RESULT_TASK): store_results.queue,
        }
        return self.tasks.task_worker_command([queue_of.get(q, q) for q in queues], [self.module])


def create(path: str, kind: StoreKind, settings: Settings, chunk_size: int | None = None) -> Backend:
    return TaskStack(load_task_backend(path, settings), STORES.url(kind, settings), chunk_size)
