"""The ``Backend`` interface over the seed's tasks on Huey (``benchmarks.huey_app``), a peer stack on
the run's Redis: ``RedisHuey`` storage, stock ``huey_consumer`` workers.

Profiles differ only in the consumer's command line (every flag's source is cited in ``PROFILES``):
  ``seed-defaults``  the consumer's defaults: one worker thread.
  ``tuned``          what Huey's consumer and deployment guides recommend: worker processes, one
                     per core; no periodic-task scan; SIGTERM as the graceful stop.
Both log errors only (``-q``), as every other stack's workers log warnings at most: at Huey's
default INFO level each task writes two log lines.

Huey pops a message (``BRPOP``) and keeps no copy: a consumer killed mid-task loses what it held.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import uuid
from collections.abc import Iterable, Sequence

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from benchmarks import huey_app
from benchmarks.huey_app import HueyPair
from shared.commands import stock_cli
from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK, active_table
from shared.settings import Settings
from shared.store import ResultStore
from shared.tasks import Point, validate_point

#: Shutdown timeout of the tuned consumer: under the harness's own stop grace.
SHUTDOWN_TIMEOUT_S = 2

PROFILES: dict[str, list[str]] = {
    # https://huey.readthedocs.io/en/latest/consumer.html#consumer-options: -w defaults to 1, -k to
    # thread; -q: "only errors and their tracebacks will be logged".
    "seed-defaults": ["-q"],
    "tuned": [
        "-q",
        # consumer.html#consumer-options, -k: "CPU heavy loads: use process" (the GIL keeps threads
        # from running at once); -w: "If you have a CPU-intensive workload, you may want to increase
        # the number of workers to the number of CPU cores".
        "-k",
        "process",
        "-w",
        str(os.cpu_count() or 1),
        # consumer.html#consumer-options, -n: without periodic tasks, "feel free to use this option
        # to save a few CPU cycles".
        "-n",
        # https://huey.readthedocs.io/en/latest/deployment.html#shutdown-signals: most supervisors
        # stop with SIGTERM, Huey's immediate stop; run with --graceful-signal=TERM, and with
        # --shutdown-timeout so a graceful stop cannot wait for ever.
        "-g",
        "TERM",
        "-t",
        str(SHUTDOWN_TIMEOUT_S),
    ],
}


_POPPED = "Huey takes a message off its list (BRPOP) and keeps no copy"
_DEPLOYMENT = "https://huey.readthedocs.io/en/latest/deployment.html#shutdown-signals"
_RETRIES = "https://huey.readthedocs.io/en/latest/guide.html#retrying-tasks-that-fail"
_KILLED = f"{_POPPED}: the task a SIGKILLed consumer was running is lost ({_DEPLOYMENT})"
_REDIS_DOWN = (
    f"{_POPPED}, and a task that raises while Redis is down (its `handle_result` call or its write) "
    f"is logged and dropped: Huey retries only a task given retries=, 0 by default ({_RETRIES})"
)
#: Why Huey fails a chaos scenario, where that is known (``ChaosResult.note``).
CHAOS_NOTES = {
    "kill-compute": _KILLED,
    "kill-result": _KILLED,
    "redis-restart": _REDIS_DOWN,
    "redis-unreachable": _REDIS_DOWN,
    "sigterm-all": f"SIGTERM is Huey's immediate stop: running tasks are interrupted and not "
    f"re-enqueued ({_DEPLOYMENT}; the tuned profile makes SIGTERM graceful with -g TERM)",
    "poison": "Huey keeps no failed message: one it cannot decode, or whose task raises, is logged "
    "and dropped",
}


class HueyBackend:
    name = huey_app.STORE_NAME
    chaos_notes = CHAOS_NOTES

    def __init__(self, settings: Settings, profile: str = "seed-defaults") -> None:
        self.settings = settings
        self.profile = profile
        self.extra_args = PROFILES[profile]
        self.pair = HueyPair(settings)
        self.store: ResultStore = self.pair.store
        if not _created:
            atexit.register(_delete_own)
        _created.append(self.pair)

    def submit(self, x: int, y: int) -> None:
        self.pair.compute(*validate_point(x, y))

    def submit_many(self, points: Iterable[Point]) -> int:
        checked = [validate_point(x, y) for x, y in points]
        self.pair.compute.map(checked)  # Huey's bulk call: one LPUSH a message
        return len(checked)

    def role(self, queue: str) -> str:
        """``compute`` or ``result``: the Huey instance consuming the seed's ``queue``."""
        routing = active_table()
        roles = {routing.queue_for(COMPUTE_TASK): "compute", routing.queue_for(HANDLE_RESULT_TASK): "result"}
        if queue not in roles:
            raise ValueError(f"Huey runs the seed's compute and result queues only, not {queue!r}")
        return roles[queue]

    def queue_depths(self) -> dict[str, int]:
        return {role: int(huey.pending_count()) for role, huey in self.pair.hueys.items()}

    def purge(self) -> None:
        for huey in self.pair.hueys.values():
            huey.storage.flush_queue()
            huey.storage.flush_schedule()
        self.store.client.delete(huey_app.READY_KEY)  # readiness of earlier runs' consumers

    def worker_command(self, queues: Sequence[str]) -> list[str]:
        (queue,) = queues  # one Huey instance, one queue, per consumer
        instance = f"benchmarks.huey_app.{huey_app.INSTANCES[self.role(queue)]}"
        node = f"{queue}-{uuid.uuid4().hex[:8]}"
        return ["env", f"{huey_app.NODE_ENV}={node}", stock_cli("huey_consumer"), instance, *self.extra_args]

    def live_workers(self, since: float) -> int:
        return int(self.store.client.zcount(huey_app.READY_KEY, since, "+inf"))


#: The pairs this process made a backend of: their keys go at exit.
_created: list[HueyPair] = []


def _delete_own() -> None:
    for pair in _created:
        delete_own_keys(pair)


def delete_own_keys(pair: HueyPair) -> None:
    """Delete the pair's Huey keys (queue, schedule, results, counters) and the consumers'
    readiness; a Redis that is gone by now (a chaos run's) went with its directory, so one try."""
    storages = [huey.storage for huey in pair.hueys.values()]
    keys = [key for s in storages for key in (s.queue_key, s.schedule_key, s.result_key, s.counter_key)]
    client = redis.Redis.from_url(pair.url, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    with contextlib.suppress(redis.RedisError):
        client.delete(*keys, huey_app.READY_KEY)


def create(settings: Settings, profile: str = "seed-defaults") -> HueyBackend:
    return HueyBackend(settings, profile)
