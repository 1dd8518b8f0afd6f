"""Settings read from the environment, so workers on every machine agree without a config file."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from redis.connection import parse_url

from shared.errors import config_error
from shared.sentinel import is_sentinel_url, sentinel_url_problem

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_URL_ENV = "REDIS_URL"


@dataclass(frozen=True)
class Settings:
    """Everything a submitter or a worker needs to find the others.

    ``REDIS_URL``  where the queues and the result store live (default ``redis://127.0.0.1:6379/0``);
                   ``redis://:password@host:port/db`` for AUTH, ``rediss://`` for TLS;
                   ``redis+sentinel://[:password@]s1:26379,s2:26379/mymaster/0`` for the master
                   Redis Sentinel names (``shared.sentinel``).
    """

    redis_url: str = DEFAULT_REDIS_URL

    @classmethod
    def from_env(cls) -> Settings:
        """``REDIS_URL`` checked: a URL no Redis client can use is a ConfigError naming it."""
        url = os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL
        if problem := redis_url_problem(url):
            raise config_error(f"{REDIS_URL_ENV}={redact_url(url)}: {problem}")
        return cls(redis_url=url)

    @property
    def redacted_url(self) -> str:
        return redact_url(self.redis_url)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``: safe for logs, errors and reports (also
    for a URL with a bad port, which the error about it has to name). A password in the query
    (``?sentinel_password=``, ``?password=``) too."""
    parts = urlsplit(url)
    query = re.sub(r"((?:^|&)[^&=]*password=)[^&]*", r"\1***", parts.query)
    if parts.password is None:
        return urlunsplit(parts._replace(query=query)) if query != parts.query else url
    credentials, _, host = parts.netloc.rpartition("@")
    user = credentials.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}", query=query))


def redis_url_problem(url: str) -> str | None:
    """Why ``url`` is no Redis URL (one line, no password), or None: what redis-py would refuse
    when it connects, and a database that is not a number (which redis-py silently reads as 0)."""
    if is_sentinel_url(url):
        return sentinel_url_problem(url)
    try:
        parse_url(url)
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number in 0-65535
    except ValueError as exc:
        password = urlsplit(url).password
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return reason.replace(password, "***") if password else reason
    if parts.scheme != "unix" and not re.fullmatch(r"/?\d*", parts.path):
        return f"the database {parts.path.lstrip('/')!r} is not a number (redis://host:port/0)"
    return None
