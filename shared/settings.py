"""Settings read from the environment, so workers on every machine agree without a config file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Settings:
    """Everything a submitter or a worker needs to find the others.

    ``REDIS_URL``  where the queues and the result store live (default ``redis://127.0.0.1:6379/0``);
                   ``redis://:password@host:port/db`` for AUTH, ``rediss://`` for TLS.
    """

    redis_url: str = DEFAULT_REDIS_URL

    @classmethod
    def from_env(cls) -> Settings:
        return cls(redis_url=os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL)

    @property
    def redacted_url(self) -> str:
        return redact_url(self.redis_url)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``: safe for logs, errors and reports."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
