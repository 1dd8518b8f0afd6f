"""The seed's two tasks as Dramatiq actors; start workers with ``dramatiq dramatiq_impl.tasks -Q …``.

>>> from dramatiq_impl.tasks import compute
>>> compute.send(6, 7)          # as the seed's compute.delay(6, 7)
>>> compute_chunk.send([[0, 1], [2, 3]])   # chunked mode: many points, one message each way
"""

from __future__ import annotations

from collections.abc import Sequence

import dramatiq

from dramatiq_impl.broker import set_default_broker
from shared import chunks, tasks
from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK, active_table
from shared.settings import Settings
from shared.store import ResultStore

BACKEND_NAME = "dramatiq"

broker = set_default_broker(Settings.from_env())
routing = active_table()
store = ResultStore(broker.client, BACKEND_NAME)
#: PipelineBroker.defer_result; None on the benchmarks' "stock" broker.
_defer_result = getattr(broker, "defer_result", None)

# Wrong types or arity can never succeed on a retry: fail straight to the dead-letter queue.
_NOT_RETRYABLE = (tasks.InvalidArguments, TypeError)


@dramatiq.actor(queue_name=routing.queue_for(HANDLE_RESULT_TASK), throws=_NOT_RETRYABLE)
def handle_result(x: int, y: int, result: int) -> None:
    """Store the result at the other end (idempotent: a redelivery stores nothing new).

    In a worker the write goes to Redis in the same script as this message's ack.
    """
    x, y, result = tasks.validate_result(x, y, result)
    if _defer_result is None or not _defer_result(store, x, y, result):
        store.put(x, y, result)


@dramatiq.actor(queue_name=routing.queue_for(COMPUTE_TASK), throws=_NOT_RETRYABLE)
def compute(x: int, y: int) -> None:
    """Perform the computation and hand its result to ``handle_result``."""
    x, y = tasks.validate_point(x, y)
    handle_result.send(x, y, tasks.compute(x, y))


@dramatiq.actor(queue_name=routing.queue_for(HANDLE_RESULT_TASK), throws=_NOT_RETRYABLE)
def handle_results(rows: Sequence[Sequence[int]]) -> None:
    """Store a chunk's results in one round trip (idempotent per point, as ``handle_result``)."""
    store.put_many(chunks.validate_rows(rows))


@dramatiq.actor(queue_name=routing.queue_for(COMPUTE_TASK), throws=_NOT_RETRYABLE)
def compute_chunk(points: Sequence[Sequence[int]]) -> None:
    """Compute a chunk; one ``handle_results`` for it, and a failed point retried as a ``compute``."""
    rows = chunks.compute_chunk(chunks.validate_chunk(points), retry_point=compute.send)
    if rows:
        handle_results.send(rows)
