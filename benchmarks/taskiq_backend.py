"""The ``taskiq`` stack: the seed's compute -> handle_result on taskiq + taskiq-redis (asyncio).

Why taskiq and not saq: both are asyncio job queues on Redis, and both would run the seed. taskiq
is the more used of the two (taskiq and taskiq-redis rank near 4,400 and 4,800 among PyPI's most
downloaded packages, saq near 9,500), its worker model is the seed's own (a broker per queue, and
``taskiq worker module:broker`` serves exactly one queue, as ``celery worker -Q compute`` does),
and its Redis broker acknowledges: ``RedisStreamBroker`` reads through a consumer group and
XACKs a message only after its task ran, so a killed worker's messages stay pending until another
worker claims them (XAUTOCLAIM after ``idle_timeout``, 10 minutes by default): the seed's RabbitMQ
acks, slower to recover. saq would need a settings object per queue and keeps a job hash per task.

Profiles differ only in the worker command line (RedisStreamBroker's defaults in both):
  ``seed-defaults``  ``taskiq worker benchmarks.taskiq_app:<queue>_broker``: the CLI's defaults
                     (2 worker processes per CLI, 100 concurrent async tasks per process,
                     argument parsing on).
  ``tuned``          the knobs taskiq documents for this, each cited where it is set (``PROFILES``).
Both log at WARNING, as the Celery rows do: taskiq's INFO logs a line per task.

What bounds it here: taskiq-redis opens a ``redis.asyncio.Redis`` over its pool for every send and
every ack, and redis-py 8 (which taskiq-redis 1.2 requires) builds its response-callback table in
each one, about half a millisecond of CPU here; the submitter pays it per message too (~1,300
sends/s on its own).

The submitter sends with taskiq's own ``kiq`` on an event loop of its own, many at once (taskiq has
no bulk send; ``asyncio.gather`` over ``kiq`` is how its users send many).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.commands import stock_cli
from shared.routing import active_table
from shared.settings import Settings
from shared.store import ResultStore
from shared.tasks import Point, validate_point

#: Worker processes ``taskiq worker`` forks unless told (``--workers``, default 2).
DEFAULT_PROCESSES = 2

PROFILES: dict[str, list[str]] = {
    "seed-defaults": [],
    "tuned": [
        # `taskiq worker --help`: "--workers: Number of worker child processes" (default 2). The
        # harness scales by starting worker CLIs, so one process each, as Celery's tuned `solo`
        # pool: no second process per CLI contending for the same cores.
        "--workers",
        "1",
        # taskiq-python.github.io/guide/cli.html, "Type casts": taskiq parses each task's
        # signature and casts every incoming argument with pydantic; "To disable this pass the
        # --no-parse option". The seed's arguments are JSON ints, checked by the tasks themselves.
        "--no-parse",
    ],
}
#: Messages ``submit_many`` has in flight at once (``kiq`` each, over the broker's connection pool).
SEND_WINDOW = 100


class TaskiqBackend:
    name = "taskiq"

    def __init__(self, settings: Settings, profile: str = "seed-defaults") -> None:
        from benchmarks import taskiq_app  # imported once REDIS_URL names the run's Redis

        self.app = taskiq_app
        self.settings = settings
        self.profile = profile
        self.extra_args = PROFILES[profile]
        self.processes = _processes(self.extra_args)
        self.store: ResultStore = taskiq_app.store
        self.queues = active_table().queues
        self._declare()
        atexit.register(self.delete_own_keys)

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return _loop().run_until_complete(coroutine)

    def _declare(self) -> None:
        """Create the streams' consumer groups now, as the brokers' own ``startup`` does, so no
        message sent before a worker's first read is skipped (a group created later starts at
        the stream's end, "$")."""
        for broker in (self.app.compute_broker, self.app.result_broker):
            self._run(broker.startup())

    def submit(self, x: int, y: int) -> None:
        self._run(self.app.compute.kiq(*validate_point(x, y)))

    def submit_many(self, points: Iterable[Point]) -> int:
        checked = [validate_point(x, y) for x, y in points]
        self._run(self._send(checked))
        return len(checked)

    async def _send(self, points: list[Point]) -> None:
        for start in range(0, len(points), SEND_WINDOW):
            window = points[start : start + SEND_WINDOW]
            await asyncio.gather(*(self.app.compute.kiq(x, y) for x, y in window))

    def _streams(self) -> list[str]:
        return [self.app.stream(q) for q in self.queues]

    def queue_depths(self) -> dict[str, int]:
        """Per queue, the messages no worker has read yet (the group's lag; the stream's length
        before any group exists)."""
        client = self.store.client
        depths = {}
        for queue, key in zip(self.queues, self._streams(), strict=True):
            if not client.exists(key):
                depths[queue] = 0
                continue
            groups = client.xinfo_groups(key)
            lag = groups[0].get("lag") if groups else None
            depths[queue] = int(client.xlen(key) if lag is None else lag)
        return depths

    def purge(self) -> None:
        """Drop the streams (messages, consumer groups, pending entries) and earlier workers'
        readiness, then declare the groups again."""
        self.store.client.delete(*self._streams(), self.app.READY_KEY)
        self._declare()

    def worker_command(self, queues: Sequence[str]) -> list[str]:
        if len(queues) != 1:
            raise ValueError(f"a taskiq worker serves one broker (one queue), got {list(queues)}")
        role = "compute" if self.app.stream(queues[0]) == self.app.compute_broker.queue_name else "result"
        return [
            stock_cli("taskiq"),
            "worker",
            f"benchmarks.taskiq_app:{role}_broker",
            "--log-level",
            "WARNING",
            *self.extra_args,
        ]

    def live_workers(self, since: float) -> int:
        """Worker CLIs all of whose worker processes said they were ready after ``since``."""
        members = cast(list[bytes], self.store.client.zrangebyscore(self.app.READY_KEY, since, "+inf"))
        per_cli: dict[bytes, int] = {}
        for member in members:
            cli = member.partition(b":")[0]
            per_cli[cli] = per_cli.get(cli, 0) + 1
        return sum(1 for ready in per_cli.values() if ready >= self.processes)

    def delete_own_keys(self) -> None:
        """This run's streams, readiness set and results, at exit: one try, no retries (the
        harness's private Redis is gone by then, and its keys with it)."""
        client = redis.Redis.from_url(
            self.settings.redis_url, socket_connect_timeout=1, socket_timeout=1, retry=Retry(NoBackoff(), 0)
        )
        keys = [*self._streams(), self.app.READY_KEY, self.store.results_key, self.store.deliveries_key]
        with contextlib.suppress(redis.RedisError):
            client.delete(*keys)
        client.close()


@functools.cache
def _loop() -> asyncio.AbstractEventLoop:
    """The submitter's event loop: one per process, as the brokers (and their connection pools,
    bound to the loop they first ran on) are one per process."""
    return asyncio.new_event_loop()


def _processes(args: list[str]) -> int:
    return int(args[args.index("--workers") + 1]) if "--workers" in args else DEFAULT_PROCESSES


def create(settings: Settings, profile: str = "seed-defaults") -> TaskiqBackend:
    return TaskiqBackend(settings, profile)
