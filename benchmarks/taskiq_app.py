"""The seed's two tasks on taskiq + taskiq-redis, for the ``taskiq`` stack (``benchmarks.taskiq_backend``).

Workers are taskiq's own CLI, one broker (one Redis stream) per queue, as the seed runs one
Celery worker per queue:

    taskiq worker benchmarks.taskiq_app:compute_broker    # compute
    taskiq worker benchmarks.taskiq_app:result_broker     # result

``compute`` hands ``(x, y, x*y)`` to ``handle_result``, which stores it in the same ``ResultStore``
as every other stack, so every run is verified the same way. Every key is this run's own: the
streams, the readiness set and the results hashes carry ``PREFIX`` (put in the environment, so the
workers the harness starts use the same names), and the backend deletes them when the run ends.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from taskiq import TaskiqEvents
from taskiq_redis import RedisStreamBroker

from shared import tasks
from shared.connection import connect
from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK, active_table
from shared.settings import Settings
from shared.store import ResultStore

PREFIX_ENV = "PIPELINE_BENCH_TASKIQ_PREFIX"
PREFIX = os.environ.setdefault(PREFIX_ENV, f"bench-taskiq-{uuid.uuid4().hex[:8]}")
#: Sorted set: "<CLI pid>:<worker process pid>" -> when that worker process was ready (epoch s).
READY_KEY = f"{PREFIX}:ready"
#: The results hashes are ``pipeline:<STORE_NAME>:results`` / ``…:deliveries``: this run's own.
STORE_NAME = f"taskiq:{PREFIX}"


def stream(queue: str) -> str:
    """This run's stream of a routing-table queue."""
    return f"{PREFIX}:{queue}"


def _broker(queue: str) -> RedisStreamBroker:
    # taskiq-redis's README starts with RedisStreamBroker, the broker that acknowledges (XACK once
    # the task ran; ListQueueBroker is for "if you don't want acknowledges"): its defaults, both
    # profiles (they differ in the worker CLI's flags, ``taskiq_backend.PROFILES``).
    return RedisStreamBroker(Settings.from_env().redis_url, queue_name=stream(queue))


_routing = active_table()
compute_broker = _broker(_routing.queue_for(COMPUTE_TASK))
result_broker = _broker(_routing.queue_for(HANDLE_RESULT_TASK))
store = ResultStore(connect(Settings.from_env()), STORE_NAME)


@result_broker.task(task_name=HANDLE_RESULT_TASK)
def handle_result(x: int, y: int, result: int) -> None:
    """Store the result at the other end (idempotent: a redelivery stores nothing new). A plain
    function, as the seed's: taskiq runs it in its thread pool."""
    store.put(*tasks.validate_result(x, y, result))


@compute_broker.task(task_name=COMPUTE_TASK)
async def compute(x: int, y: int) -> None:
    """Perform the computation and hand its result to ``handle_result``, as the seed does."""
    x, y = tasks.validate_point(x, y)
    await handle_result.kiq(x, y, tasks.compute(x, y))


@compute_broker.on_event(TaskiqEvents.WORKER_STARTUP)
@result_broker.on_event(TaskiqEvents.WORKER_STARTUP)
def _record_ready(state: Any) -> None:
    """Each worker process of a CLI says it is up (the CLI forks ``--workers`` of them)."""
    store.client.zadd(READY_KEY, {f"{os.getppid()}:{os.getpid()}": time.time()})
