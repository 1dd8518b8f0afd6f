"""The seed's Celery app: ``celery -A benchmarks.celery_app worker -Q compute`` (or ``-Q result``).

One app per broker: RabbitMQ, as the seed runs it, or the run's Redis (``BROKER_ENV`` in a worker's
environment says which; the harness makes its own ``SeedApp`` per stack). ``handle_result`` writes
into the same ``ResultStore`` as the Redis stacks, so every stack is verified the same way. Each
worker also records in Redis when it is ready, so the harness knows when to start the clock
without asking the broker.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any
from urllib.parse import quote

from celery import Celery
from celery.signals import worker_ready
from kombu import Exchange, Queue

from benchmarks import celeryconfig
from shared import sentinel, tasks
from shared.connection import connect
from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK
from shared.settings import Settings
from shared.store import ResultStore

#: The broker a worker process's app uses: ``rabbitmq`` (the seed's, the default) or ``redis``.
BROKER_ENV = "PIPELINE_BENCH_CELERY_BROKER"
BROKERS = ("rabbitmq", "redis")

#: This benchmark process's own exchange and queues on a broker other applications may use (the
#: seed's names, ``default`` / ``compute`` / ``result``, may be theirs): a per-run prefix, put in
#: the environment so the workers it starts use the same names. On Redis it also prefixes every
#: other key kombu writes (bindings, ``unacked``), so a run touches only keys it created.
PREFIX_ENV = "PIPELINE_BENCH_AMQP_PREFIX"
PREFIX = os.environ.setdefault(PREFIX_ENV, f"bench-{uuid.uuid4().hex[:8]}.")
#: A queue of a run that was killed before it could delete it goes after an hour unused (RabbitMQ).
QUEUE_EXPIRES_MS = 3_600_000


def own(name: str) -> str:
    return PREFIX + name


def store_name(broker: str) -> str:
    return f"celery-{broker}"


def kombu_sentinel_url(url: str) -> tuple[str, str]:
    """Our ``redis+sentinel://`` URL as kombu's Sentinel transport takes it: one ``sentinel://``
    URL per sentinel, ``;``-separated (with the master's AUTH), and the service, its transport
    option ``master_name``."""
    found = sentinel.parse(url)
    user, password = found.master.get("username") or "", found.master.get("password")
    auth = f"{quote(user)}:{quote(password)}@" if password else ""
    db = found.master.get("db", 0)
    return ";".join(f"sentinel://{auth}{host}:{port}/{db}" for host, port in found.sentinels), found.service


class SeedApp:
    """The seed's app, routing (``benchmarks.celeryconfig``, checked against ``SEED_TABLE``, under
    this run's prefix) and tasks, on ``broker`` at ``url``, storing into the Redis of ``settings``."""

    def __init__(self, broker: str, url: str, settings: Settings) -> None:
        if broker not in BROKERS:
            raise ValueError(f"unknown Celery broker {broker!r}; choose from {BROKERS}")
        self.broker = broker
        self.name = store_name(broker)
        #: Sorted set: worker node name -> when it became ready (epoch seconds).
        self.ready_key = f"pipeline:{self.name}:ready"
        self.store = ResultStore(connect(settings), self.name)
        self.app = app = Celery("tasks")
        app.config_from_object("benchmarks.celeryconfig")
        app.conf.broker_url = url
        if broker == "redis":
            # kombu's Redis transport option: every key and channel it uses starts with the prefix.
            options = {"global_keyprefix": PREFIX}
            if sentinel.is_sentinel_url(url):  # the failover runs (benchmarks.failover): kombu's own form
                app.conf.broker_url, options["master_name"] = kombu_sentinel_url(url)
            app.conf.broker_transport_options = options
        # The exchange goes when its last queue does.
        self.exchange = Exchange(own(celeryconfig.tasks_exchange.name), type="topic", auto_delete=True)
        # RabbitMQ drops a killed run's queues after an hour; on Redis kombu would PEXPIRE every
        # queue key on every publish for it, and the run's prefix finds them instead.
        expires = {"x-expires": QUEUE_EXPIRES_MS} if broker == "rabbitmq" else {}
        app.conf.task_queues = tuple(
            Queue(own(q.name), self.exchange, routing_key=q.routing_key, queue_arguments=expires)
            for q in celeryconfig.task_queues
        )
        app.conf.task_default_queue = own(celeryconfig.task_default_queue)
        app.conf.task_default_exchange = self.exchange.name
        app.conf.task_routes = {
            task: {**route, "queue": own(route["queue"])} for task, route in celeryconfig.task_routes.items()
        }
        store = self.store

        @app.task(name=HANDLE_RESULT_TASK)
        def handle_result(x: int, y: int, result: int) -> None:
            """Store the result at the other end (idempotent: a redelivery stores nothing new)."""
            store.put(*tasks.validate_result(x, y, result))

        @app.task(name=COMPUTE_TASK)
        def compute(x: int, y: int) -> None:
            """Perform the computation and hand its result to ``handle_result``, as the seed does."""
            x, y = tasks.validate_point(x, y)
            handle_result.delay(x, y, tasks.compute(x, y))

        self.handle_result, self.compute = handle_result, compute
        _APPS[id(app)] = self

    @classmethod
    def from_env(cls) -> SeedApp:
        """A worker process's app: ``BROKER_ENV``'s broker; RabbitMQ at ``CELERY_BROKER_URL``
        (``benchmarks.celeryconfig``), Redis at ``REDIS_URL``, the results in ``REDIS_URL``."""
        settings = Settings.from_env()
        broker = os.environ.get(BROKER_ENV) or "rabbitmq"
        url = settings.redis_url if broker == "redis" else celeryconfig.broker_url
        return cls(broker, url, settings)


#: id(app) -> its SeedApp, for the readiness signal (sent with the worker, not the app).
_APPS: dict[int, SeedApp] = {}


@worker_ready.connect
def _record_ready(sender: Any = None, **_: Any) -> None:
    if seed := _APPS.get(id(sender.app)):
        seed.store.client.zadd(seed.ready_key, {sender.hostname: time.time()})


#: What ``celery -A benchmarks.celery_app`` runs.
seed = SeedApp.from_env()
app = seed.app
