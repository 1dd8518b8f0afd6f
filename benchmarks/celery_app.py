"""The seed's Celery app: ``celery -A benchmarks.celery_app worker -Q compute`` (or ``-Q result``).

``handle_result`` writes into the same ``ResultStore`` as the Redis stacks, so every stack is verified
the same way. Each worker also records in Redis when it is ready, so the harness knows when to start
the clock without asking the broker.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from celery import Celery
from celery.signals import worker_ready
from kombu import Exchange, Queue

from benchmarks import celeryconfig
from shared import tasks
from shared.connection import connect
from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK
from shared.settings import Settings
from shared.store import ResultStore

STORE_NAME = "celery-rabbitmq"
#: Sorted set: worker node name -> when it became ready (epoch seconds).
READY_KEY = f"pipeline:{STORE_NAME}:ready"

#: This benchmark process's own exchange and queues on a RabbitMQ other applications may use
#: (the seed's names, ``default`` / ``compute`` / ``result``, may be theirs): a per-run prefix,
#: put in the environment so the workers it starts use the same names.
PREFIX_ENV = "PIPELINE_BENCH_AMQP_PREFIX"
PREFIX = os.environ.setdefault(PREFIX_ENV, f"bench-{uuid.uuid4().hex[:8]}.")
#: A queue of a run that was killed before it could delete it goes after an hour unused.
QUEUE_EXPIRES_MS = 3_600_000


def own(name: str) -> str:
    return PREFIX + name


app = Celery("tasks")
app.config_from_object("benchmarks.celeryconfig")
# The seed's routing (benchmarks.celeryconfig, checked against SEED_TABLE) under this run's prefix;
# the exchange goes when its last queue does.
exchange = Exchange(own(celeryconfig.tasks_exchange.name), type="topic", auto_delete=True)
app.conf.task_queues = tuple(
    Queue(own(q.name), exchange, routing_key=q.routing_key, queue_arguments={"x-expires": QUEUE_EXPIRES_MS})
    for q in celeryconfig.task_queues
)
app.conf.task_default_queue = own(celeryconfig.task_default_queue)
app.conf.task_default_exchange = exchange.name
app.conf.task_routes = {
    task: {**route, "queue": own(route["queue"])} for task, route in celeryconfig.task_routes.items()
}
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
