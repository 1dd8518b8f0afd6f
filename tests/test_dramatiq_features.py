"""Dramatiq's own features on our broker, for a user's plain actors (tests/user_actors.py) run by
the stock ``dramatiq`` CLI."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.settings import Settings
from shared.workers import WorkerGroup
from tests import user_actors
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent
DRAMATIQ = str(Path(sys.executable).parent / "dramatiq")


def ran(client: redis.Redis) -> list[str]:
    names: list[bytes] = client.lrange(user_actors.RAN, 0, -1)  # type: ignore[assignment]
    return [name.decode() for name in names]


@pytest.fixture
def actor_worker(settings: Settings, client: redis.Redis, tmp_path: Path) -> Iterator[WorkerGroup]:
    """One stock ``dramatiq`` worker of the user's actors, seen consuming before the test goes on."""
    env = {**os.environ, "REDIS_URL": settings.redis_url, "PYTHONPATH": str(ROOT)}
    command = [DRAMATIQ, "tests.user_actors", "--processes", "1", "--threads", "2"]
    with WorkerGroup(env, tmp_path) as group:
        group.start("user-actors", [*command, "--queues", user_actors.QUEUE])
        user_actors.note.send("ready")
        assert wait_until(lambda: "ready" in ran(client) or bool(group.dead()), timeout=60)
        assert not group.dead(), group.workers[0].tail()
        yield group


def test_a_short_delay_and_a_retry_backoff_run_while_a_longer_delay_waits(
    actor_worker: WorkerGroup, client: redis.Redis
) -> None:
    """The long delay is sent first: were the worker to hold delayed messages one at a time (its
    pacing window), the short delay and the retry would wait the whole 120 s behind it."""
    user_actors.note.send_with_options(args=("late",), delay=120_000)
    user_actors.note.send_with_options(args=("soon",), delay=300)
    user_actors.fail_once.send("retried")
    assert wait_until(lambda: {"soon", "retried"} <= set(ran(client)), timeout=60), ran(client)
    assert "late" not in ran(client)
    assert client.get("test:user-actors:tries:retried") == b"2"  # failed once, retried once


def test_a_two_step_pipeline_and_an_on_success_callback_run(
    actor_worker: WorkerGroup, client: redis.Redis
) -> None:
    """Dramatiq's Pipelines and Callbacks middleware are on our broker: the second step gets the
    first's result, and the callback gets the actor's."""
    second = user_actors.record.message()  # type: ignore[call-arg]  # x is the first step's result
    (user_actors.double.message(3) | second).run()
    user_actors.double.send_with_options(args=(5,), on_success=user_actors.succeeded)
    wanted = {"double:3", "record:6", "double:5", "succeeded:double:10"}
    assert wait_until(lambda: wanted <= set(ran(client)), timeout=60), ran(client)
