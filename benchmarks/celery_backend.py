"""The ``Backend`` interface over the seed's Celery app, on RabbitMQ (the seed's broker) or on the
run's Redis, so the harness treats both like the rest.

Profiles differ only in the worker command line, the same on either broker:
  ``seed-defaults``  ``celery worker -Q …`` as the seed runs it: prefork pool, concurrency = cores,
                     prefetch multiplier 4.
  ``tuned``          what Celery's "Optimizing" guide recommends for many short tasks (each flag's
                     source is cited in ``PROFILES``).
"""

from __future__ import annotations

import atexit
import uuid
from collections.abc import Iterable, Sequence

import redis
from kombu import Connection
from redis.backoff import NoBackoff
from redis.retry import Retry

from benchmarks import celery_app, celeryconfig
from benchmarks.celery_app import PREFIX, SeedApp, own
from shared.commands import stock_cli
from shared.settings import Settings
from shared.store import ResultStore
from shared.tasks import Point, validate_point

#: Each tuned flag with the Celery doc it comes from.
PROFILES: dict[str, list[str]] = {
    "seed-defaults": [],
    "tuned": [
        # https://docs.celeryq.dev/en/stable/userguide/optimizing.html#prefetch-limits: with lots
        # of short tasks where throughput matters, make the multiplier large, "say 64, or 128".
        "--prefetch-multiplier",
        "128",
        # https://docs.celeryq.dev/en/stable/internals/reference/celery.concurrency.solo.html:
        # "Solo task pool (blocking, inline, fast)": tasks run in the consuming process, no pool
        # IPC; the seed's tasks take microseconds, and parallelism comes from the N workers.
        "--pool",
        "solo",
        # https://docs.celeryq.dev/en/stable/reference/cli.html#celery-worker: gossip, mingle and
        # event heartbeats are cluster chatter the pipeline does not use.
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ],
}


_VISIBILITY = (
    "kombu's Redis transport keeps each message a worker took in an unacked hash and hands it to "
    "another worker only after visibility_timeout, 1 h by default "
    "(https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/redis.html#visibility-timeout)"
)
_KILLED = f"{_VISIBILITY}: what the killed worker held is missing at the scenario's stall limit"
#: Why Celery on Redis fails a chaos scenario, where that is known (``ChaosResult.note``).
REDIS_CHAOS_NOTES = {
    "kill-compute": _KILLED,
    "kill-result": _KILLED,
    "redis-restart": f"{_VISIBILITY}: what the workers held when the connection dropped is missing at "
    "the scenario's stall limit",
    "redis-unreachable": f"{_VISIBILITY}; and a worker can exit on the reconnect (kombu raises "
    "AttributeError 'NoneType' object has no attribute 'hostname' closing its channel, as in "
    "celery/kombu#582): `workers alive` says whether one did",
    "poison": "Celery rejects a message it cannot decode or run, and keeps none of them",
}


class CeleryBackend:
    def __init__(self, settings: Settings, profile: str = "seed-defaults", broker: str = "rabbitmq") -> None:
        url = settings.redis_url if broker == "redis" else str(celeryconfig.broker_url)
        self.seed = SeedApp(broker, url, settings)
        self.name = self.seed.name
        self.settings = settings
        self.profile = profile
        self.extra_args = PROFILES[profile]
        self.app = self.seed.app
        self.store: ResultStore = self.seed.store
        self.chaos_notes = REDIS_CHAOS_NOTES if broker == "redis" else {}
        if not _created:
            atexit.register(_delete_own)
        _created.append(self.seed)

    def submit(self, x: int, y: int) -> None:
        self.seed.compute.delay(*validate_point(x, y))

    def submit_many(self, points: Iterable[Point]) -> int:
        checked = [validate_point(x, y) for x, y in points]
        # One producer (one channel) for the whole batch, as Celery's own group.apply_async does.
        with self.app.producer_or_acquire() as producer:
            for point in checked:
                self.seed.compute.apply_async(point, producer=producer)
        return len(checked)

    def queue_depths(self) -> dict[str, int]:
        with self.app.connection_for_write() as conn:
            channel = conn.default_channel
            return {
                q.name.removeprefix(PREFIX): int(q.bind(channel).queue_declare()[1])
                for q in self.app.conf.task_queues
            }

    def purge(self) -> None:
        self.app.control.purge()  # the app's queues: this run's own (celery_app.PREFIX)
        self.store.client.delete(self.seed.ready_key)  # readiness of earlier runs' workers

    def worker_command(self, queues: Sequence[str]) -> list[str]:
        # A unique node name per process: several workers on one host must not share "celery@host".
        node = f"{'-'.join(queues)}-{uuid.uuid4().hex[:8]}@%h"
        return [
            "env",
            f"{celery_app.BROKER_ENV}={self.seed.broker}",
            stock_cli("celery"),
            "-A",
            "benchmarks.celery_app",
            "worker",
            "-Q",
            ",".join(own(q) for q in queues),
            "-n",
            node,
            "--loglevel",
            "WARNING",
            *self.extra_args,
        ]

    def live_workers(self, since: float) -> int:
        return int(self.store.client.zcount(self.seed.ready_key, since, "+inf"))


#: The apps this process made a backend of: their queues go at exit.
_created: list[SeedApp] = []


def _delete_own() -> None:
    for seed in _created:
        delete_own_queues(seed)


def delete_own_queues(seed: SeedApp) -> None:
    """Delete this run's queues from the broker: on RabbitMQ the queues (and so the auto-delete
    exchange), on Redis every key under the run's prefix and the workers' readiness. A broker
    that is gone by now is left alone (RabbitMQ expires the queues, ``QUEUE_EXPIRES_MS``; a chaos
    run's Redis went with its directory)."""
    url = str(seed.app.conf.broker_url)
    try:
        if seed.broker == "redis":  # one try each: a chaos run's Redis is gone by now
            client = redis.Redis.from_url(url, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
            for key in client.scan_iter(match=f"{PREFIX}*", count=1000):
                client.delete(key)
            client.delete(seed.ready_key)
            return
        with Connection(url, connect_timeout=3) as conn:
            channel = conn.default_channel
            for queue in seed.app.conf.task_queues:
                queue.bind(channel).delete()
            seed.exchange.bind(channel).delete()
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


def create(settings: Settings, profile: str = "seed-defaults", broker: str = "rabbitmq") -> CeleryBackend:
    return CeleryBackend(settings, profile, broker)


def broker_version(url: str | None = None, timeout: float = 3.0) -> str | None:
    """The broker's version as it announces itself on connect (RabbitMQ: ``3.12.1``), if reachable."""
    try:
        with Connection(url or str(celery_app.app.conf.broker_url), connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            version = conn.connection.server_properties.get("version")
    except Exception:  # unreachable: the report says so elsewhere
        return None
    return version.decode() if isinstance(version, bytes) else (str(version) if version else None)
