"""Group commit: the acks and the sends of many worker threads in one Lua round trip.

Stock Dramatiq spends one round trip (one ``dispatch.lua`` call) per ack, and one per message an
actor sends; on the seed's pipeline those are 2 of the ~3 round trips a compute message costs, and
each costs a worker ~40 µs of Python plus a Lua call in Redis. Here a thread that acks hands its
ack, and every message its actor sent (``PipelineBroker.do_enqueue`` holds them back while the
actor runs), to ``GroupCommit.commit``. If no flush is in flight it sends them at once (no added
latency when idle); if one is, it waits for it and the next flush sends everything queued
meanwhile, from every thread, in one script call. ``commit`` returns only once its items are in
Redis, so an ack is never reported before it happened, and a message's sends always reach Redis
before (in the same atomic script as) its ack: a crash in between redelivers the message, it
never loses a result.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from dramatiq.errors import ConnectionClosed

from shared.store import PUT_ROW_LUA, ScriptRow

#: KEYS: namespace. ARGV: broker id, timestamp, last wake index to keep, number of enqueues, number
#: of results, then (queue, redis id, data) per enqueue, (results key, deliveries key, field, value)
#: per result (ResultStore.put_many's HSETNX + HINCRBY), then (queue, redis id) per ack.
COMMIT = (
    """
local ns = KEYS[1]
local broker_id = ARGV[1]
redis.call("zadd", ns .. ":__heartbeats__", ARGV[2], broker_id)
local keep = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local rows = tonumber(ARGV[5])
local i = 6
for _ = 1, n do
    local queue = ns .. ":" .. ARGV[i]
    redis.call("hset", queue .. ".msgs", ARGV[i + 1], ARGV[i + 2])
    redis.call("rpush", queue, ARGV[i + 1])
    redis.call("lpush", queue .. ".wake", "1")
    redis.call("ltrim", queue .. ".wake", 0, keep)
    i = i + 3
end
for _ = 1, rows do
"""
    + PUT_ROW_LUA
    + """
    i = i + 4
end
local acks = ns .. ":__acks__." .. broker_id .. "."
while i < #ARGV do
    if redis.call("srem", acks .. ARGV[i], ARGV[i + 1]) > 0 then
        redis.call("hdel", ns .. ":" .. ARGV[i] .. ".msgs", ARGV[i + 1])
    end
    i = i + 2
end
"""
)

#: (queue name, redis message id, encoded message)
Enqueue = tuple[str, str, bytes]
#: One result to store, as ``ResultStore.script_row`` gives it.
Row = ScriptRow
#: (queue name the message was fetched from, redis message id)
Ack = tuple[str, str]


class Outbox:
    """What an actor's message produced while it ran, written with the message's ack."""

    __slots__ = ("enqueues", "rows")

    def __init__(self) -> None:
        self.enqueues: list[Enqueue] = []
        self.rows: list[Row] = []

    def __bool__(self) -> bool:
        return bool(self.enqueues or self.rows)


class _Ticket:
    __slots__ = ("acks", "done", "error", "outbox")

    def __init__(self, outbox: Outbox | None, acks: list[Ack]) -> None:
        self.outbox = outbox
        self.acks = acks
        self.done = False
        self.error: BaseException | None = None


class GroupCommit:
    """One per broker (process): every consumer and worker thread of the process commits here."""

    def __init__(self, broker: Any, wake_keep: int) -> None:
        self.script = broker.client.register_script(COMMIT)
        self.namespace = broker.namespace
        self.broker_id = broker.broker_id
        self.wake_keep = wake_keep
        #: Flushes run one at a time (``_flush_lock``), so one connection serves them all; opened
        #: at the first flush (a worker starts while Redis is away).
        self._new_client = broker.dedicated_client
        self._client: Any = None
        self._pending: list[_Ticket] = []
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()

    def commit(self, outbox: Outbox | None, acks: list[Ack]) -> None:
        """Write ``outbox`` then ``acks``; return once they are in Redis.

        Raises ConnectionClosed if Redis could not be reached: Dramatiq then retries the ack, and
        the message's sends with it (at worst written twice: the store dedups).
        """
        ticket = _Ticket(outbox, acks)
        with self._pending_lock:
            self._pending.append(ticket)
        with self._flush_lock:
            if not ticket.done:  # else a flush that ran while this thread waited took it
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                self._flush(batch)
        if isinstance(ticket.error, redis.RedisError):
            raise ConnectionClosed(ticket.error) from None
        if ticket.error is not None:
            raise RuntimeError("group commit failed") from ticket.error

    def _flush(self, batch: list[_Ticket]) -> None:
        """One script call for the whole batch; marks every ticket done, with the error if any."""
        args: list[Any] = [self.broker_id, int(time.time() * 1000), self.wake_keep, 0, 0]
        boxes = [t.outbox for t in batch if t.outbox]
        for box in boxes:
            for enqueue in box.enqueues:
                args.extend(enqueue)
            args[3] += len(box.enqueues)
        for box in boxes:
            for row in box.rows:
                args.extend(row)
            args[4] += len(box.rows)
        for t in batch:
            for ack in t.acks:
                args.extend(ack)
        error: BaseException | None = None
        try:
            if self._client is None:
                self._client = self._new_client()
            self.script(keys=[self.namespace], args=args, client=self._client)
        except Exception as exc:  # every ticket of the batch must learn it, not only this thread's
            error = exc
        for t in batch:
            t.error = error
            t.done = True
