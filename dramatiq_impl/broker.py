"""The Redis broker for the pipeline: Dramatiq's own, plus a dead-letter path for undecodable bytes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.errors import DecodeError
from dramatiq.middleware import default_middleware

from dramatiq_impl.middleware import DeadLetterReasons, ValidateArguments, record_dead_letter_reason
from shared.settings import Settings
from shared.tasks import validate_point, validate_result


class _DeadLetteringConsumer(_RedisConsumer):
    """Stock consumer, made safe against messages written straight into Redis by someone else:
    bytes that are not Dramatiq JSON go to the dead-letter queue with their reason (instead of
    escaping the consumer and coming back forever), and a message without the broker's
    ``redis_message_id`` gets it back, so it can be acked or dead-lettered like any other."""

    def __next__(self) -> Any:
        while True:
            try:
                message = super().__next__()
            except DecodeError as exc:
                self._dead_letter_undecodable(exc)
                continue
            if message is not None and "redis_message_id" not in message.options:
                marker = message.message_id.encode()
                found = [redis_id for redis_id, data in self._unacked() if marker in data]
                message.options["redis_message_id"] = found[0] if found else None
            return message

    def _dead_letter_undecodable(self, exc: DecodeError) -> None:
        for redis_id, data in self._unacked():
            if data == exc.data:
                self.logger.error("Dead-lettering undecodable message %s on %r.", redis_id, self.queue_name)
                self.broker.do_nack(self.queue_name, redis_id)
                reason = f"DecodeError: {exc.error!r:.200}"
                record_dead_letter_reason(self.broker, self.queue_name, redis_id, reason)
                return

    def _unacked(self) -> list[tuple[str, bytes]]:
        """(redis id, data) of the messages this consumer fetched and has not acked yet."""
        broker = self.broker
        ids = list(
            broker.client.smembers(f"{broker.namespace}:__acks__.{broker.broker_id}.{self.queue_name}")
        )
        datas = broker.client.hmget(f"{broker.namespace}:{self.queue_name}.msgs", ids) if ids else []
        return [(i.decode(), d) for i, d in zip(ids, datas, strict=True) if d is not None]


class PipelineBroker(RedisBroker):
    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return _DeadLetteringConsumer


def build_broker(settings: Settings) -> PipelineBroker:
    """A broker on ``settings.redis_url`` with the stock middleware plus validation and DLQ reasons."""
    validators: dict[str, Callable[..., Any]] = {"compute": validate_point, "handle_result": validate_result}
    middleware = [m() for m in default_middleware]
    middleware += [ValidateArguments(validators), DeadLetterReasons()]
    return PipelineBroker(url=settings.redis_url, middleware=middleware)


def set_default_broker(settings: Settings) -> PipelineBroker:
    broker = build_broker(settings)
    dramatiq.set_broker(broker)
    return broker
