"""pytest plugin for Dramatiq's own test suite (``-p compat_dramatiq``): their tests, our broker.

Dramatiq's sdist ships its ``tests/test_*.py`` files but not the ``conftest.py`` and ``common.py``
they import from, so this plugin provides those names, written here to behave as Dramatiq's own
(nothing of theirs is copied): the fixtures below, and a ``tests.common`` module with ``worker``
(a started ``dramatiq.Worker``, stopped on exit) and the ``skip_*`` marks. Their test files run
with ``--import-mode=importlib``, as ``tests.test_redis``, so ``from .common import worker`` finds it.

``--compat-side`` (an option of ``compat_record``, loaded beside this plugin) chooses the broker:

- ``stock``: Dramatiq's ``RedisBroker`` with its default middleware, as their conftest builds it.
- ``ours``: ``dramatiq_impl.broker.build_broker``'s, the broker the pipeline runs on
  (``PipelineBroker``: our consumer, enqueue and group commit, with its middleware and its 10 s
  heartbeat timeout). ``dramatiq.brokers.redis.RedisBroker`` is also ``PipelineBroker`` before
  their modules import it, so a test that builds ``RedisBroker(url=...)`` or
  ``RedisBroker(client=...)`` itself builds ours with the same arguments.

``redis_broker`` and ``redis_worker`` are their Redis fixtures. ``stub_broker`` and
``stub_worker``, which their tests of actors, retries, time limits, callbacks, pipelines and
results use, are the same Redis broker here (their conftest gives an in-memory ``StubBroker``):
those tests then run on a Redis broker on both sides, stock and ours. A test that needs the
``StubBroker`` itself (``dead_letters``, ``join(fail_fast=...)``) fails on both sides alike and is
no difference. ``result_backend`` and ``rate_limiter_backend`` are Dramatiq's Redis backends
(their conftest also runs each test on memcached and on a stub backend).

Every fixture uses the run's private redis-server (``--compat-redis-url``); a ``RedisBroker()``
with Redis's defaults reaches it too (``sitecustomize`` beside this file redirects port 6379).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import dramatiq
import dramatiq.brokers.redis
import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.rate_limits.backends import RedisBackend as RateLimitRedisBackend
from dramatiq.results.backends import RedisBackend as ResultsRedisBackend

_state: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    _state["side"] = config.getoption("--compat-side")
    _state["url"] = config.getoption("--compat-redis-url") or "redis://127.0.0.1:6379/0"
    sys.modules.setdefault("tests.common", _common_module())
    if _state["side"] == "ours":
        from dramatiq_impl.broker import PipelineBroker

        dramatiq.brokers.redis.RedisBroker = PipelineBroker  # type: ignore[misc]


def pytest_report_header(config: pytest.Config) -> str:
    return f"compat: Dramatiq's suite on the {config.getoption('--compat-side')} broker"


@contextmanager
def worker(*args: Any, **kwargs: Any) -> Iterator[dramatiq.Worker]:
    """A ``dramatiq.Worker`` started for the block and stopped after it, as their ``common.worker``."""
    started = dramatiq.Worker(*args, **kwargs)
    try:
        started.start()
        yield started
    finally:
        started.stop()


def _common_module() -> ModuleType:
    """The names Dramatiq's test files import from their (unshipped) ``tests/common.py``."""
    common = ModuleType("tests.common", "Dramatiq's tests/common.py names, from tests/compat/plugins.")
    in_ci = os.getenv("GITHUB_ACTION") is not None
    names: dict[str, Any] = {
        "worker": worker,
        "skip_in_ci": pytest.mark.skipif(in_ci, reason="test skipped in CI"),
        "skip_on_windows": pytest.mark.skipif(platform.system() == "Windows", reason="not on Windows"),
        "skip_on_pypy": pytest.mark.skipif(platform.python_implementation() == "PyPy", reason="PyPy"),
        "skip_unless_rabbit_mq": pytest.mark.skip(reason="RabbitMQ tests are not part of make compat"),
        "RABBITMQ_USERNAME": os.getenv("RABBITMQ_USERNAME", "guest"),
        "RABBITMQ_PASSWORD": os.getenv("RABBITMQ_PASSWORD", "guest"),
        "RABBITMQ_CREDENTIALS": None,
    }
    for name, value in names.items():
        setattr(common, name, value)
    return common


def _build_broker() -> RedisBroker:
    if _state["side"] == "ours":
        from dramatiq_impl.broker import build_broker
        from shared.settings import Settings

        return build_broker(Settings(_state["url"]))
    return RedisBroker(url=_state["url"])


@pytest.fixture
def redis_broker() -> Iterator[RedisBroker]:
    """A Redis broker on an empty database, booted and set as Dramatiq's global broker."""
    broker = _build_broker()
    broker.client.flushall()
    broker.emit_after("process_boot")
    dramatiq.set_broker(broker)
    yield broker
    broker.client.flushall()
    broker.close()


@pytest.fixture
def redis_worker(redis_broker: RedisBroker) -> Iterator[dramatiq.Worker]:
    """A worker of 32 threads on ``redis_broker``, stopped after the test."""
    with worker(redis_broker, worker_threads=32) as started:
        yield started


@pytest.fixture
def stub_broker(redis_broker: RedisBroker) -> RedisBroker:
    """Their StubBroker tests get the side's Redis broker (see the module docstring)."""
    return redis_broker


@pytest.fixture
def stub_worker(redis_broker: RedisBroker) -> Iterator[dramatiq.Worker]:
    """As their ``stub_worker``: 32 threads, a 100 ms worker timeout, on the Redis broker."""
    with worker(redis_broker, worker_timeout=100, worker_threads=32) as started:
        yield started


@pytest.fixture
def result_backend(redis_broker: RedisBroker) -> ResultsRedisBackend:
    """Dramatiq's Redis result backend on the run's server (theirs also runs memcached and stub)."""
    return ResultsRedisBackend(client=redis_broker.client)


@pytest.fixture
def redis_result_backend(result_backend: ResultsRedisBackend) -> ResultsRedisBackend:
    return result_backend


@pytest.fixture
def rate_limiter_backend(redis_broker: RedisBroker) -> RateLimitRedisBackend:
    """Dramatiq's Redis rate-limiter backend on the run's server."""
    return RateLimitRedisBackend(client=redis_broker.client)
