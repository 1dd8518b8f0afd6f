"""Dramatiq's own features on our broker, for a user's plain actors (tests/user_actors.py) run by
the stock ``dramatiq`` CLI."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from dramatiq.results import ResultFailure

from dramatiq_impl.middleware import dead_letter_reasons_key
from shared.settings import Settings
from shared.workers import WorkerGroup
from tests import user_actors
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent
DRAMATIQ = str(Path(sys.executable).parent / "dramatiq")


def ran(client: redis.Redis) -> list[str]:
    names: list[bytes] = client.lrange(user_actors.RAN, 0, -1)  # type: ignore[assignment]
    return [name.decode() for name in names]


#: Generous bound for a worker to start or finish a few messages (a loaded 2-core machine meets it).
TIMEOUT = 120


@contextmanager
def stock_worker(
    settings: Settings,
    client: redis.Redis,
    tmp_path: Path,
    queues: Sequence[str] = (user_actors.QUEUE,),
    threads: int = 2,
    **env: str,
) -> Iterator[WorkerGroup]:
    """One stock ``dramatiq`` worker of the user's actors, seen consuming before the test goes on."""
    env = {**os.environ, "REDIS_URL": settings.redis_url, "PYTHONPATH": str(ROOT), **env}
    command = [DRAMATIQ, "tests.user_actors", "--processes", "1", "--threads", str(threads)]
    with WorkerGroup(env, tmp_path) as group:
        group.start("user-actors", [*command, "--queues", *queues])
        user_actors.note.send("ready")
        assert wait_until(lambda: "ready" in ran(client) or bool(group.dead()), timeout=TIMEOUT)
        assert not group.dead(), group.workers[0].tail()
        yield group


@pytest.fixture
def actor_worker(settings: Settings, client: redis.Redis, tmp_path: Path) -> Iterator[WorkerGroup]:
    with stock_worker(settings, client, tmp_path) as group:
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


def test_higher_priority_messages_a_worker_holds_run_first(
    settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    """Dramatiq's own ``test_actors_can_prioritize_work`` on our broker: one thread, a prefetch of
    20, ten ``lo`` (priority 10) and ten ``hi`` (priority 0) sent alternately while the thread is
    busy, all ``hi`` run first. Were the consumer to hold its pacing window (1 until a message of
    the queue is measured), it would hold one message at a time and they would run as sent."""
    with stock_worker(
        settings,
        client,
        tmp_path,
        queues=(user_actors.QUEUE, user_actors.PRIORITY_QUEUE),
        threads=1,
        dramatiq_queue_prefetch="20",
    ):
        user_actors.block_until_prefetched.send(20)
        assert wait_until(lambda: "blocking" in ran(client), timeout=TIMEOUT), ran(client)
        for _ in range(10):
            user_actors.lo.send()
            user_actors.hi.send()

        def runs() -> list[str]:
            return [name for name in ran(client) if name in ("hi", "lo")]

        assert wait_until(lambda: len(runs()) == 20, timeout=TIMEOUT), ran(client)
        assert "prefetched:20" in ran(client)
        assert runs() == ["hi"] * 10 + ["lo"] * 10


def test_results_are_stored_and_waited_for_from_outside_an_actor(
    actor_worker: WorkerGroup, client: redis.Redis
) -> None:
    """Dramatiq's Results middleware (RedisBackend on the same Redis): a blocking ``get_result``
    gets the actor's return value, and a failed actor's exception."""
    assert user_actors.double.send(21).get_result(block=True, timeout=TIMEOUT * 1000) == 42
    with pytest.raises(ResultFailure, match="no result"):
        user_actors.fails.send().get_result(block=True, timeout=TIMEOUT * 1000)


def test_an_actor_gets_the_result_of_a_message_it_sent(
    actor_worker: WorkerGroup, client: redis.Redis
) -> None:
    """Held-back sends are written before the actor waits for a result: its own message's, and a
    pipeline's last step's (sent by the Pipelines middleware, not by the actor)."""
    assert user_actors.ask.send(4).get_result(block=True, timeout=TIMEOUT * 1000) == 8
    assert user_actors.ask_pipeline.send(3).get_result(block=True, timeout=TIMEOUT * 1000) == 12


def test_flush_sends_writes_what_an_actor_sent_before_it_returns(
    actor_worker: WorkerGroup, client: redis.Redis
) -> None:
    user_actors.flush_then_wait.send("early")
    assert wait_until(lambda: any(n.endswith(":early") for n in ran(client)), timeout=TIMEOUT)
    assert "flushed:1" in ran(client)
    assert "saw:early" in ran(client)


def test_current_message_and_time_limit_work_in_a_worker(
    actor_worker: WorkerGroup, client: redis.Redis
) -> None:
    """CurrentMessage gives the actor its message; TimeLimit interrupts an actor past its
    ``time_limit`` (1 s), whose message is dead-lettered with the reason, and the worker goes on."""
    message = user_actors.whoami.send()
    user_actors.overrun.send()
    wanted = {f"current:{message.message_id}", "overrun:interrupted"}
    assert wait_until(lambda: wanted <= set(ran(client)), timeout=TIMEOUT), ran(client)
    reasons = dead_letter_reasons_key("dramatiq", user_actors.QUEUE)
    assert wait_until(lambda: bool(client.hvals(reasons)), timeout=TIMEOUT)
    found: list[bytes] = client.hvals(reasons)  # type: ignore[assignment]
    assert [reason.decode().split(":")[0] for reason in found] == ["TimeLimitExceeded"]
    user_actors.note.send("after")
    assert wait_until(lambda: "after" in ran(client), timeout=TIMEOUT)
