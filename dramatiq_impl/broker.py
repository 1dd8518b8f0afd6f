"""The Redis broker for the pipeline: Dramatiq's own, tuned to recover fast and to dead-letter any bytes."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import dramatiq
import redis
from dramatiq.brokers.redis import MAINTENANCE_COMMAND_BLACKLIST, RedisBroker, _RedisConsumer
from dramatiq.message import get_encoder
from dramatiq.middleware import Middleware, MiddlewareError, default_middleware
from dramatiq.results import Results

from dramatiq_impl.commit import GroupCommit, Outbox
from dramatiq_impl.consumer import PipelineConsumer
from dramatiq_impl.middleware import (
    CaptureSends,
    DeadLetterReasons,
    Heartbeat,
    RequeueOnShutdown,
    ValidateArguments,
)
from dramatiq_impl.pacing import MessageCpu
from dramatiq_impl.presence import WorkerPresence
from dramatiq_impl.sends import flush_before_get_result
from shared import replication
from shared.connection import connect
from shared.sentinel import client_from_url, is_sentinel_url
from shared.settings import Settings
from shared.store import ScriptRow

if TYPE_CHECKING:
    from shared.results import Row as StoreRow
    from shared.results import Store

#: A worker silent this long is dead and its unacked messages go back to their queue.
HEARTBEAT_TIMEOUT_MS = 10_000
#: Wake-up tokens kept per queue: enough for every idle consumer, bounded when all are busy.
WAKE_TOKENS = 16
#: Messages in ``enqueue_many``'s first round trip.
FIRST_BATCH = 100

#: Dramatiq's enqueue (data into ``<queue>.msgs``, id onto the queue) plus wake-up tokens, for one
#: message or a batch of one queue's messages. KEYS: queue, queue.msgs, queue.wake; ARGV: last
#: wake index to keep, then redis id, data per message. One token per message, up to what is kept.
ENQUEUE_AND_WAKE = """
local keep = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
    redis.call("hset", KEYS[2], ARGV[i], ARGV[i + 1])
    redis.call("rpush", KEYS[1], ARGV[i])
end
for _ = 1, math.min((#ARGV - 1) / 2, keep + 1) do
    redis.call("lpush", KEYS[3], "1")
end
redis.call("ltrim", KEYS[3], 0, keep)
"""


class PipelineBroker(RedisBroker):
    """Dramatiq's RedisBroker, tuned so a dead worker's messages come back in seconds.

    Stock Dramatiq declares a worker dead after 60 s without a heartbeat and reclaims its
    messages only in "maintenance", run on 0.1 % of broker calls (so minutes apart when idle).
    Here a worker is dead after ``HEARTBEAT_TIMEOUT_MS``, and each consumer asks for maintenance
    of its own queue every ``consumer.MAINTENANCE_SECONDS`` (``request_maintenance``): its next broker
    call on that thread runs it, so every consumed queue is swept, idle or busy. The ``Heartbeat``
    middleware keeps a live worker's heartbeat fresh even while all its threads are busy, so the
    short timeout never reclaims messages from a worker that is merely slow.
    """

    _hooks: dict[str, tuple[Callable[..., Any], ...]]

    def __init__(self, **kwargs: Any) -> None:
        self._hooks = {}
        super().__init__(**kwargs)
        #: queue -> redis ids this process has handed to its workers and not yet acked.
        self.held_ids: dict[str, set[str]] = {}
        self.enqueue_script = self.client.register_script(ENQUEUE_AND_WAKE)
        self._maintenance = threading.local()
        self.group_commit = GroupCommit(self, WAKE_TOKENS - 1)
        #: redis id of a message being processed -> what its actor sent or stored, not yet written.
        self.outboxes: dict[str, Outbox] = {}
        self._capture = threading.local()
        #: What a message costs its worker thread, per queue: how much a consumer may hold.
        self.message_cpu = MessageCpu()
        self.add_middleware(self.message_cpu)

    def begin_capture(self, redis_message_id: str | None) -> None:
        """Hold back what this thread sends until the message it processes is acked (same round trip)."""
        box: Outbox | None = None
        if redis_message_id is not None:
            box = self.outboxes[redis_message_id] = Outbox()
        self._capture.box = box

    def end_capture(self) -> None:
        self._capture.box = None

    def take_outbox(self, redis_message_id: str | None) -> Outbox | None:
        """What was held back for a message; its consumer writes it with (before) its ack."""
        return self.outboxes.pop(redis_message_id, None) if redis_message_id is not None else None

    def flush_sends(self) -> int:
        """From an actor: write the messages it has sent so far now, in order, rather than with its
        ack (``dramatiq_impl.sends``); how many. Returns once they are in Redis."""
        box: Outbox | None = getattr(self._capture, "box", None)
        if box is None or not box.enqueues:
            return 0
        now = Outbox()
        now.enqueues, box.enqueues = box.enqueues, []
        written: list[bool] = []
        self.group_commit.commit(now, [], on_written=partial(written.append, True), wait=True)
        if not written:  # abandoned while the worker stops: they go with the ack (or its redelivery)
            box.enqueues[:0] = now.enqueues
            return 0
        return len(now.enqueues)

    def defer_store(self, store: Store, rows: Sequence[StoreRow]) -> bool:
        """From an actor: have ``rows`` written to ``store`` before its message's ack (with the rows
        of every message acked meanwhile), True; else False."""
        box: Outbox | None = getattr(self._capture, "box", None)
        if box is None:
            return False
        box.stored.append((store, rows))
        return True

    def defer_rows(self, rows: Iterable[ScriptRow]) -> bool:
        """From an actor: write ``PUT_ROW_LUA`` rows with its message's ack, True; else False."""
        box: Outbox | None = getattr(self._capture, "box", None)
        if box is None:
            return False
        box.rows.extend(rows)
        return True

    def add_middleware(self, middleware: Middleware, **kwargs: Any) -> None:
        """As Broker.add_middleware; a Results middleware's backend writes what the calling actor
        holds back before it looks for a result (``dramatiq_impl.sends``)."""
        super().add_middleware(middleware, **kwargs)
        self._hooks = {}
        if isinstance(middleware, Results):
            flush_before_get_result(self, middleware.backend)

    def _hooks_for(self, signal: str) -> tuple[Callable[..., Any], ...]:
        """Bound hooks of the middleware that override ``signal`` (most are Middleware's no-ops)."""
        hooks = self._hooks.get(signal)
        if hooks is None:
            default = getattr(Middleware, signal, None)
            chain = self.middleware if signal.startswith("before_") else reversed(self.middleware)
            hooks = tuple(getattr(m, signal) for m in chain if getattr(type(m), signal, None) is not default)
            self._hooks[signal] = hooks
        return hooks

    def emit_before(self, signal: str, *args: Any, **kwargs: Any) -> None:
        """As Broker.emit_before, calling only the middleware that handle the signal: the stock
        loop calls every middleware's hook, ~12 no-op calls per signal, several signals per message."""
        for hook in self._hooks_for("before_" + signal):
            try:
                hook(self, *args, **kwargs)
            except MiddlewareError:
                raise
            except Exception:
                self.logger.critical("Unexpected failure in before_%s of %r.", signal, hook, exc_info=True)

    def emit_after(self, signal: str, *args: Any, **kwargs: Any) -> None:
        """As Broker.emit_after (reverse order), calling only the middleware that handle the signal."""
        for hook in self._hooks_for("after_" + signal):
            try:
                hook(self, *args, **kwargs)
            except Exception:
                self.logger.critical("Unexpected failure in after_%s of %r.", signal, hook, exc_info=True)

    def dedicated_client(self) -> redis.Redis:
        """A client that keeps one connection of the broker's pool for itself, for one thread's hot
        path (a consumer's fetches and waits, the group commit's flushes). Checking a connection out
        of the pool and back costs ~30 µs of CPU per command here (redis-py's health and observability
        checks), about half of a script call's client-side cost; same retries and timeouts."""
        return redis.Redis(connection_pool=self.client.connection_pool, single_connection_client=True)

    def dispatch_args(self, command: str, queue_name: str, *args: Any) -> list[Any]:
        """ARGV of Dramatiq's ``dispatch.lua`` for ``command`` (as ``RedisBroker._dispatch`` builds it)."""
        return [
            command,
            int(time.time() * 1000),
            queue_name,
            self.broker_id,
            self.heartbeat_timeout,
            self.dead_message_ttl,
            self._should_do_maintenance(command),
            self._max_unpack_size(),
            *args,
        ]

    def request_maintenance(self) -> None:
        """Run Dramatiq's maintenance (reclaim dead workers' messages) on this thread's next call."""
        self._maintenance.due = True

    def wake_key(self, queue_name: str) -> str:
        """A short list every enqueue pushes to; idle consumers of the queue block on it."""
        return f"{self.namespace}:{queue_name}.wake"

    def enqueue(self, message: dramatiq.Message, *, delay: int | None = None) -> dramatiq.Message:
        """As ``RedisBroker.enqueue``; an undelayed message is copied with its redis id by its
        constructor rather than ``Message.copy`` (``dataclasses.replace``), and encoded from that
        dict: ~10 µs less per message, a twentieth of what a compute message costs its worker."""
        if delay is not None:
            return super().enqueue(message, delay=delay)
        redis_id = str(uuid4())  # the message's own id is reused by retries; this one is unique
        fields: dict[str, Any] = {
            "queue_name": message.queue_name,
            "actor_name": message.actor_name,
            "args": message.args,
            "kwargs": message.kwargs,
            "options": {**message.options, "redis_message_id": redis_id},
            "message_id": message.message_id,
            "message_timestamp": message.message_timestamp,
        }
        message = dramatiq.Message(**fields)
        self.emit_before("enqueue", message, None)
        self.do_enqueue(message.queue_name, redis_id, get_encoder().encode(fields))
        self.emit_after("enqueue", message, None)
        return message

    def do_enqueue(self, queue_name: str, redis_message_id: str, data: bytes, client: Any = None) -> None:
        """Dramatiq's enqueue (message into ``<queue>.msgs``, id onto the queue) plus a wake-up,
        in one round trip; or, from an actor, held back to go with its message's ack."""
        if client is None and (box := getattr(self._capture, "box", None)) is not None:
            box.enqueues.append((queue_name, redis_message_id, data))
            return
        self._enqueue(queue_name, [WAKE_TOKENS - 1, redis_message_id, data], client)

    def _enqueue(self, queue_name: str, args: list[Any], client: Any = None) -> None:
        """The enqueue script on ``client`` (a caller's pipeline), or in a round trip of its own,
        confirmed on replicas when ``PIPELINE_MIN_REPLICAS`` asks (``shared.replication``)."""
        queue = f"{self.namespace}:{queue_name}"
        keys = [queue, f"{queue}.msgs", self.wake_key(queue_name)]
        if client is not None:
            self.enqueue_script(keys=keys, args=args, client=client)
        else:
            replication.call(self.client, self.enqueue_script, keys, args)

    def enqueue_many(self, messages: Iterable[dramatiq.Message], batch: int = 1000) -> None:
        """Enqueue many (undelayed) messages: up to ``batch`` per round trip, one script call per queue.

        The first batches are smaller (``FIRST_BATCH``, then three times as many each round trip):
        workers start on the first messages while the rest are still being encoded, instead of
        waiting for a whole batch (a thousand messages take the producer ~40 ms here).

        Each message gets its ``redis_message_id`` in its own options (as ``RedisBroker.enqueue``
        does on a copy): the messages are the caller's to hand over, not to enqueue again.
        """
        it = iter(messages)
        size = min(batch, FIRST_BATCH)
        while chunk := list(islice(it, size)):
            size = min(batch, size * 3)
            by_queue: dict[str, list[int | str | bytes]] = {}
            for message in chunk:
                self.emit_before("enqueue", message, None)
                redis_id = str(uuid4())  # as RedisBroker.enqueue: the id travels in the message too
                message.options["redis_message_id"] = redis_id
                by_queue.setdefault(message.queue_name, [WAKE_TOKENS - 1]).extend(
                    (redis_id, message.encode())
                )
            for queue_name, args in by_queue.items():  # nearly always one queue: no pipeline needed
                self._enqueue(queue_name, args)

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return PipelineConsumer

    def _should_do_maintenance(self, command: str) -> int:
        if command in MAINTENANCE_COMMAND_BLACKLIST or not getattr(self._maintenance, "due", False):
            return 0
        self._maintenance.due = False
        return 1


def build_broker(settings: Settings) -> PipelineBroker:
    """A broker on ``settings.redis_url`` with Dramatiq's default middleware (AgeLimit, TimeLimit,
    ShutdownNotifications, Callbacks, Pipelines, Retries, and Prometheus where prometheus_client is
    installed: every actor option a Dramatiq user relies on), plus validation (each declared task's
    own check, ``dramatiq_impl.driver``), DLQ reasons, the heartbeat and presence; its client
    retries through Redis restarts (shared.connection). ``PipelineBroker.emit_before`` calls only
    the hooks a middleware overrides, so the defaults cost a few microseconds per message."""
    middleware: list[Middleware] = [make() for make in default_middleware]
    middleware += [
        CaptureSends(),
        ValidateArguments(),
        DeadLetterReasons(),
        Heartbeat(HEARTBEAT_TIMEOUT_MS / 1000 / 4),
        RequeueOnShutdown(),
        WorkerPresence(),
    ]
    return PipelineBroker(
        client=connect(settings), middleware=middleware, heartbeat_timeout=HEARTBEAT_TIMEOUT_MS
    )


#: ``PIPELINE_DRAMATIQ_BROKER=stock`` runs the actors on Dramatiq's own RedisBroker with its default
#: middleware: what a user gets before any tuning here (the benchmarks' "stock" profile).
BROKER_ENV = "PIPELINE_DRAMATIQ_BROKER"


def set_default_broker(settings: Settings) -> RedisBroker:
    if os.environ.get(BROKER_ENV) == "stock":
        url = settings.redis_url  # Dramatiq takes no sentinel URL: a client of its master, no retries of ours
        stock = {"client": client_from_url(url)} if is_sentinel_url(url) else {"url": url}
        broker: RedisBroker = RedisBroker(**stock)
    else:
        broker = build_broker(settings)
    dramatiq.set_broker(broker)
    return broker
