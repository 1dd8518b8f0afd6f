"""Group commit: the acks and the sends of many worker threads in one Lua round trip.

Stock Dramatiq spends one round trip (one ``dispatch.lua`` call) per ack, and one per message an
actor sends; on the seed's pipeline those are 2 of the ~3 round trips a compute message costs, and
each costs a worker ~40 µs of Python plus a Lua call in Redis. Here a thread that acks hands its
ack, and every message its actor sent (``PipelineBroker.do_enqueue`` holds them back while the
actor runs), to ``GroupCommit.commit``. If no flush is in flight, that thread becomes the flusher:
it sends them at once (no added latency when idle), then, in one script call each time, whatever
other threads handed over meanwhile, until nothing is left. If a flush is in flight, the thread
leaves its items to the flusher and goes back to work without waiting (waiting there, then being
woken one after another, was half of the commit's cost). Either way a message's sends reach Redis
before (in the same atomic script as) its ack: a crash in between redelivers the message, it never
loses a result; an ack not yet written at a crash is a redelivery too. What must wait for Redis
does: the consumer forgets a message id (``on_written``) only once its ack is in Redis, so its
orphan check never requeues a message whose ack is on its way; a nack waits for its message's sends
(``wait``); a warm shutdown waits for every pending item (``flush``) before it gives back what is
left in the ack sets. A flush that fails is retried until it succeeds (after redis-py's own
retries), as Dramatiq retries a failed ack: nothing handed over is dropped. Except on a stop
(``shared.stopping``): then a flush that fails is abandoned, its waiters released, and its
messages stay unacked in this worker's ack set in Redis, for the dead-worker recovery to deliver
again (their results and sends are written by that delivery), so a worker stops in time whatever
Redis does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from shared import replication, stopping
from shared.direct import call_script
from shared.results import by_store
from shared.store import PUT_ROW_LUA, ScriptRow

if TYPE_CHECKING:
    from shared.results import Row as StoreRow
    from shared.results import Store

#: KEYS: namespace. ARGV: broker id, last wake index to keep, number of enqueues, number of
#: results, then (queue, redis id, data) per enqueue, (results key, deliveries key, field, value)
#: per result (ResultStore.put_many's HSETNX + HINCRBY), then (queue, redis id) per ack. Enqueues
#: are written per queue (one HSET, one RPUSH in order, one wake-up token per message up to what is
#: kept); no heartbeat here (fetches and the Heartbeat middleware keep it fresh).
COMMIT = (
    """
local ns = KEYS[1]
local broker_id = ARGV[1]
local keep = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local rows = tonumber(ARGV[4])
local i = 5
local queues = {}
for _ = 1, n do
    local queue = ns .. ":" .. ARGV[i]
    local q = queues[queue]
    if q == nil then
        q = {ids = {}, fields = {}}
        queues[queue] = q
    end
    q.ids[#q.ids + 1] = ARGV[i + 1]
    q.fields[#q.fields + 1] = ARGV[i + 1]
    q.fields[#q.fields + 1] = ARGV[i + 2]
    i = i + 3
end
local function call_in_slices(command, key, list)  -- unpack has a limit (a chunk may send 250)
    for j = 1, #list, 500 do
        redis.call(command, key, unpack(list, j, math.min(j + 499, #list)))
    end
end
for queue, q in pairs(queues) do
    call_in_slices("hset", queue .. ".msgs", q.fields)
    call_in_slices("rpush", queue, q.ids)
    local tokens = {}
    for t = 1, math.min(#q.ids, keep + 1) do
        tokens[t] = "1"
    end
    redis.call("lpush", queue .. ".wake", unpack(tokens))
    redis.call("ltrim", queue .. ".wake", 0, keep)
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

#: Seconds between attempts of a flush that failed (Dramatiq waits as long before retrying an ack).
RETRY_SECONDS = 5.0

logger = logging.getLogger(__name__)


class FlushAbandoned(Exception):
    """A flush that failed while the worker stops: not retried (``shared.stopping``)."""


def _retry_or_abandon(what: str) -> None:
    """After a failed write: wait ``RETRY_SECONDS`` (less if a stop comes meanwhile) and let the
    caller retry; raise FlushAbandoned instead if the worker is stopping."""
    if stopping.requested():
        logger.warning("%s failed while stopping: left for redelivery.", what)
        raise FlushAbandoned(what)
    logger.exception("%s failed; retrying in %s s.", what, RETRY_SECONDS)
    stopping.wait(RETRY_SECONDS)


#: (queue name, redis message id, encoded message)
Enqueue = tuple[str, str, bytes]
#: One result to store, as ``ResultStore.script_row`` gives it.
Row = ScriptRow
#: (queue name the message was fetched from, redis message id)
Ack = tuple[str, str]


def _store_elsewhere(boxes: list[Outbox]) -> None:
    """Write the boxes' rows for stores other than the broker's Redis: one ``put_many`` per store
    for the whole batch (a SQL store: one statement), retried until it goes through; a box's rows
    are dropped once written, so a retried ack never writes them twice."""
    for store, rows in by_store([write for box in boxes for write in box.stored]):
        while True:
            try:
                store.put_many(rows)
                break
            except Exception:  # the store has retried for its own budget already
                _retry_or_abandon(f"Storing {len(rows)} result(s) in {store.url}")
    for box in boxes:
        box.stored.clear()


class Outbox:
    """What an actor's message produced while it ran, written with the message's ack: messages it
    sent and results for the broker's Redis (same script), results for another store (``stored``:
    committed there first, the rows of every message of the batch in one write)."""

    __slots__ = ("enqueues", "rows", "stored")

    def __init__(self) -> None:
        self.enqueues: list[Enqueue] = []
        self.rows: list[Row] = []
        self.stored: list[tuple[Store, Sequence[StoreRow]]] = []

    def __bool__(self) -> bool:
        return bool(self.enqueues or self.rows or self.stored)


class _Ticket:
    __slots__ = ("acks", "on_written", "outbox", "written")

    def __init__(
        self, outbox: Outbox | None, acks: list[Ack], on_written: Callable[[], object] | None, wait: bool
    ) -> None:
        self.outbox = outbox
        self.acks = acks
        self.on_written = on_written
        self.written = threading.Event() if wait else None


class GroupCommit:
    """One per broker (process): every consumer and worker thread of the process commits here."""

    def __init__(self, broker: Any, wake_keep: int) -> None:
        self.script = broker.client.register_script(COMMIT)
        self.namespace = broker.namespace
        self.broker_id = broker.broker_id
        self.wake_keep = wake_keep
        #: Replicas that must hold a commit before it counts as written (``shared.replication``).
        self.replicas = replication.min_replicas()
        #: One flusher at a time, so one connection serves every flush; opened at the first flush
        #: (a worker starts while Redis is away).
        self._new_client = broker.dedicated_client
        self._client: Any = None
        self._pending: list[_Ticket] = []
        self._flushing = False
        self._lock = threading.Lock()

    def commit(
        self,
        outbox: Outbox | None,
        acks: list[Ack],
        on_written: Callable[[], object] | None = None,
        wait: bool = False,
    ) -> None:
        """Have ``outbox`` then ``acks`` written, and ``on_written`` called once they are in Redis.

        Returns at once if another thread is flushing (it writes them next), unless ``wait``.
        """
        ticket = _Ticket(outbox, acks, on_written, wait)
        with self._lock:
            self._pending.append(ticket)
            lead, self._flushing = not self._flushing, True
        if lead:
            self._flush_pending()
        elif ticket.written is not None:
            ticket.written.wait()

    def flush(self) -> None:
        """Return once everything handed over before this call is in Redis."""
        self.commit(None, [], wait=True)

    def _flush_pending(self) -> None:
        """As the flusher: write batches until none is left, then let the next commit flush."""
        while True:
            with self._lock:
                batch, self._pending = self._pending, []
                if not batch:
                    self._flushing = False
                    return
            try:
                self._write(batch)
            except FlushAbandoned:  # stopping: the acks stay in Redis; release whoever waits
                for t in batch:
                    if t.written is not None:
                        t.written.set()
                continue
            except BaseException:  # not a Redis error (those are retried): a thread being stopped
                with self._lock:
                    self._pending[:0] = batch  # the next commit's flusher writes them
                    self._flushing = False
                raise
            for t in batch:
                if t.on_written is not None:
                    t.on_written()
                if t.written is not None:
                    t.written.set()

    def _write(self, batch: list[_Ticket]) -> None:
        """Results for other stores first (committed before any of these acks), then one script
        call for the whole batch, each retried until it goes through."""
        args: list[Any] = [self.broker_id, self.wake_keep, 0, 0]
        boxes = [t.outbox for t in batch if t.outbox]
        _store_elsewhere(boxes)
        for box in boxes:
            for enqueue in box.enqueues:
                args.extend(enqueue)
            args[2] += len(box.enqueues)
        for box in boxes:
            for row in box.rows:
                args.extend(row)
            args[3] += len(box.rows)
        for t in batch:
            for ack in t.acks:
                args.extend(ack)
        while True:
            try:
                if self._client is None:
                    self._client = self._new_client()
                call_script(self._client, self.script, [self.namespace], args, replicas=self.replicas)
                return
            except Exception:  # redis-py has retried for its budget already
                _retry_or_abandon(f"Group commit of {len(batch)} message(s)")
