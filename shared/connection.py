"""One way to open Redis, and one clear error when it cannot be reached."""

from __future__ import annotations

import redis

from shared.settings import Settings


class RedisUnavailable(RuntimeError):
    """Redis did not answer; the message names the URL with its password redacted."""


def connect(settings: Settings) -> redis.Redis:
    """A client for ``settings.redis_url`` (hiredis parses replies when installed)."""
    return redis.Redis.from_url(settings.redis_url, health_check_interval=30)


def ping(settings: Settings, timeout: float = 2.0) -> None:
    """Raise RedisUnavailable with a one-line reason unless Redis answers PING."""
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = str(exc).replace(settings.redis_url, settings.redacted_url).splitlines()[0]
        raise RedisUnavailable(f"cannot reach Redis at {settings.redacted_url}: {reason}") from None
    finally:
        client.close()
