"""The ``Backend`` interface over the Celery/RabbitMQ baseline, so the harness treats it like the rest.

Profiles differ only in the worker command line:
  ``seed-defaults``  ``celery worker -Q …`` as the seed runs it: prefork pool, concurrency = cores,
                     prefetch multiplier 4.
  ``tuned``          what Celery's "Optimizing" guide recommends for many short tasks: a large
                     prefetch multiplier (it suggests 64 or 128) so workers do not wait on the broker
                     between tasks, and the ``solo`` pool, which runs tasks in the consuming process
                     with no pool IPC (the seed's tasks are microseconds long; parallelism comes from
                     the N worker processes). Gossip, mingle and event heartbeats are cluster chatter
                     the pipeline does not use.
"""

from __future__ import annotations

import atexit
import uuid
from collections.abc import Iterable, Sequence

from kombu import Connection

from benchmarks import celery_app
from shared.commands import stock_cli
from shared.connection import connect
from shared.settings import Settings
from shared.store import ResultStore
from shared.tasks import Point, validate_point

PROFILES: dict[str, list[str]] = {
    "seed-defaults": [],
    "tuned": [
        "--pool",
        "solo",
        "--prefetch-multiplier",
        "128",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ],
}


class CeleryBackend:
    name = celery_app.STORE_NAME

    def __init__(self, settings: Settings, profile: str = "seed-defaults") -> None:
        self.settings = settings
        self.profile = profile
        self.extra_args = PROFILES[profile]
        self.app = celery_app.app
        self.store = ResultStore(connect(settings), self.name)
        if not _cleanup_registered:
            atexit.register(delete_own_queues)
            _cleanup_registered.append(True)

    def submit(self, x: int, y: int) -> None:
        celery_app.compute.delay(*validate_point(x, y))

    def submit_many(self, points: Iterable[Point]) -> int:
        checked = [validate_point(x, y) for x, y in points]
        # One producer (one channel) for the whole batch, as Celery's own group.apply_async does.
        with self.app.producer_or_acquire() as producer:
            for point in checked:
                celery_app.compute.apply_async(point, producer=producer)
        return len(checked)

    def queue_depths(self) -> dict[str, int]:
        with self.app.connection_for_write() as conn:
            channel = conn.default_channel
            return {
                q.name.removeprefix(celery_app.PREFIX): int(q.bind(channel).queue_declare()[1])
                for q in self.app.conf.task_queues
            }

    def purge(self) -> None:
        self.app.control.purge()  # the app's queues: this run's own (celery_app.PREFIX)
        self.store.client.delete(celery_app.READY_KEY)  # readiness of earlier runs' workers

    def worker_command(self, queues: Sequence[str]) -> list[str]:
        # A unique node name per process: several workers on one host must not share "celery@host".
        node = f"{'-'.join(queues)}-{uuid.uuid4().hex[:8]}@%h"
        return [
            stock_cli("celery"),
            "-A",
            "benchmarks.celery_app",
            "worker",
            "-Q",
            ",".join(celery_app.own(q) for q in queues),
            "-n",
            node,
            "--loglevel",
            "WARNING",
            *self.extra_args,
        ]

    def live_workers(self, since: float) -> int:
        return int(self.store.client.zcount(celery_app.READY_KEY, since, "+inf"))


#: Whether this process deletes its queues and exchange at exit (once, whatever the backends).
_cleanup_registered: list[bool] = []


def delete_own_queues() -> None:
    """Delete this run's queues (and so its auto-delete exchange) from the broker; a broker that
    is gone by now is left to expire them (``celery_app.QUEUE_EXPIRES_MS``)."""
    try:
        with Connection(str(celery_app.app.conf.broker_url), connect_timeout=3) as conn:
            channel = conn.default_channel
            for queue in celery_app.app.conf.task_queues:
                queue.bind(channel).delete()
            celery_app.exchange.bind(channel).delete()
    except Exception:  # at exit, with the broker unreachable: nothing else to do
        pass


def broker_problem(url: str | None = None, timeout: float = 3.0) -> str | None:
    """Why the AMQP broker cannot be used, or None if it answers."""
    broker = url or str(celery_app.app.conf.broker_url)
    try:
        with Connection(broker, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # kombu raises a different class per transport and failure
        return f"cannot reach the AMQP broker: {type(exc).__name__}: {exc}"
    return None


def create(settings: Settings, profile: str = "seed-defaults") -> CeleryBackend:
    return CeleryBackend(settings, profile)


def broker_version(url: str | None = None, timeout: float = 3.0) -> str | None:
    """The broker's version as it announces itself on connect (RabbitMQ: ``3.12.1``), if reachable."""
    try:
        with Connection(url or str(celery_app.app.conf.broker_url), connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            version = conn.connection.server_properties.get("version")
    except Exception:  # unreachable: the report says so elsewhere
        return None
    return version.decode() if isinstance(version, bytes) else (str(version) if version else None)
