"""Dramatiq middleware the pipeline adds to the stock set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware, MiddlewareError

from shared.tasks import InvalidArguments


def dead_letter_reasons_key(namespace: str, queue_name: str) -> str:
    """Hash beside Dramatiq's ``<queue>.XQ``: redis message id -> why it was dead-lettered."""
    return f"{namespace}:{queue_name}.XQ.reasons"


class ArgumentsRefused(MiddlewareError, InvalidArguments):
    """InvalidArguments raised from ``send`` (Dramatiq lets only a MiddlewareError escape a hook)."""


class ValidateArguments(Middleware):
    """Refuse invalid arguments at ``send`` time, before anything reaches Redis."""

    def __init__(self, validators: dict[str, Callable[..., Any]]) -> None:
        self.validators = validators

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message, delay: int | None) -> None:
        validator = self.validators.get(message.actor_name)
        if validator is None:
            return
        try:
            validator(*message.args, **message.kwargs)
        except (InvalidArguments, TypeError) as exc:
            raise ArgumentsRefused(str(exc)) from None


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
