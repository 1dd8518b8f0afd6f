"""The ops view over Dramatiq's own Redis keys (namespace ``dramatiq``), per queue ``q``:

``q`` list of waiting ids and ``q.msgs`` their bodies; ``q.DQ`` (+``.msgs``) delayed messages;
``q.XQ`` zset + ``q.XQ.msgs`` the dead letters (+ our ``q.XQ.reasons``); ``__acks__.<broker>.q``
what each worker process fetched and has not acked; ``__heartbeats__`` broker id -> ms.
Requeue and purge are Lua scripts, so no message is ever half moved.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dramatiq import Message
from dramatiq.common import q_name

from dramatiq_impl.middleware import dead_letter_reasons_key
from dramatiq_impl.presence import index_key, info_key
from shared.ops import QueueStatus, Status, WorkerStatus

if TYPE_CHECKING:
    from dramatiq_impl.backend import DramatiqBackend

# KEYS: xq, xq.msgs, xq.reasons, q.msgs, q    ARGV: id, body to enqueue ("" = the stored one)
_REQUEUE = """
if redis.call("zrem", KEYS[1], ARGV[1]) == 0 then return 0 end
local body = ARGV[2]
if body == "" then body = redis.call("hget", KEYS[2], ARGV[1]) end
redis.call("hdel", KEYS[2], ARGV[1])
redis.call("hdel", KEYS[3], ARGV[1])
if not body then return 0 end
redis.call("hset", KEYS[4], ARGV[1], body)
redis.call("rpush", KEYS[5], ARGV[1])
return 1
"""

# KEYS: list, its msgs hash. Drops the waiting ids and their bodies; bodies of fetched
# (in-flight) messages stay, so their workers can still ack them.
_PURGE_WAITING = """
local ids = redis.call("lrange", KEYS[1], 0, -1)
redis.call("del", KEYS[1])
for i = 1, #ids, 1000 do
    redis.call("hdel", KEYS[2], unpack(ids, i, math.min(i + 999, #ids)))
end
return #ids
"""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def status(backend: DramatiqBackend) -> Status:
    """One MULTI snapshot of every queue; workers from the presence entries (see ``presence``)."""
    broker = backend.broker
    client, ns = broker.client, broker.namespace
    # Every broker id that may still hold acks: dead ones stay here until maintenance reclaims.
    broker_ids = [_text(b) for b in client.zrange(f"{ns}:__heartbeats__", 0, -1)]
    pipe = client.pipeline(transaction=True)
    for q in backend.queues:
        pipe.llen(f"{ns}:{q}")
        pipe.llen(f"{ns}:{q}.DQ")
        pipe.zcard(f"{ns}:{q}.XQ")
        for b in broker_ids:
            pipe.scard(f"{ns}:__acks__.{b}.{q}")
            pipe.scard(f"{ns}:__acks__.{b}.{q}.DQ")  # delayed, held by a worker until due
    pipe.hlen(backend.store.results_key)
    replies = iter(pipe.execute())
    queues = []
    for q in backend.queues:
        depth, delayed, dead = next(replies), next(replies), next(replies)
        in_flight = 0
        for _ in broker_ids:
            in_flight += next(replies)
            delayed += next(replies)
        queues.append(QueueStatus(q, depth, in_flight, dead, delayed))
    stored = int(next(replies))
    return Status(backend.name, backend.settings.redacted_url, queues, _workers(backend), stored)


def _workers(backend: DramatiqBackend) -> list[WorkerStatus]:
    broker = backend.broker
    client, ns = broker.client, broker.namespace
    rows: list[Any] = client.zrange(index_key(ns), 0, -1, withscores=True)
    seen = {_text(b): float(s) for b, s in rows}
    if not seen:
        return []
    ids = sorted(seen)
    infos = client.mget([info_key(ns, b) for b in ids])
    beats = client.zmscore(f"{ns}:__heartbeats__", ids)
    workers = []
    for broker_id, raw, beat in zip(ids, infos, beats, strict=True):
        if raw is None:  # expired: the process is gone
            continue
        info: dict[str, Any] = json.loads(raw)
        last = max(seen[broker_id], beat / 1000 if beat else 0.0)
        workers.append(
            WorkerStatus(
                name=broker_id,
                host=str(info.get("host", "")),
                pid=info.get("pid"),
                queues=list(info.get("queues", [])),
                last_seen=last,
                address=str(info.get("address", "")),
            )
        )
    return workers


def _runnable(body: bytes) -> bytes:
    """The body as a message due now on its canonical queue: a dead letter that was delayed keeps
    its ``eta`` (a worker would hold it until then) and may name ``q.DQ`` (acked on the wrong queue).
    Undecodable bodies move unchanged (the consumer dead-letters them again, with their reason)."""
    try:
        message = Message.decode(body)
    except Exception:
        return body
    if message.queue_name == q_name(message.queue_name) and "eta" not in message.options:
        return body
    options = {k: v for k, v in message.options.items() if k != "eta"}
    # Not Message.copy: it merges options, and the eta must go.
    fixed: bytes = dataclasses.replace(
        message, queue_name=q_name(message.queue_name), options=options
    ).encode()
    return fixed


def requeue(backend: DramatiqBackend, ids: Sequence[str] | None = None) -> list[str]:
    """Move dead letters (``ids``, or all) back to the end of their queue; returns the ids moved.
    A requeued message gets one more attempt: its retry count is not reset."""
    broker = backend.broker
    client, ns = broker.client, broker.namespace
    script = client.register_script(_REQUEUE)
    wanted = None if ids is None else set(ids)
    moved: list[str] = []
    for q in backend.queues:
        xq = f"{ns}:{q}.XQ"
        members = [_text(m) for m in client.zrange(xq, 0, -1)]
        for redis_id in members if wanted is None else [m for m in members if m in wanted]:
            body: Any = client.hget(f"{xq}.msgs", redis_id)
            keys = [xq, f"{xq}.msgs", dead_letter_reasons_key(ns, q), f"{ns}:{q}.msgs", f"{ns}:{q}"]
            if script(keys=keys, args=[redis_id, _runnable(body) if body else b""]):
                moved.append(redis_id)
    return moved


def purge(
    backend: DramatiqBackend, queues: Sequence[str] | None = None, dead: bool = False
) -> dict[str, int]:
    """Drop waiting and delayed messages (and with ``dead`` the dead letters) of ``queues``."""
    broker = backend.broker
    client, ns = broker.client, broker.namespace
    script = client.register_script(_PURGE_WAITING)
    dropped = {}
    for q in queues or backend.queues:
        count = 0
        for name in (f"{ns}:{q}", f"{ns}:{q}.DQ"):
            count += int(script(keys=[name, f"{name}.msgs"]))
        if dead:
            pipe = client.pipeline(transaction=True)
            pipe.zcard(f"{ns}:{q}.XQ")
            pipe.delete(f"{ns}:{q}.XQ", f"{ns}:{q}.XQ.msgs", dead_letter_reasons_key(ns, q))
            count += int(pipe.execute()[0])
        dropped[q] = count
    return dropped
