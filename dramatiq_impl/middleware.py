"""Dramatiq middleware the pipeline adds to the stock set."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import dramatiq
import redis
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware, MiddlewareError

from shared import stopping
from shared.tasks import InvalidArguments

logger = logging.getLogger(__name__)


def dead_letter_reasons_key(namespace: str, queue_name: str) -> str:
    """Hash beside Dramatiq's ``<queue>.XQ``: redis message id -> why it was dead-lettered."""
    return f"{namespace}:{queue_name}.XQ.reasons"


class ArgumentsRefused(MiddlewareError, InvalidArguments):
    """InvalidArguments raised from ``send`` (Dramatiq lets only a MiddlewareError escape a hook)."""


class ValidateArguments(Middleware):
    """Refuse invalid arguments at ``send`` time, before anything reaches Redis: each declared
    task's own check (``validators``, filled by ``dramatiq_impl.driver``), skipped for a message
    its task already checked (``Task.submit``, in ``prechecked``)."""

    def __init__(self) -> None:
        self.validators: dict[str, Callable[..., Any]] = {}
        self._prechecked = threading.local()

    def __enter__(self) -> None:
        """``with validate:`` the calls this thread enqueues meanwhile were checked already."""
        self._prechecked.on = True

    def __exit__(self, *exc: object) -> None:
        self._prechecked.on = False

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message, delay: int | None) -> None:
        validator = self.validators.get(message.actor_name)
        if validator is None or getattr(self._prechecked, "on", False):
            return
        try:
            validator(*message.args, **message.kwargs)
        except (InvalidArguments, TypeError) as exc:
            raise ArgumentsRefused(str(exc)) from None


class CaptureSends(Middleware):
    """While an actor runs, hold back the messages it sends: they go to Redis with its ack (an
    actor that must see one earlier: ``dramatiq_impl.sends``).

    Placed after Retries, so its after-hook runs first: a retry Retries enqueues is written at
    once, as in stock Dramatiq.
    """

    def before_process_message(self, broker: Any, message: MessageProxy) -> None:
        broker.begin_capture(message.options.get("redis_message_id"))

    def after_process_message(self, broker: Any, message: MessageProxy, **kwargs: Any) -> None:
        broker.end_capture()

    def after_skip_message(self, broker: Any, message: MessageProxy) -> None:
        broker.end_capture()


class DeadLetterReasons(Middleware):
    """Record why each message went to the dead-letter queue (Dramatiq keeps only the message)."""

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if message.failed and exception is not None:
            # The nack runs later on the consumer thread, after the exception is cleared.
            message.options["dead_letter_reason"] = f"{type(exception).__name__}: {exception}"

    def after_nack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        reason = message.options.get("dead_letter_reason")
        if reason is None and message._exception is not None:
            reason = f"{type(message._exception).__name__}: {message._exception}"
        record_dead_letter_reason(broker, message.queue_name, message.options["redis_message_id"], reason)


def record_dead_letter_reason(
    broker: Any, queue_name: str, redis_message_id: str, reason: str | None
) -> None:
    key = dead_letter_reasons_key(broker.namespace, queue_name.removesuffix(".DQ"))
    broker.client.hset(key, redis_message_id, reason or "failed")


class Heartbeat(Middleware):
    """Refresh this process's heartbeat on a timer, not only when a consumer fetches.

    Dramatiq's Redis broker writes a worker's heartbeat only inside its broker calls; a worker
    whose threads are all busy makes none, and with a short heartbeat timeout its messages would
    be handed to others while it still works on them.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.stopped = threading.Event()

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        threading.Thread(target=self._beat, args=(broker,), name="heartbeat", daemon=True).start()

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        self.stopped.set()

    def _beat(self, broker: Any) -> None:
        key = f"{broker.namespace}:__heartbeats__"
        while not self.stopped.wait(self.interval):
            try:
                broker.client.zadd(key, {broker.broker_id: int(time.time() * 1000)})
            except Exception:  # the consumers report connection trouble; keep beating
                continue


class RequeueOnShutdown(Middleware):
    """After a warm shutdown, give back every message this process fetched but never finished.

    Dramatiq requeues the messages in its work queue, but not those its consumers had prefetched
    and not yet handed over; they would wait in this process's ack set until its heartbeat
    expires. Once the worker has stopped, every message it processed is acked or dead-lettered,
    so whatever is left in its ack sets was never run.

    It also starts the stop budget (``shared.stopping``): from the stop request on, Redis has
    ``STOP_RETRY_SECONDS`` to answer; if it does not, what this worker could not ack or give back
    stays in its ack sets, redelivered once its heartbeat is ``heartbeat_timeout`` old.
    """

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        stopping.begin()

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        try:
            if (group_commit := getattr(broker, "group_commit", None)) is not None:
                group_commit.flush()  # acks still on their way are not messages to give back
            for queue_name in worker.consumers:
                acks = f"{broker.namespace}:__acks__.{broker.broker_id}.{queue_name}"
                ids = [i.decode() for i in broker.client.smembers(acks)]
                if ids:
                    broker.do_requeue(queue_name, *ids)
        except redis.RedisError as exc:
            seconds = getattr(broker, "heartbeat_timeout", 0) / 1000
            logger.warning(
                "Could not give back unfinished messages (%s): they stay in this worker's ack sets "
                "and are delivered again once its heartbeat is %g s old.",
                exc,
                seconds,
            )
        finally:
            stopping.reset()  # stopped: the process's other clients retry as before
