"""The ``redis-limit`` probes: the seed's two stages on raw Redis lists, no framework and no acks.

Two probes, one per mode, so every row is read against the ceiling of its own mode:

``redis-limit probe`` (per message, one point per message): each worker pops up to ``BATCH``
messages in one ``BLMPOP``, computes them, and pushes (compute stage) or stores (result stage) the
whole batch in one round trip.

``redis-limit chunked`` (``DEFAULT_CHUNK_SIZE`` points per message, as the chunked stacks): the
submitter sends chunks of K points; a compute worker pops one chunk at a time (so the workers share
a short grid, and a CPU-bound one), computes it and pushes one message of K rows; the result worker
pops every result message waiting (up to ``BATCH``) and stores all their rows in one round trip.

Both store through ``store_rows``: the same writes as every stack (``HSETNX`` the result, ``HINCRBY``
its delivery count, per point, into the same ``ResultStore`` hashes) in one Lua call, the cheapest
way Redis takes them (a ``MULTI`` of two commands per point costs ~5x its CPU in the client). They
are the ceiling for Python + Redis on this machine: every row reads as a fraction of its mode's
probe. They give up what the frameworks pay for (a worker killed mid-batch loses the batch), so
they are yardsticks, never designs to ship.

Workers: ``python -m benchmarks.redis_limit worker compute|result [--chunked]``.
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
from redis.commands.core import Script

from shared.chunks import DEFAULT_CHUNK_SIZE
from shared.connection import connect
from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK, active_table
from shared.settings import Settings
from shared.store import ResultStore
from shared.tasks import ARG_MAX, ARG_MIN, Point, compute, validate_point, validate_result

NAME = "redis-limit"
CHUNKED_NAME = "redis-limit-chunked"
#: Messages per pop and per pipelined write.
BATCH = 500
#: Seconds a worker blocks on an empty queue before checking whether it was asked to stop.
POLL = 0.2
#: Every row's two writes, as ``ResultStore.put_many`` makes them; ARGV: field, value, field, value…
STORE_ROWS_LUA = """
for i = 1, #ARGV, 2 do
    redis.call("hsetnx", KEYS[1], ARGV[i], ARGV[i + 1])
    redis.call("hincrby", KEYS[2], ARGV[i], 1)
end
"""
Row = tuple[int, int, int]


def _namespace(chunked: bool) -> str:
    return f"pipeline:{CHUNKED_NAME if chunked else NAME}"


def queue_key(queue: str, chunked: bool = False) -> str:
    return f"{_namespace(chunked)}:queue:{queue}"


def ready_key(chunked: bool = False) -> str:
    return f"{_namespace(chunked)}:ready"


def _checked(points: Iterable[Point]) -> list[Point]:
    """``validate_point`` of every point, with its checks inline (an int, not a bool, in range):
    the chunked probe's submit must not be slower than a framework's validation in Rust."""
    checked = list(points)
    for x, y in checked:
        if not (type(x) is int and type(y) is int and ARG_MIN <= x <= ARG_MAX and ARG_MIN <= y <= ARG_MAX):
            validate_point(x, y)  # raises, naming the argument
    return checked


def store_rows(script: Script, store: ResultStore, rows: Sequence[Row]) -> None:
    """Store ``rows`` as ``ResultStore.put_many`` does, in one script call (``script``:
    ``STORE_ROWS_LUA`` registered on the store's client)."""
    args: list[str | int] = []
    for x, y, result in rows:
        args += (f"{x},{y}", result)
    script(keys=[store.results_key, store.deliveries_key], args=args)


class RedisLimitBackend:
    """Submit and watch a probe; ``chunk``: points per message (None: the per-message probe)."""

    def __init__(self, settings: Settings, chunk: int | None = None) -> None:
        self.settings = settings
        self.chunk = chunk
        self.chunked = chunk is not None
        self.name = CHUNKED_NAME if self.chunked else NAME
        self.client = connect(settings)
        self.store = ResultStore(self.client, self.name)
        routing = active_table()
        self.queues = routing.queues
        self.compute_key = queue_key(routing.queue_for(COMPUTE_TASK), self.chunked)

    def submit(self, x: int, y: int) -> None:
        point = validate_point(x, y)
        self.client.rpush(self.compute_key, json.dumps([point] if self.chunked else point))

    def submit_many(self, points: Iterable[Point]) -> int:
        if self.chunk is None:
            checked = [validate_point(x, y) for x, y in points]
            messages = [json.dumps(p) for p in checked]
        else:
            checked = _checked(points)
            messages = [json.dumps(checked[i : i + self.chunk]) for i in range(0, len(checked), self.chunk)]
        it = iter(messages)
        pipe = self.client.pipeline(transaction=False)
        while batch := list(islice(it, 1000)):
            pipe.rpush(self.compute_key, *batch)
        pipe.execute()
        return len(checked)

    def queue_depths(self) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for queue in self.queues:
            pipe.llen(queue_key(queue, self.chunked))
        return dict(zip(self.queues, pipe.execute(), strict=True))

    def purge(self) -> None:
        self.client.delete(*(queue_key(q, self.chunked) for q in self.queues), ready_key(self.chunked))

    def worker_command(self, queues: Sequence[str]) -> list[str]:
        if len(queues) != 1:
            raise ValueError(f"a redis-limit worker serves exactly one queue, got {list(queues)}")
        mode = ["--chunked"] if self.chunked else []
        return [sys.executable, "-m", "benchmarks.redis_limit", "worker", queues[0], *mode]

    def live_workers(self, since: float) -> int:
        return int(self.client.zcount(ready_key(self.chunked), since, "+inf"))


def create(settings: Settings) -> RedisLimitBackend:
    return RedisLimitBackend(settings)


def create_chunked(settings: Settings) -> RedisLimitBackend:
    """The chunked probe, with the chunked stacks' K (``DEFAULT_CHUNK_SIZE``)."""
    return RedisLimitBackend(settings, DEFAULT_CHUNK_SIZE)


class _Stop:
    """Set by SIGTERM/SIGINT; the loop finishes its batch and exits (as the CLIs' warm shutdown)."""

    requested = False

    @classmethod
    def handle(cls, signum: int, frame: FrameType | None) -> None:
        cls.requested = True


def _compute_points(client: redis.Redis, items: list[bytes], result_key: str) -> None:
    out = []
    for item in items:
        x, y = validate_point(*json.loads(item))
        out.append(json.dumps([x, y, compute(x, y)]))
    client.rpush(result_key, *out)


def _compute_chunks(client: redis.Redis, items: list[bytes], result_key: str) -> None:
    out = [json.dumps([[x, y, compute(x, y)] for x, y in _checked(json.loads(item))]) for item in items]
    client.rpush(result_key, *out)


def _store_points(script: Script, store: ResultStore, items: list[bytes]) -> None:
    store_rows(script, store, [validate_result(*json.loads(item)) for item in items])


def _store_chunks(script: Script, store: ResultStore, items: list[bytes]) -> None:
    rows = [row for item in items for row in json.loads(item)]
    for x, y, result in rows:
        if not (type(x) is int and type(y) is int and type(result) is int):
            validate_result(x, y, result)  # raises, naming the argument
    store_rows(script, store, rows)


def run_worker(queue: str, chunked: bool = False) -> None:
    """Serve one queue until SIGTERM: the compute queue feeds the result queue, which feeds the store."""
    routing = active_table()
    compute_queue, result_queue = routing.queue_for(COMPUTE_TASK), routing.queue_for(HANDLE_RESULT_TASK)
    if queue not in (compute_queue, result_queue):
        raise SystemExit(f"unknown queue {queue!r}: expected the compute or the result queue")
    signal.signal(signal.SIGTERM, _Stop.handle)
    signal.signal(signal.SIGINT, _Stop.handle)
    client = connect(Settings.from_env())
    store = ResultStore(client, CHUNKED_NAME if chunked else NAME)
    script = client.register_script(STORE_ROWS_LUA)
    source, result_key = queue_key(queue, chunked), queue_key(result_queue, chunked)
    is_compute = queue == compute_queue
    # A chunked compute worker takes one chunk at a time: K points are plenty per pop, and the
    # other workers get the rest of a short grid.
    count = 1 if chunked and is_compute else BATCH
    client.zadd(ready_key(chunked), {f"{queue}-{os.getpid()}-{uuid.uuid4().hex[:6]}": time.time()})
    while not _Stop.requested:
        popped = client.blmpop(POLL, 1, source, direction="LEFT", count=count)
        if not popped:
            continue
        items: list[bytes] = popped[1]  # type: ignore[assignment]
        if is_compute:
            (_compute_chunks if chunked else _compute_points)(client, items, result_key)
        else:
            (_store_chunks if chunked else _store_points)(script, store, items)


def main(argv: list[str]) -> None:
    args = [a for a in argv if a != "--chunked"]
    if len(args) != 2 or args[0] != "worker":
        raise SystemExit("usage: python -m benchmarks.redis_limit worker compute|result [--chunked]")
    run_worker(args[1], chunked="--chunked" in argv)


if __name__ == "__main__":
    main(sys.argv[1:])
