"""The seed's Celery app: ``celery -A benchmarks.celery_app worker -Q compute`` (or ``-Q result``).

``handle_result`` writes into the same ``ResultStore`` as the Redis stacks, so every stack is verified
the same way. Each worker also records in Redis when it is ready, so the harness knows when to start
the clock without asking the broker.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery
from celery.signals import worker_ready

from shared import tasks
from shared.connection import connect
from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK
from shared.settings import Settings
from shared.store import ResultStore

STORE_NAME = "celery-rabbitmq"
#: Sorted set: worker node name -> when it became ready (epoch seconds).
READY_KEY = f"pipeline:{STORE_NAME}:ready"

app = Celery("tasks")
app.config_from_object("benchmarks.celeryconfig")
store = ResultStore(connect(Settings.from_env()), STORE_NAME)


@app.task(name=HANDLE_RESULT_TASK)
def handle_result(x: int, y: int, result: int) -> None:
    """Store the result at the other end (idempotent: a redelivery stores nothing new)."""
    store.put(*tasks.validate_result(x, y, result))


@app.task(name=COMPUTE_TASK)
def compute(x: int, y: int) -> None:
    """Perform the computation and hand its result to ``handle_result``, as the seed does."""
    x, y = tasks.validate_point(x, y)
    handle_result.delay(x, y, tasks.compute(x, y))


@worker_ready.connect
def _record_ready(sender: Any = None, **_: Any) -> None:
    store.client.zadd(READY_KEY, {sender.hostname: time.time()})
