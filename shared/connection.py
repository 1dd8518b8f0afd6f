"""One way to open Redis for every process of the pipeline, and one clear error when it is away.

Workers ride out a Redis restart or a short outage instead of failing the task in hand: every
command is retried on connection errors and timeouts with capped exponential backoff for up to
``RECONNECT_SECONDS``. A retried write may apply twice; the pipeline is at-least-once by design and
the result store is idempotent, so that costs a counted redelivery, never a wrong result.
"""

from __future__ import annotations

from typing import Any, cast

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from shared.settings import Settings

#: How long a command keeps retrying through an outage before the error reaches the caller.
RECONNECT_SECONDS = 30
#: A read that waits longer than this on a silent peer (a cut link) fails and is retried.
SOCKET_TIMEOUT = 10.0

_BACKOFF_CAP = 1.0


class RedisUnavailable(RuntimeError):
    """Redis did not answer; the message names the URL with its password redacted."""


def resilience_options() -> dict[str, Any]:
    return {
        "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=_BACKOFF_CAP), retries=RECONNECT_SECONDS),
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": 5.0,
        "socket_keepalive": True,
        "health_check_interval": 15,
    }


class ResilientRedis(redis.Redis):
    """``redis.Redis`` whose ``from_url`` applies the retry policy above; usable as RQ's
    ``--connection-class shared.connection.ResilientRedis`` so the stock worker gets it too."""

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> ResilientRedis:
        return cast(ResilientRedis, super().from_url(url, **{**resilience_options(), **kwargs}))


def connect(settings: Settings) -> redis.Redis:
    """A client for ``settings.redis_url`` (hiredis parses replies when installed)."""
    return ResilientRedis.from_url(settings.redis_url)


def ping(settings: Settings, timeout: float = 2.0) -> None:
    """Raise RedisUnavailable with a one-line reason unless Redis answers PING (no retries)."""
    client = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = str(exc).replace(settings.redis_url, settings.redacted_url).splitlines()[0]
        raise RedisUnavailable(f"cannot reach Redis at {settings.redacted_url}: {reason}") from None
    finally:
        client.close()
