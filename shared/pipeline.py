"""Declare a task once, run it on Dramatiq or RQ: the interface users write their computations to.

    # myproj/tasks.py
    from shared.pipeline import task

    @task                                   # queue from the routing table by the task's full name
    def simulate(seed: int, scale: float) -> float: ...

    @task(queue="reports", timeout=120)     # explicit queue / options override the table
    def report(day: str) -> dict: ...

``simulate(7, 0.5)`` runs the function here; ``simulate.submit(7, 0.5)`` checks the call against
the signature and type hints (``shared.arguments``) and enqueues it on ``PIPELINE_BACKEND``
(``dramatiq`` or ``rq``); ``simulate.map(calls, chunk_size=None)`` submits many. On a worker the
task's return value travels as a message to the result queue, where ``store_results`` stores it
once per call in the configured store (``shared.results``). Workers are the libraries' own CLIs
on the user's module: ``dramatiq myproj.tasks -Q compute``, and for RQ ``rq worker compute`` with
``PIPELINE_TASKS=myproj.tasks`` (``redis-pipeline env`` prints the rest).

``shared`` names no backend: each is found by name (``shared.backend.load_driver``), and the
adapter turns a ``Task`` into an actor or a job (``declare``) and sends its messages.
"""

from __future__ import annotations

import contextvars
import importlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, overload

from shared.arguments import Arguments, Checked, InvalidArguments, dumps
from shared.backend import TASKS_ENV, Driver, configured_backend, load_driver
from shared.chunks import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE
from shared.results import RedisStore, Results, open_results
from shared.routing import RoutingTable, active_table

#: Seconds a ``store_results`` may take, as the seed's tasks: an RQ worker's dead job is found
#: ``timeout`` + 5 s after it started. A store away for longer times the job out, and RQ retries it.
STORE_TIMEOUT = 10.0


class InvalidResult(InvalidArguments):
    """A task returned something that is not a JSON value: no retry can change that."""


@dataclass(frozen=True)
class TaskOptions:
    """Per-task options; the defaults suit a computation of seconds to minutes.

    ``timeout``   seconds a call may run before it is stopped and retried (RQ's own default, 180).
    ``retries``   further attempts after an exception of ``retry_on`` (bad arguments never retry).
    ``backoff``   seconds before the first retry, doubling each time (0: at once). On RQ a
                  backoff needs a worker that runs RQ's scheduler (``--with-scheduler``).
    ``store``     store the return value at the other end (False: the task hands results on itself).
    ``key``       a function of the call's arguments giving its result key (default: canonical JSON).
    ``route_as``  route by another task's name (the seed's chunk tasks go where its tasks go).
    """

    queue: str | None = None
    timeout: float = 180.0
    retries: int = 3
    backoff: float = 0.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    chunk_size: int = DEFAULT_CHUNK_SIZE
    store: bool = True
    key: Callable[..., Any] | None = None
    route_as: str | None = None

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout!r}")
        if self.retries < 0 or self.backoff < 0:
            raise ValueError("retries and backoff must be >= 0")
        if not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be in [1, {MAX_CHUNK_SIZE}], got {self.chunk_size!r}")

    def retryable(self, exc: BaseException) -> bool:
        return not isinstance(exc, InvalidArguments) and isinstance(exc, self.retry_on)


class Call:
    """One submitted (or checked) call: the task's name, its checked arguments, and its key (the
    result's, worked out when asked: a task that hands results on itself never needs it)."""

    __slots__ = ("_checked", "_key_fn", "task")

    def __init__(self, task: str, checked: Checked, key_fn: Callable[..., Any] | None = None) -> None:
        self.task = task
        self._checked = checked
        self._key_fn = key_fn

    @property
    def args(self) -> tuple[Any, ...]:
        return self._checked.args

    @property
    def kwargs(self) -> dict[str, Any]:
        return self._checked.kwargs

    @property
    def key(self) -> str:
        if self._key_fn is not None:
            return str(self._key_fn(*self.args, **self.kwargs))
        return self._checked.key

    def __repr__(self) -> str:
        return f"Call({self.task!r}, key={self.key!r})"


_REGISTRY: dict[str, Task] = {}
#: The driver of the backend a worker is running a task on (for ``store_results``' fast path).
_running_on: contextvars.ContextVar[Driver | None] = contextvars.ContextVar("running_on", default=None)


class Task:
    """A declared computation: callable in-process, submittable to the configured backend."""

    def __init__(
        self, fn: Callable[..., Any], name: str, options: TaskOptions, fallback_queue: str | None
    ) -> None:
        self.fn = fn
        self.name = name
        self.options = options
        self.arguments = Arguments(fn)
        self._fallback_queue = fallback_queue
        self._routed: tuple[RoutingTable, str] | None = None
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<task {self.name} on queue {self.queue!r}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function here, as a Dramatiq actor or an RQ job function called directly does."""
        return self.fn(*args, **kwargs)

    @property
    def queue(self) -> str:
        """The explicit queue, else the routing table's for this name, else the task's fallback."""
        if self.options.queue:
            return self.options.queue
        table = active_table()
        if self._routed is None or self._routed[0] is not table:
            queue = table.queue_for(self.options.route_as or self.name, fallback=self._fallback_queue)
            self._routed = (table, queue)
        return self._routed[1]

    def call(self, *args: Any, **kwargs: Any) -> Call:
        """Check a call (raise ``InvalidArguments``, a ``ValueError``, naming the parameter)."""
        return Call(self.name, self.arguments.validate(args, kwargs), self.options.key)

    def calls(self, items: Iterable[Sequence[Any] | Mapping[str, Any]]) -> list[Call]:
        """Check many calls (each a list/tuple of arguments, or a dict of keyword arguments); the
        first bad one raises naming its index, and nothing is returned."""
        checked = []
        for i, item in enumerate(items):
            args, kwargs = split_call(item)
            try:
                checked.append(self.call(*args, **kwargs))
            except InvalidArguments as exc:
                raise InvalidArguments(f"calls[{i}]: {exc}") from None
        return checked

    def submit(self, *args: Any, **kwargs: Any) -> Call:
        """Check, then enqueue one call on the configured backend (nothing enqueued if invalid)."""
        call = self.call(*args, **kwargs)
        self.driver().send(self, self.queue, call.args, call.kwargs)
        return call

    def map(
        self, items: Iterable[Sequence[Any] | Mapping[str, Any]], chunk_size: int | None = None
    ) -> list[Call]:
        """Check every call, then enqueue them all in pipelined round trips; with ``chunk_size``,
        ``chunk_size`` calls per message (``run_chunk``): a failing call is retried on its own."""
        return self.send_calls(self.calls(items), chunk_size)

    def send_calls(self, calls: list[Call], chunk_size: int | None = None) -> list[Call]:
        """``map`` for calls already checked (``calls``)."""
        driver = self.driver()
        if not chunk_size:
            driver.send_many(self, self.queue, [(c.args, c.kwargs) for c in calls])
            return calls
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise InvalidArguments(f"chunk_size must be in [1, {MAX_CHUNK_SIZE}], got {chunk_size!r}")
        messages: list[tuple[Sequence[Any], dict[str, Any]]] = [
            ((self.name, [[list(c.args), c.kwargs] for c in calls[i : i + chunk_size]]), {})
            for i in range(0, len(calls), chunk_size)
        ]
        driver.send_many(run_chunk, self.queue, messages, chunk_options(self, chunk_size))
        return calls

    def driver(self, backend: str | None = None) -> Driver:
        """The driver of ``backend``; by default the one running the current task on a worker (a task
        sends on the backend it runs on), else ``PIPELINE_BACKEND``'s. Every declared task is on it."""
        if backend is None:
            running = _running_on.get()
            backend = running.name if running is not None else configured_backend()
        return _ready(backend)

    def perform(self, driver: Driver, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Run one delivered call on a worker: check it, run it, send its result to be stored."""
        call = Call(self.name, self.arguments.validate(args, kwargs), self.options.key)
        token = _running_on.set(driver)
        try:
            value = self.fn(*call.args, **call.kwargs)
            if self.options.store:
                send_result(driver, self, [(call.key, value)])
        finally:
            _running_on.reset(token)


def split_call(item: Sequence[Any] | Mapping[str, Any]) -> tuple[Sequence[Any], Mapping[str, Any]]:
    """A ``map`` item as (args, kwargs): a list/tuple is positional, a dict is by keyword."""
    if isinstance(item, Mapping):
        return (), item
    if isinstance(item, (list, tuple)):
        return item, {}
    raise InvalidArguments(f"a call must be a list of arguments or a dict, got {type(item).__name__}")


def send_result(driver: Driver, task: Task, rows: Sequence[tuple[str, Any]]) -> None:
    """Hand ``task``'s (key, value) rows to the result queue (one ``store_results`` message)."""
    try:
        payload = [[key, value] for key, value in rows]
        dumps(payload)
    except (TypeError, ValueError):
        raise InvalidResult(f"{task.name} returned a value that is not JSON") from None
    driver.send(store_results, store_results.queue, (task.name, payload), {})


@overload
def task(fn: Callable[..., Any], /) -> Task: ...
@overload
def task(*, name: str | None = None, **options: Any) -> Callable[[Callable[..., Any]], Task]: ...
def task(fn: Callable[..., Any] | None = None, /, *, name: str | None = None, **options: Any) -> Any:
    """Declare ``fn`` as a task named ``name`` (default: its module and qualified name), with
    ``TaskOptions``; it is declared on the configured backend at once, so a worker that imports
    the module has it."""

    def declare(fn: Callable[..., Any]) -> Task:
        return _declare(fn, name or f"{fn.__module__}.{fn.__qualname__}", TaskOptions(**options))

    return declare if fn is None else declare(fn)


def _declare(fn: Callable[..., Any], name: str, options: TaskOptions, fallback: str | None = None) -> Task:
    new = Task(fn, name, options, fallback)
    old = _REGISTRY.get(name)
    if old is not None and getattr(old.fn, "__code__", None) is not getattr(fn, "__code__", None):
        raise ValueError(f"two tasks are named {name!r}; give one of them name=...")
    _REGISTRY[name] = new
    for backend in {*_synced, configured_backend()}:
        _ready(backend)
    return new


#: Backend name -> how many registered tasks its driver has been given.
_synced: dict[str, int] = {}


def _ready(backend: str) -> Driver:
    """The backend's driver, with every task registered so far declared on it."""
    driver = load_driver(backend)
    if _synced.get(backend) != len(_REGISTRY):
        for declared_task in list(_REGISTRY.values()):
            driver.declare(declared_task)
        _synced[backend] = len(_REGISTRY)
    return driver


def builtin(name: str, fallback: str, **options: Any) -> Callable[[Callable[..., Any]], Task]:
    """The pipeline's own tasks: a route in the user's table wins, else the seed's queue."""
    return lambda fn: _declare(fn, name, TaskOptions(store=False, **options), fallback)


def running_driver() -> Driver | None:
    """The driver of the backend whose worker is running the current task, or None (not on a worker)."""
    return _running_on.get()


def get_task(name: str) -> Task | None:
    """A declared task by name (what a worker may run), or None."""
    return _REGISTRY.get(name)


def declared() -> list[Task]:
    return list(_REGISTRY.values())


def import_tasks(modules: str | Sequence[str] | None = None) -> list[Task]:
    """Import the task modules (default: ``PIPELINE_TASKS``), so their tasks are declared."""
    if modules is None:
        modules = os.environ.get(TASKS_ENV, "")
    names = [m.strip() for m in modules.split(",")] if isinstance(modules, str) else list(modules)
    for module in filter(None, names):
        importlib.import_module(module)
    return declared()


def resolve(spec: str) -> Task:
    """``module:function`` (or ``module.function``) naming a declared task; ValueError otherwise."""
    module, sep, attr = spec.partition(":")
    if not sep:
        module, _, attr = spec.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot load task {spec!r}: {exc}") from None
    if not isinstance(found, Task):
        raise ValueError(f"{spec!r} is not declared with @task (shared.pipeline.task)")
    return found


def results(url: str | None = None) -> Results:
    """The configured result store (``PIPELINE_RESULTS_URL``, default ``REDIS_URL``)."""
    return open_results(url)


def prepare_worker(queues: Iterable[str] | None) -> None:
    """A worker about to serve ``queues`` (None: every queue): if it stores results, open the
    store now, so the first result waits for no import or connection (and a bad
    ``PIPELINE_RESULTS_URL`` stops the worker at start, not at its first message)."""
    if queues is None or store_results.queue in set(queues):
        results().store.prepare()


@builtin("pipeline.store_results", fallback="result", retries=3, timeout=STORE_TIMEOUT)
def store_results(task: str, rows: list[tuple[str, Any]]) -> None:
    """Store a task's (key, value) rows once each: with the ack's script on a Redis store that is
    the broker's own Redis, else committed to the store before the message is acked (on Dramatiq
    with the rows of every message its group commit acks together)."""
    store = results().store
    full = [(task, key, value) for key, value in rows]
    driver = _running_on.get()
    if driver is not None:
        if isinstance(store, RedisStore) and store.is_broker:
            if driver.defer(store.script_rows(full)):
                return
        elif driver.defer_store(store, full):
            return
    store.put_many(full)


@builtin("pipeline.run_chunk", fallback="compute", retries=3)
def run_chunk(task: str, calls: list[tuple[list[Any], dict[str, Any]]]) -> None:
    """Run a chunk of one task's calls; one ``store_results`` for those that return, and each call
    that raises is sent again on its own (with the task's own retries and dead-letter queue)."""
    target = get_task(task)
    if target is None:
        raise InvalidArguments(f"{task!r} is not a declared task on this worker")
    driver = _running_on.get()
    assert driver is not None, "run_chunk runs on a worker"
    rows = []
    for args, kwargs in calls:
        call = target.call(*args, **kwargs)
        try:
            rows.append((call.key, target.fn(*call.args, **call.kwargs)))
        except Exception:
            driver.send(target, target.queue, call.args, call.kwargs)
    if rows and target.options.store:
        send_result(driver, target, rows)


def chunk_options(task: Task, size: int) -> TaskOptions:
    """A chunk of ``size`` calls may take ``size`` times a call's timeout."""
    return replace(task.options, timeout=task.options.timeout * size)
