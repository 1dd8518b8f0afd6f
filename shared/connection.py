"""One way to open Redis for every process of the pipeline, and one clear error when it is away.

Every command is retried on connection errors and timeouts, with capped exponential backoff, for
up to ``PIPELINE_REDIS_RETRY_SECONDS`` (default ``RECONNECT_SECONDS``, 30 s) from its first failed
attempt: workers ride out a Redis restart or a short outage instead of failing the task in hand,
and a producer (``compute.send``, ``Task.submit``) waits as long for a Redis that is starting. The
first failed attempt logs one warning naming the URL and the budget; when the budget is spent,
``RedisUnavailable`` (a ``redis.ConnectionError``) says so. A retried write may apply twice; the
pipeline is at-least-once by design and the result store is idempotent, so that costs a counted
redelivery, never a wrong result.

A sentinel URL (``redis+sentinel://…``, ``shared.sentinel``) gives the same client on the master the
sentinels name: every reconnection asks them again, so the retries above follow a failover.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis
from redis.backoff import AbstractBackoff, ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from shared import replication, stopping
from shared.errors import config_error
from shared.sentinel import client_from_url, is_sentinel_url, master_client
from shared.settings import Settings, redact_url, redis_url_problem

#: How long a command keeps retrying through an outage before the error reaches the caller.
RECONNECT_SECONDS = 30
#: Set to change that budget (seconds; 0: fail at the first refused connection).
RETRY_SECONDS_ENV = "PIPELINE_REDIS_RETRY_SECONDS"
#: A read that waits longer than this on a silent peer (a cut link) fails and is retried.
SOCKET_TIMEOUT = 10.0

_BACKOFF_CAP = 1.0
T = TypeVar("T")
log = logging.getLogger(__name__)


class RedisUnavailable(redis.ConnectionError):
    """Redis did not answer; the message names the URL with its password redacted. A
    ``redis.ConnectionError``, so handlers of that keep working."""


def retry_budget() -> float:
    """``PIPELINE_REDIS_RETRY_SECONDS`` if set (a ConfigError if it is no number >= 0), else 30."""
    text = os.environ.get(RETRY_SECONDS_ENV, "").strip()
    if not text:
        return float(RECONNECT_SECONDS)
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise config_error(f"{RETRY_SECONDS_ENV}={text!r}: expected a number of seconds >= 0")
    return seconds


def _reason(error: Exception) -> str:
    """``Connection refused`` rather than redis-py's ``Error 111 connecting to host:port. …``."""
    cause = error.__cause__ or error.__context__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return (str(error).splitlines() or [type(error).__name__])[0].rstrip(".")


class BudgetRetry(Retry):
    """redis-py's ``Retry`` bounded by time rather than by a count: retry for ``budget`` seconds
    from the first failure of an outage, warn once when it starts, then raise RedisUnavailable.

    redis-py nests retries (a command's retry reconnects, and connecting retries too); the outage
    start is kept on the object (each connection has its own copy), so nesting shares one budget,
    and a RedisUnavailable from the inner loop is never retried by the outer one. Only the
    outermost call's success ends an outage: a reconnection that succeeds inside a command that
    keeps failing (a ``WAIT`` short of replicas, ``shared.replication``) does not reset the budget.
    """

    def __init__(self, backoff: AbstractBackoff, budget: float, url: str = "") -> None:
        super().__init__(backoff, retries=-1)  # unbounded count: the budget bounds it
        self.budget = budget
        self.url = redact_url(url)
        self._down_since: float | None = None
        self._depth = 0  # nesting: the outermost call alone ends an outage on success

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        stopping.check()  # a stopping worker that gave up on Redis sends nothing more
        self._depth += 1
        try:
            return self._call(do, fail, is_retryable, with_failure_count)
        finally:
            self._depth -= 1

    def _call(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None,
        with_failure_count: bool,
    ) -> T:
        self._backoff.reset()
        failures = 0
        while True:
            try:
                result = do()
            except self._supported_errors as error:
                if isinstance(error, RedisUnavailable) or (is_retryable and not is_retryable(error)):
                    self._down_since = None
                    raise
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                pause = self._pause(error, failures)
                if pause > 0:
                    time.sleep(pause)
            else:
                if self._depth == 1:  # a reconnection inside a retried command ends no outage
                    self._down_since = None
                return result

    def _pause(self, error: Exception, failures: int) -> float:
        """Seconds to wait before the next attempt; raise RedisUnavailable once the budget is spent."""
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            if self.budget > 0:
                log.warning(
                    "Redis %s unreachable (%s); retrying for up to %g s",
                    self.url or "server",
                    _reason(error),
                    self.budget,
                )
        left = stopping.retry_left(self._down_since + self.budget - now)  # less once stopping
        if left <= 0:
            self._down_since = None
            spent = f" for {self.budget:g} s" if self.budget > 0 else ""
            message = f"Redis {self.url or 'server'} unreachable{spent}: {_reason(error)}"
            raise RedisUnavailable(message) from error
        return min(self._backoff.compute(failures), left)


def resilience_options(url: str = "") -> dict[str, Any]:
    """The client options of every connection of the pipeline (``url`` only names it in messages).
    The durability knob is checked here too, so a bad value stops a process before its first write."""
    replication.min_replicas()
    return {
        "retry": BudgetRetry(ExponentialWithJitterBackoff(base=0.05, cap=_BACKOFF_CAP), retry_budget(), url),
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": 5.0,
        "socket_keepalive": True,
        "health_check_interval": 15,
    }


class ResilientRedis(redis.Redis):
    """``redis.Redis`` whose ``from_url`` applies the retry policy above and also takes a sentinel
    URL; usable as RQ's ``--connection-class shared.connection.ResilientRedis`` so the stock worker
    gets both too. A URL no client can use is a ConfigError naming it (password redacted)."""

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> ResilientRedis:
        if problem := redis_url_problem(url):
            raise config_error(f"bad Redis URL {redact_url(url)}: {problem}")
        options = {**resilience_options(url), **kwargs}
        if is_sentinel_url(url):
            return master_client(url, cls, **options)
        return cast(ResilientRedis, super().from_url(url, **options))


def connect(settings: Settings) -> redis.Redis:
    """A client for ``settings.redis_url`` (hiredis parses replies when installed)."""
    return ResilientRedis.from_url(settings.redis_url)


def ping(settings: Settings, timeout: float = 2.0) -> None:
    """Raise RedisUnavailable with a one-line reason unless Redis answers PING (no retries)."""
    if problem := redis_url_problem(settings.redis_url):
        raise config_error(f"bad Redis URL {settings.redacted_url}: {problem}")
    client = client_from_url(
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
