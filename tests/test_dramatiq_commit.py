"""The Dramatiq group commit on a real Redis: many threads acking at once, each message's sends
written with its ack, and nothing reported written before it is in Redis."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

import redis

from dramatiq_impl import tasks
from dramatiq_impl.broker import build_broker
from dramatiq_impl.commit import Outbox
from shared.settings import Settings

MESSAGES = 400
THREADS = 8


def test_concurrent_acks_are_all_written_with_their_sends(settings: Settings, client: redis.Redis) -> None:
    broker = build_broker(settings)
    broker.enqueue_many(tasks.compute.message(i, i) for i in range(MESSAGES))
    consumer = broker.consume("compute", prefetch=MESSAGES, timeout=100)
    fetched: list[Any] = [next(consumer) for _ in range(MESSAGES)]
    acks_key = f"dramatiq:__acks__.{broker.broker_id}.compute"
    assert client.scard(acks_key) == MESSAGES

    written: list[str] = []
    early: list[str] = []  # ids reported written while their ack was still in Redis's ack set

    def on_written(redis_id: str) -> None:
        if client.sismember(acks_key, redis_id):
            early.append(redis_id)
        written.append(redis_id)

    start = threading.Barrier(THREADS)

    def ack_all(messages: list[Any]) -> None:
        start.wait()
        for message in messages:
            redis_id = message.options["redis_message_id"]
            box = Outbox()
            box.enqueues.append(("result", f"sent-by-{redis_id}", b"{}"))
            broker.group_commit.commit(box, [("compute", redis_id)], on_written=partial(on_written, redis_id))

    threads = [threading.Thread(target=ack_all, args=(fetched[i::THREADS],)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    broker.group_commit.flush()

    ids = {m.options["redis_message_id"] for m in fetched}
    assert sorted(written) == sorted(ids)
    assert early == []
    assert client.scard(acks_key) == 0
    assert client.hlen("dramatiq:compute.msgs") == 0
    sent = {i.decode() if isinstance(i, bytes) else i for i in client.lrange("dramatiq:result", 0, -1)}
    assert sent == {f"sent-by-{i}" for i in ids}


def test_a_batch_larger_than_luas_unpack_limit_is_written_in_order(
    settings: Settings, client: redis.Redis
) -> None:
    """A chunk whose points all fail sends one message per point; many such acks in one batch."""
    broker = build_broker(settings)
    box = Outbox()
    ids = [f"m{i:05d}" for i in range(12_000)]
    box.enqueues.extend(("compute", i, b"{}") for i in ids)
    broker.group_commit.commit(box, [])
    assert [
        i.decode() if isinstance(i, bytes) else i for i in client.lrange("dramatiq:compute", 0, -1)
    ] == ids
    assert client.hlen("dramatiq:compute.msgs") == len(ids)
    assert client.llen("dramatiq:compute.wake") == 16
