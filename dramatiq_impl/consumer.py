"""The Redis consumer of our Dramatiq path: the stock one, made safe against two things it misses.

1. Messages written straight into Redis by someone else: bytes that are not Dramatiq JSON go to
   the dead-letter queue with their reason (the stock consumer lets the DecodeError escape and
   the message comes back forever), and a message without the broker's ``redis_message_id`` gets
   it back, so it can be acked or dead-lettered like any other.
2. Idle polling: the stock consumer sleeps with a growing backoff (up to the worker timeout,
   1 s) when its queue is empty, so a message sent to an idle worker waits up to a second, and
   a busy consumer whose prefetch is full backs off the same way. This one blocks on the
   queue's wake-up list (``PipelineBroker.wake_key``), which every enqueue pushes to, with its
   next fetch sent in the same write (Redis runs it as soon as the BLPOP returns: one round trip
   per wake-up), and sends about one command per second while idle. A consumer with no room
   waits until acks free some (``_wait_for_room``), and holds no more CPU-bound work than its
   process can run (``dramatiq_impl.pacing``).
3. Messages orphaned in this process's ack set: a fetch moves ids into the ack set in Redis; if
   the reply is lost (Redis restarted, connection cut) or the consumer is replaced after a
   connection error, nobody in this process will ever process or ack them, and the stock
   broker gives them back only when this process dies. Every ``RECONCILE_SECONDS`` (and right
   after a connection error) ids in the ack set that this process does not hold are requeued.
"""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import Any

import redis
from dramatiq import Message
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import _RedisConsumer
from dramatiq.errors import ConnectionClosed, DecodeError

from dramatiq_impl.middleware import record_dead_letter_reason
from shared import stopping
from shared.direct import call_script

RECONCILE_SECONDS = 5.0
#: Most free prefetch slots a consumer waits for before it fetches (see ``min_fetch``).
MIN_FETCH = 8
#: Sweep this queue for dead workers' messages this often (Dramatiq's "maintenance").
MAINTENANCE_SECONDS = 1.0
#: Longest wait for room before the consumer returns to Dramatiq's loop (stop, delayed messages).
FULL_WAIT_SECONDS = 0.1


class PipelineConsumer(_RedisConsumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Shared by every consumer of this queue in the process: a replacement consumer must not
        # mistake the messages its predecessor handed out for orphans.
        self.held: set[str] = self.broker.held_ids.setdefault(self.queue_name, set())
        self.acks_key = f"{self.broker.namespace}:__acks__.{self.broker.broker_id}.{self.queue_name}"
        self.next_reconcile = time.monotonic() + RECONCILE_SECONDS
        self.next_maintenance = 0.0
        self.wake_key = self.broker.wake_key(self.queue_name)
        self.idle_seconds = self.timeout / 1000
        self.timeout = 0  # the stock backoff sleep; we wait on the wake-up list instead
        #: The last fetch found the queue empty: wait for a wake-up token before fetching again.
        self.drained = False
        #: Messages this consumer may hold now (``MessageCpu.window``), and how many must be free
        #: before it fetches: under load, waiting for a few acks turns one-message fetches into
        #: batches (half the window, at most ``MIN_FETCH``; 1 where actor priorities differ).
        self.window = 1
        self.min_fetch = 1
        #: Set by an ack that frees ``min_fetch`` slots while this consumer waits for room.
        self.room_freed = threading.Event()
        self.waiting_for_room = False
        #: This thread's own connection (``PipelineBroker.dedicated_client``), opened at first use.
        self.client: Any = None
        self.dispatch = self.broker.scripts["dispatch"]

    def __next__(self) -> Any:
        """Dramatiq's ``_RedisConsumer.__next__`` without its backoff sleeps, plus the three
        safeguards above, and no second fetch when the last one drained the queue."""
        while True:
            now = time.monotonic()
            if now >= self.next_maintenance:
                self.broker.request_maintenance()
                self.next_maintenance = now + MAINTENANCE_SECONDS
            if now >= self.next_reconcile:
                self.reconcile()
            if self.message_cache:
                data = self.message_cache.pop(0)
                if data is None:  # as the stock consumer: an id whose message is gone
                    continue
                try:
                    message = Message.decode(data)
                except DecodeError as exc:
                    self._dead_letter_undecodable(exc)
                    continue
                self.queued_message_ids.add(message.message_id)
                self._hold(message)  # on the message itself: MessageProxy forwards each attribute
                return MessageProxy(message)
            pacing = self.broker.message_cpu
            self.window = pacing.window(self.queue_name, self.prefetch)
            # Actors of several priorities: fetch whenever there is room, as stock (pacing.ordered).
            self.min_fetch = 1 if pacing.ordered else max(1, min(self.window // 2, MIN_FETCH))
            room = self.window - self.outstanding_message_count
            if room >= self.min_fetch and not self.drained:
                self.message_cache = self._fetch(room)
                # Fewer than asked: the queue was empty. Wait on the wake-up list (every enqueue
                # since then left a token) rather than spend a round trip on an empty fetch.
                self.drained = len(self.message_cache) < room
                if self.message_cache:
                    continue
            if room < self.min_fetch:
                self._wait_for_room()
                return None
            self._wait_then_fetch(room)
            if not self.message_cache:
                return None

    def _client(self) -> Any:
        if self.client is None:
            self.client = self.broker.dedicated_client()
        return self.client

    def close(self) -> None:
        if self.client is not None:
            self.client.close()  # gives the connection back to the broker's pool
            self.client = None

    def _hold(self, message: Message[Any]) -> None:
        options = message.options
        if "redis_message_id" not in options:
            marker = message.message_id.encode()
            found = [redis_id for redis_id, data in self._unacked() if marker in data]
            options["redis_message_id"] = found[0] if found else None
        if redis_id := options["redis_message_id"]:
            self.held.add(redis_id)

    def _wait_for_room(self) -> None:
        """Wait until acks free ``min_fetch`` slots (not on every ack: that fetched one message per
        round trip under load; nor polling every millisecond, as this used to: a thousand wake-ups
        a second per busy process)."""
        self.room_freed.clear()
        self.waiting_for_room = True
        if self.window - self.outstanding_message_count < self.min_fetch:  # no ack since the check
            self.room_freed.wait(FULL_WAIT_SECONDS)
        self.waiting_for_room = False

    def _wait_then_fetch(self, room: int) -> None:
        """The queue was drained: wait for a wake-up token (or ``idle_seconds``), then fetch.

        Both commands go in one write: Redis runs the fetch the moment the BLPOP returns, and both
        replies come back together, so a woken consumer spends one round trip, not two.
        """
        self.message_cache = self._fetch(room, first=("BLPOP", self.wake_key, self.idle_seconds))
        self.drained = len(self.message_cache) < room

    def _fetch(self, room: int, first: tuple[Any, ...] | None = None) -> Any:
        """Dramatiq's fetch (``dispatch.lua``: ids from the queue into this process's ack set, their
        data back) on this thread's own connection (``direct.call_script``)."""
        args = self.broker.dispatch_args("fetch", self.queue_name, room)
        try:
            return call_script(self._client(), self.dispatch, [self.broker.namespace], args, first)
        except Exception as exc:  # connection trouble (after retries), or Redis refusing the script
            self.next_reconcile = 0.0
            raise ConnectionClosed(exc) from None

    def ack(self, message: Any) -> None:
        """Hand what the message's actor held back (sends, results) and its ack to the group
        commit (one shared round trip) instead of one ``dispatch.lua`` call each. The id stays
        in ``held`` until the ack is in Redis (``reconcile`` must not take it for an orphan)."""
        redis_id = message.options.get("redis_message_id")
        acks = [(self.queue_name, redis_id)] if redis_id else []
        outbox = self.broker.take_outbox(redis_id)
        self.broker.group_commit.commit(outbox, acks, on_written=partial(self.held.discard, redis_id))
        self._release(message)

    def _release(self, message: Any) -> None:
        """From a worker thread: the message no longer counts; wake the consumer if it waits."""
        self.queued_message_ids.discard(message.message_id)
        if self.waiting_for_room and self.window - self.outstanding_message_count >= self.min_fetch:
            self.room_freed.set()

    def nack(self, message: Any) -> None:
        redis_id = message.options.get("redis_message_id")
        if outbox := self.broker.take_outbox(redis_id):  # what it sent before failing still goes out
            self.broker.group_commit.commit(outbox, [], wait=True)
        try:
            super().nack(message)
        except ConnectionClosed:
            if not stopping.requested():
                raise  # Dramatiq retries it
            # Stopping: left in the ack set, delivered again (and dead-lettered again) later.
            self.logger.warning("Could not dead-letter %s while stopping: left for redelivery.", redis_id)
        finally:
            self._release(message)
        self.held.discard(redis_id)

    def requeue(self, messages: Any) -> None:
        messages = list(messages)
        try:
            super().requeue(messages)
        except redis.RedisError:
            if not stopping.requested():
                raise
            # Stopping (Worker.stop gives back what it prefetched): left in the ack set instead.
            self.logger.warning("Could not give back %d message(s) while stopping.", len(messages))
            return
        for message in messages:
            self.held.discard(message.options.get("redis_message_id"))

    def reconcile(self) -> None:
        """Requeue ids in this process's ack set that it neither holds nor has in its cache."""
        self.next_reconcile = time.monotonic() + RECONCILE_SECONDS
        try:
            in_redis = {i.decode() for i in self.broker.client.smembers(self.acks_key)}
        except Exception:  # Redis away: the next call retries
            return
        cached = set()
        for data in self.message_cache:
            try:
                cached.add(Message.decode(data).options.get("redis_message_id"))
            except Exception:
                continue
        orphans = in_redis - self.held - cached
        if orphans:
            self.logger.warning("Requeueing %d orphaned message(s) on %r.", len(orphans), self.queue_name)
            self.broker.do_requeue(self.queue_name, *orphans)

    def _dead_letter_undecodable(self, exc: DecodeError) -> None:
        for redis_id, data in self._unacked():
            if data == exc.data:
                self.logger.error("Dead-lettering undecodable message %s on %r.", redis_id, self.queue_name)
                self.broker.do_nack(self.queue_name, redis_id)
                reason = f"DecodeError: {exc.error!r:.200}"
                record_dead_letter_reason(self.broker, self.queue_name, redis_id, reason)
                return

    def _unacked(self) -> list[tuple[str, bytes]]:
        """(redis id, data) of the messages this process fetched and has not acked yet."""
        ids = list(self.broker.client.smembers(self.acks_key))
        datas = (
            self.broker.client.hmget(f"{self.broker.namespace}:{self.queue_name}.msgs", ids) if ids else []
        )
        return [(i.decode(), d) for i, d in zip(ids, datas, strict=True) if d is not None]
