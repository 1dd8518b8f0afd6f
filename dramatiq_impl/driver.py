"""Declared tasks (``shared.pipeline``) as Dramatiq actors on the pipeline's broker.

Each task becomes an actor named by the task's full name on the task's queue, with the task's
timeout (``time_limit``) and retries (``retry_when``: the task's own rule; bad arguments never
retry), and the task's check at ``send`` (``ValidateArguments``). The actor checks the call again
and runs it; every message it sends goes to Redis in the same script as its ack
(``dramatiq_impl.commit``), and so does what it stores in the broker's Redis (``defer``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.middleware import Middleware

from dramatiq_impl.broker import set_default_broker
from dramatiq_impl.middleware import ValidateArguments
from shared.arguments import InvalidArguments
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.pipeline import Task, TaskOptions
    from shared.results import Row as StoreRow
    from shared.results import Store
    from shared.store import ScriptRow

BACKEND_NAME = "dramatiq"
#: Dramatiq's own cap on a retry's delay is seven days; a task's backoff doubles up to an hour.
MAX_BACKOFF_MS = 3_600_000

broker = set_default_broker(Settings.from_env())


class PrepareStore(Middleware):
    """A worker that runs ``pipeline.store_results`` opens the result store before it consumes
    (``shared.pipeline.prepare_worker``)."""

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        from shared.pipeline import prepare_worker  # declares our builtins: after the broker exists

        prepare_worker(worker.consumer_whitelist)


broker.add_middleware(PrepareStore())


def actor_options(options: TaskOptions) -> dict[str, Any]:
    """Dramatiq actor options (TimeLimit, Retries) for a task's options."""
    backoff_ms = int(options.backoff * 1000)

    def retry_when(retries: int, exception: BaseException) -> bool:
        return retries < options.retries and options.retryable(exception)

    return {
        "time_limit": int(options.timeout * 1000),
        "max_retries": options.retries,
        "min_backoff": backoff_ms,
        "max_backoff": max(backoff_ms, MAX_BACKOFF_MS),
        "retry_when": retry_when,
        "throws": (InvalidArguments,),
    }


class DramatiqDriver:
    name = BACKEND_NAME

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker
        self.actors: dict[str, dramatiq.Actor[Any, Any]] = {}
        found = [m for m in broker.middleware if isinstance(m, ValidateArguments)]
        #: None on Dramatiq's own RedisBroker (the benchmarks' "stock" profile).
        self.validate = found[0] if found else None

    def declare(self, task: Task) -> None:
        self.actor(task)

    def actor(self, task: Task) -> dramatiq.Actor[Any, Any]:
        """The task's actor (made on first use): ``.send`` checks and enqueues, as ``submit`` does."""
        found = self.actors.get(task.name)
        if found is not None:
            return found

        def perform(*args: Any, **kwargs: Any) -> None:
            task.perform(self, args, kwargs)

        perform.__name__ = perform.__qualname__ = task.name.rpartition(".")[2]
        perform.__doc__ = task.fn.__doc__
        actor = self.actors[task.name] = dramatiq.actor(  # type: ignore[call-overload]
            perform,
            actor_name=task.name,
            queue_name=task.queue,
            broker=self.broker,
            **actor_options(task.options),
        )
        if self.validate is not None:
            self.validate.validators[task.name] = lambda *a, **k: task.arguments.validate(a, k)
        return actor

    def _message(
        self, task: Task, queue: str, args: Sequence[Any], kwargs: dict[str, Any], options: TaskOptions | None
    ) -> dramatiq.Message[Any]:
        extra = {} if options is None else {"time_limit": int(options.timeout * 1000)}
        return dramatiq.Message(
            queue_name=queue, actor_name=task.name, args=tuple(args), kwargs=kwargs, options=extra
        )

    def _checked(self) -> contextlib.AbstractContextManager[None]:
        """Skip the send-time check: the task's ``submit`` / ``map`` checked these calls."""
        return self.validate if self.validate is not None else contextlib.nullcontext()

    def send(
        self,
        task: Task,
        queue: str,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        options: TaskOptions | None = None,
    ) -> None:
        self.actor(task)
        if queue not in self.broker.queues:
            self.broker.declare_queue(queue)
        with self._checked():
            self.broker.enqueue(self._message(task, queue, args, kwargs, options))

    def send_many(
        self,
        task: Task,
        queue: str,
        calls: Sequence[tuple[Sequence[Any], dict[str, Any]]],
        options: TaskOptions | None = None,
    ) -> int:
        self.actor(task)
        if queue not in self.broker.queues:
            self.broker.declare_queue(queue)
        messages = (self._message(task, queue, args, kwargs, options) for args, kwargs in calls)
        with self._checked():
            enqueue_many = getattr(self.broker, "enqueue_many", None)
            if enqueue_many is not None:
                enqueue_many(messages)
            else:  # Dramatiq's own RedisBroker (the benchmarks' "stock" profile)
                for message in messages:
                    self.broker.enqueue(message)
        return len(calls)

    def defer_store(self, store: Store, rows: Sequence[StoreRow]) -> bool:
        defer_store = getattr(self.broker, "defer_store", None)
        return defer_store is not None and bool(defer_store(store, rows))

    def defer(self, rows: Sequence[ScriptRow]) -> bool:
        defer_rows = getattr(self.broker, "defer_rows", None)
        return defer_rows is not None and bool(defer_rows(rows))


_driver = DramatiqDriver(broker)


def driver() -> DramatiqDriver:
    return _driver
