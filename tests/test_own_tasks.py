"""A user's own tasks (tests/user_tasks.py), declared once, run on both backends by the stock CLIs,
stored in Redis, SQLite and PostgreSQL: checked at submit and in the worker, stored exactly once."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from shared.backend import BACKEND_ENV, load_task_backend
from shared.pipeline import TASKS_ENV, Call, results, store_results
from shared.results import RESULTS_URL_ENV
from shared.runner import wait_live
from shared.settings import Settings
from shared.workers import WorkerGroup
from tests import user_tasks
from tests.helpers import wait_until
from tests.postgres import PostgresServer

pytestmark = pytest.mark.slow

MODULE = "tests.user_tasks"
BACKENDS = ["dramatiq", "rq"]


@contextmanager
def task_workers(
    backend_name: str, settings: Settings, tmp_path: Path, *queue_lists: list[str]
) -> Iterator[WorkerGroup]:
    """Stock-CLI workers of ``backend_name`` running the user module's tasks, live in Redis."""
    backend = load_task_backend(backend_name, settings)
    env = {**os.environ, "REDIS_URL": settings.redis_url, BACKEND_ENV: backend_name, TASKS_ENV: MODULE}
    since = time.time() - 1
    with WorkerGroup(env, tmp_path) as group:
        for queues in queue_lists:
            group.start("-".join(queues), backend.task_worker_command(queues, [MODULE]))
        wait_live(backend, group, since)
        yield group


@pytest.fixture(params=["redis", "sqlite", "postgres"])
def store_url(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """PIPELINE_RESULTS_URL for the test, in this process and the workers it starts."""
    if request.param == "redis":
        url = settings.redis_url
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'results.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.url
    monkeypatch.setenv(RESULTS_URL_ENV, url)
    for task in (user_tasks.simulate, user_tasks.label, user_tasks.flaky, user_tasks.slow):
        results().store.clear(task.name)
    return url


def everything_stored(calls: list[Call]) -> bool:
    return results().verify(calls).ok


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_own_tasks_run_on_both_backends_into_every_store(
    backend_name: str,
    store_url: str,
    settings: Settings,
    client: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(BACKEND_ENV, backend_name)
    with task_workers(backend_name, settings, tmp_path, ["default", "compute"], [store_results.queue]):
        one = user_tasks.simulate.submit(7, 0.5)
        many = user_tasks.simulate.map([(i, 0.25) for i in range(40)])
        chunked = user_tasks.simulate.map([(i, 2) for i in range(25)], chunk_size=10)
        labels = user_tasks.label.map([["ab"], {"name": "cd", "upper": True, "tags": ["x", "y"]}])
        flaky = user_tasks.flaky.map([(n, str(tmp_path)) for n in range(3)], chunk_size=3)
        calls = [one, *many, *chunked, *labels, *flaky]
        assert wait_until(lambda: everything_stored(calls), timeout=60), results().verify(calls).problems()

    for task in (user_tasks.simulate, user_tasks.label):
        mine = [c for c in calls if c.task == task.name]
        report = results().verify(mine, check=lambda value, *a, task=task, **k: value == task(*a, **k))
        assert report.ok and not report.wrong, report.problems()
    wrong = results().verify([one], check=lambda value, *a, **k: value == -1)
    assert not wrong.ok and wrong.wrong == [(one.key, user_tasks.simulate(7, 0.5))]
    assert results().get(user_tasks.simulate, 7, 0.5) == user_tasks.simulate(7, 0.5)
    assert results().get("tests.user_tasks.simulate", 3, 2.0) == user_tasks.simulate(3, 2)
    assert results().get(user_tasks.label, name="cd", upper=True, tags=("x", "y")) == {
        "label": "CD",
        "tags": ["x", "y"],
        "n": 2,
    }
    # Each flaky call failed once inside its chunk and was retried on its own.
    assert results().get(user_tasks.flaky, 2, str(tmp_path)) == 4
    assert sorted(p.name for p in tmp_path.glob("flaky-*")) == ["flaky-0", "flaky-1", "flaky-2"]
    assert results().count(user_tasks.simulate.name) == 1 + 40 + 25


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_bad_calls_are_refused_at_submit_and_dead_lettered_in_the_worker(
    backend_name: str,
    settings: Settings,
    client: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(BACKEND_ENV, backend_name)
    monkeypatch.setenv(RESULTS_URL_ENV, settings.redis_url)
    before = client.dbsize()
    with pytest.raises(ValueError, match="seed: Input should be a valid integer, got float 1.5"):
        user_tasks.simulate.submit(1.5, 2)
    with pytest.raises(ValueError, match=r"calls\[1\]: simulate\(\): missing a required argument: 'scale'"):
        user_tasks.simulate.map([(1, 2.0), (2,)])
    with pytest.raises(ValueError, match="name: Input should be a valid string"):
        user_tasks.label.submit(3)
    assert client.dbsize() == before  # nothing enqueued
    # A bad call that reaches a worker (written past the check) fails with the check's reason.
    driver = user_tasks.simulate.driver(backend_name)
    driver.send(user_tasks.simulate, "default", ["seven", 0.5], {})
    good = user_tasks.simulate.submit(8, 0.5)
    with task_workers(backend_name, settings, tmp_path, ["default", "result"]):
        assert wait_until(lambda: results().verify([good]).ok)
        if backend_name == "dramatiq":
            assert wait_until(lambda: client.zcard("dramatiq:default.XQ") == 1)
            (reason,) = client.hvals("dramatiq:default.XQ.reasons")
        else:
            registry = FailedJobRegistry("default", connection=client, serializer=JSONSerializer)
            assert wait_until(lambda: registry.count == 1)
            job = Job.fetch(registry.get_job_ids()[0], connection=client, serializer=JSONSerializer)
            assert job.retries_left in (None, 0) or job.get_status() == "failed"
            reason = (job.latest_result().exc_string or "").encode()  # type: ignore[union-attr]
    assert b"InvalidArguments" in reason and b"seed: Input should be a valid integer" in reason


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_task_timeout_longer_than_the_seeds_ten_seconds(
    backend_name: str,
    settings: Settings,
    client: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(BACKEND_ENV, backend_name)
    monkeypatch.setenv(RESULTS_URL_ENV, settings.redis_url)
    with task_workers(backend_name, settings, tmp_path, ["compute", "result"]):
        call = user_tasks.slow.submit(11.5)
        assert wait_until(lambda: results().verify([call]).ok, timeout=60)
    assert results().get(user_tasks.slow, 11.5) == 11.5
    assert results().store.deliveries(user_tasks.slow.name) == {call.key: 1}  # not killed, not retried


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_killed_result_worker_stores_nothing_twice_in_postgres(
    backend_name: str,
    settings: Settings,
    client: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_server: PostgresServer,
) -> None:
    """SIGKILL the result worker mid-run, in the middle of inserts and acks: its unacked messages
    are redelivered to a replacement, and every row is stored once."""
    monkeypatch.setenv(BACKEND_ENV, backend_name)
    monkeypatch.setenv(RESULTS_URL_ENV, postgres_server.url)
    results().store.clear(user_tasks.simulate.name)
    calls = user_tasks.simulate.calls([(i, 1.5) for i in range(3000)])
    with task_workers(
        backend_name, settings, tmp_path, ["default"], ["default"], [store_results.queue]
    ) as group:
        user_tasks.simulate.send_calls(calls)
        assert wait_until(lambda: results().count(user_tasks.simulate.name) >= 300)
        victim = group.workers[-1]
        os.killpg(victim.process.pid, signal.SIGKILL)
        victim.process.wait()
        replacement = load_task_backend(backend_name, settings)
        group.start("result-2", replacement.task_worker_command([store_results.queue], [MODULE]))
        assert wait_until(lambda: everything_stored(calls), timeout=90), results().verify(calls).problems()
    report = results().verify(calls)
    assert report.ok and report.stored == len(calls)
