"""The ``redis-limit`` probe: the seed's two stages on raw Redis lists, no framework and no acks.

Each worker pops up to ``BATCH`` messages in one ``BLMPOP``, computes them, and pushes (compute
stage) or stores (result stage, ``ResultStore.put_many``) the whole batch in one round trip. It is the
ceiling for Python + Redis on this machine: every framework row reads as a fraction of it. It gives
up what the frameworks pay for (a worker killed mid-batch loses the batch), so it is a yardstick,
never a design to ship.

Workers: ``python -m benchmarks.redis_limit worker compute`` (or ``result``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from itertools import islice
from types import FrameType

import redis

from shared.connection import connect
from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK, active_table
from shared.settings import Settings
from shared.store import ResultStore
from shared.tasks import Point, compute, validate_point, validate_result

NAME = "redis-limit"
NAMESPACE = f"pipeline:{NAME}"
READY_KEY = f"{NAMESPACE}:ready"
#: Messages per pop and per pipelined write.
BATCH = 500
#: Seconds a worker blocks on an empty queue before checking whether it was asked to stop.
POLL = 0.2


def queue_key(queue: str) -> str:
    return f"{NAMESPACE}:queue:{queue}"


class RedisLimitBackend:
    name = NAME

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = connect(settings)
        self.store = ResultStore(self.client, self.name)
        routing = active_table()
        self.queues = routing.queues
        self.compute_key = queue_key(routing.queue_for(COMPUTE_TASK))

    def submit(self, x: int, y: int) -> None:
        self.client.rpush(self.compute_key, json.dumps(validate_point(x, y)))

    def submit_many(self, points: Iterable[Point]) -> int:
        checked = [validate_point(x, y) for x, y in points]
        it = iter(checked)
        pipe = self.client.pipeline(transaction=False)
        while batch := list(islice(it, 1000)):
            pipe.rpush(self.compute_key, *(json.dumps(p) for p in batch))
        pipe.execute()
        return len(checked)

    def queue_depths(self) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for queue in self.queues:
            pipe.llen(queue_key(queue))
        return dict(zip(self.queues, pipe.execute(), strict=True))

    def purge(self) -> None:
        self.client.delete(*(queue_key(q) for q in self.queues), READY_KEY)

    def worker_command(self, queues: Sequence[str]) -> list[str]:
        if len(queues) != 1:
            raise ValueError(f"a redis-limit worker serves exactly one queue, got {list(queues)}")
        return [sys.executable, "-m", "benchmarks.redis_limit", "worker", queues[0]]

    def live_workers(self, since: float) -> int:
        return int(self.client.zcount(READY_KEY, since, "+inf"))


def create(settings: Settings) -> RedisLimitBackend:
    return RedisLimitBackend(settings)


class _Stop:
    """Set by SIGTERM/SIGINT; the loop finishes its batch and exits (as the CLIs' warm shutdown)."""

    requested = False

    @classmethod
    def handle(cls, signum: int, frame: FrameType | None) -> None:
        cls.requested = True


def _compute_batch(client: redis.Redis, items: list[bytes], result_key: str) -> None:
    out = []
    for item in items:
        x, y = validate_point(*json.loads(item))
        out.append(json.dumps([x, y, compute(x, y)]))
    client.rpush(result_key, *out)


def _store_batch(store: ResultStore, items: list[bytes]) -> None:
    store.put_many(validate_result(*json.loads(item)) for item in items)


def run_worker(queue: str) -> None:
    """Serve one queue until SIGTERM: the compute queue feeds the result queue, which feeds the store."""
    routing = active_table()
    if queue not in (routing.queue_for(COMPUTE_TASK), routing.queue_for(HANDLE_RESULT_TASK)):
        raise SystemExit(f"unknown queue {queue!r}: expected the compute or the result queue")
    signal.signal(signal.SIGTERM, _Stop.handle)
    signal.signal(signal.SIGINT, _Stop.handle)
    client = connect(Settings.from_env())
    store = ResultStore(client, NAME)
    source, result_key = queue_key(queue), queue_key(routing.queue_for(HANDLE_RESULT_TASK))
    is_compute = queue == routing.queue_for(COMPUTE_TASK)
    client.zadd(READY_KEY, {f"{queue}-{os.getpid()}-{uuid.uuid4().hex[:6]}": time.time()})
    while not _Stop.requested:
        popped = client.blmpop(POLL, 1, source, direction="LEFT", count=BATCH)
        if not popped:
            continue
        items: list[bytes] = popped[1]  # type: ignore[assignment]
        if is_compute:
            _compute_batch(client, items, result_key)
        else:
            _store_batch(store, items)


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] != "worker":
        raise SystemExit("usage: python -m benchmarks.redis_limit worker compute|result")
    run_worker(argv[1])


if __name__ == "__main__":
    main(sys.argv[1:])
