"""Every test talks to a private, real redis-server on a free port, never to the shared one.

It is started before collection, because the task modules read REDIS_URL when imported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import redis

from shared.embedded import RedisServer, private_redis
from shared.settings import Settings
from tests.postgres import PostgresServer, private_postgres

_stack = ExitStack()


def pytest_configure(config: pytest.Config) -> None:
    server = _stack.enter_context(private_redis())
    os.environ["REDIS_URL"] = server.url
    config.stash[SERVER_KEY] = server
    # Bind the task modules' clients to this server now: the chaos tests point REDIS_URL at a
    # short-lived server of their own, and a module first imported then would keep talking to it.
    import dramatiq_impl.tasks  # noqa: F401
    import rq_impl.tasks  # noqa: F401


def pytest_unconfigure(config: pytest.Config) -> None:
    _stack.close()


SERVER_KEY = pytest.StashKey[RedisServer]()


@pytest.fixture(scope="session")
def redis_server(pytestconfig: pytest.Config) -> RedisServer:
    return pytestconfig.stash[SERVER_KEY]


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    return Settings(redis_server.url)


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on the private server, flushed before each test (it is ours alone)."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL, started only when a test asks for one; skipped (with why) if it cannot."""
    with ExitStack() as stack:
        try:
            server = stack.enter_context(private_postgres())
        except RuntimeError as error:
            pytest.skip(f"no private PostgreSQL: {error}")
        yield server
