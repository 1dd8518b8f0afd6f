"""Declared tasks (``shared.pipeline``) as Dramatiq actors on the pipeline's broker.

Each task becomes an actor named by the task's full name on the task's queue, with the task's
timeout (``time_limit``) and retries (``retry_when``: the task's own rule; bad arguments never
retry). The actor checks the call again and runs it; its result message, like every message an
actor sends, goes to Redis in the same script as the ack (``dramatiq_impl.commit``), and on a
Redis store the result worker's write does too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import dramatiq

from dramatiq_impl.tasks import BACKEND_NAME, broker
from shared.arguments import InvalidArguments

if TYPE_CHECKING:
    from shared.pipeline import Task, TaskOptions
    from shared.results import RedisStore, Row

#: Dramatiq's own cap on a retry's delay is seven days; a task's backoff doubles up to an hour.
MAX_BACKOFF_MS = 3_600_000


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

    def declare(self, task: Task) -> None:
        if task.name in self.actors:
            return

        def perform(*args: Any, **kwargs: Any) -> None:
            task.perform(self, args, kwargs)

        perform.__name__ = perform.__qualname__ = task.name
        self.actors[task.name] = dramatiq.actor(  # type: ignore[call-overload]
            perform,
            actor_name=task.name,
            queue_name=task.queue,
            broker=self.broker,
            **actor_options(task.options),
        )

    def _message(
        self, task: Task, queue: str, args: Sequence[Any], kwargs: dict[str, Any], options: TaskOptions | None
    ) -> dramatiq.Message[Any]:
        extra = {} if options is None else {"time_limit": int(options.timeout * 1000)}
        return dramatiq.Message(
            queue_name=queue, actor_name=task.name, args=tuple(args), kwargs=kwargs, options=extra
        )

    def send(
        self,
        task: Task,
        queue: str,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        options: TaskOptions | None = None,
    ) -> None:
        self.declare(task)
        self.broker.declare_queue(queue)
        self.broker.enqueue(self._message(task, queue, args, kwargs, options))

    def send_many(
        self,
        task: Task,
        queue: str,
        calls: Sequence[tuple[Sequence[Any], dict[str, Any]]],
        options: TaskOptions | None = None,
    ) -> int:
        self.declare(task)
        self.broker.declare_queue(queue)
        messages = (self._message(task, queue, args, kwargs, options) for args, kwargs in calls)
        enqueue_many = getattr(self.broker, "enqueue_many", None)
        if enqueue_many is not None:
            enqueue_many(messages)
        else:  # Dramatiq's own RedisBroker (the benchmarks' "stock" profile)
            for message in messages:
                self.broker.enqueue(message)
        return len(calls)

    def defer_rows(self, store: RedisStore, rows: Sequence[Row]) -> bool:
        defer = getattr(self.broker, "defer_rows", None)
        return store.is_broker and defer is not None and defer(store.script_rows(rows))


_driver = DramatiqDriver(broker)


def driver() -> DramatiqDriver:
    return _driver
