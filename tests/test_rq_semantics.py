"""PipelineWorker keeps RQ 3.0's semantics for a user's own jobs, enqueued through RQ's API:
a cancelled job holds its dependents back, a stop request stops a running job (``on_stopped``
fires), a job's own ``Retry`` retries what RQ retries, job descriptions are logged unless told
not to, and ``RQ_KEY_PREFIX`` is followed (a class's own key prefix is refused in one line)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from rq import Callback, Queue, Retry, SimpleWorker
from rq.command import send_stop_job_command
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from rq_impl import stop_job, tasks
from rq_impl.worker import PipelineWorker
from shared.backend import BACKEND_ENV, load_task_backend
from shared.commands import stock_cli
from shared.pipeline import TASKS_ENV
from shared.runner import wait_live
from shared.settings import Settings
from shared.workers import WorkerGroup
from tests import user_rq_jobs
from tests.helpers import wait_until

MODULE = "tests.user_rq_jobs"
ROOT = Path(__file__).resolve().parent.parent


def _queue(client: redis.Redis, name: str = user_rq_jobs.QUEUE) -> Queue:
    return Queue(name, connection=client, serializer=JSONSerializer)


def _runs(client: redis.Redis, job: Job) -> int:
    return int(client.get(f"runs:{job.id}") or 0)


@contextmanager
def rq_worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerGroup]:
    """One PipelineWorker started by the stock ``rq worker`` CLI on the user's queue, live."""
    backend = load_task_backend("rq", settings)
    env = {**os.environ, "REDIS_URL": settings.redis_url, BACKEND_ENV: "rq", TASKS_ENV: MODULE}
    since = time.time() - 1
    with WorkerGroup(env, tmp_path) as group:
        group.start("semantics", backend.task_worker_command([user_rq_jobs.QUEUE], [MODULE]))
        wait_live(backend, group, since)
        yield group


@pytest.mark.parametrize("worker_class", [SimpleWorker, PipelineWorker])
def test_a_job_cancelled_while_it_runs_keeps_its_dependents_deferred(
    client: redis.Redis, worker_class: type[SimpleWorker]
) -> None:
    """RQ moves dependents before it writes ``finished``, reading the parent's status then: a
    parent cancelled while it ran is ``canceled`` there, and its dependent stays deferred."""
    queue = _queue(client)
    parent = queue.enqueue("tests.user_rq_jobs.cancelled_while_running")
    child = queue.enqueue("tests.user_rq_jobs.sleeps", 0, depends_on=parent)
    other = queue.enqueue("tests.user_rq_jobs.sleeps", 0)  # a job after it still runs
    assert child.get_status() == JobStatus.DEFERRED
    worker_class([queue], connection=client, serializer=JSONSerializer).work(burst=True)
    assert parent.get_status() == JobStatus.FINISHED  # RQ records the success all the same
    assert parent.id in queue.canceled_job_registry
    assert child.get_status() == JobStatus.DEFERRED
    assert child.id in queue.deferred_job_registry and child.id not in queue.job_ids
    assert other.get_status() == JobStatus.FINISHED


def test_a_finished_parent_still_releases_its_dependents(client: redis.Redis) -> None:
    queue = _queue(client)
    parent = queue.enqueue("tests.user_rq_jobs.sleeps", 0)
    child = queue.enqueue("tests.user_rq_jobs.sleeps", 0, depends_on=parent)
    PipelineWorker([queue], connection=client).work(burst=True)
    assert parent.get_status() == child.get_status() == JobStatus.FINISHED


@pytest.mark.slow
def test_stop_job_command_stops_a_running_job_and_runs_on_stopped(
    settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    queue = _queue(client)
    with rq_worker(settings, tmp_path) as group:
        # 120 s: far past the waits below, so only the stop can end it in time.
        job = queue.enqueue(
            "tests.user_rq_jobs.sleeps",
            120,
            on_stopped=Callback("tests.user_rq_jobs.record_stopped"),
            retry=Retry(max=2),
            job_timeout=300,
        )
        assert wait_until(lambda: _runs(client, job) == 1), group.workers[0].tail()
        assert job.get_status() == JobStatus.STARTED
        send_stop_job_command(client, job.id, serializer=JSONSerializer)
        assert wait_until(lambda: job.get_status() == JobStatus.STOPPED), group.workers[0].tail()
        assert client.get(f"stopped:{job.id}") == b"1"  # on_stopped ran
        assert job.id in FailedJobRegistry(queue.name, connection=client, serializer=JSONSerializer)
        result = job.latest_result()
        assert result is not None and "stopped by user" in (result.exc_string or "")
        # The worker serves on, and the stopped job was not retried despite its Retry.
        after = queue.enqueue("tests.user_rq_jobs.sleeps", 0)
        assert wait_until(lambda: after.get_status() == JobStatus.FINISHED), group.workers[0].tail()
        assert _runs(client, job) == 1 and not group.dead()


def test_a_stop_that_lands_before_the_job_runs_stops_it_as_it_starts(client: redis.Redis) -> None:
    """The window check: a stop for a job that is not running (it ended) is dropped when the next
    job's timeout is set; one for the job being started is raised then."""
    queue = _queue(client)
    first = queue.enqueue("tests.user_rq_jobs.sleeps", 0)
    stop_job.install()
    assert stop_job.request("a-job-that-ended")
    PipelineWorker([queue], connection=client).work(burst=True)
    assert first.get_status() == JobStatus.FINISHED and stop_job._target is None

    job = queue.enqueue("tests.user_rq_jobs.sleeps", 30, on_stopped=Callback(user_rq_jobs.record_stopped))
    after = queue.enqueue("tests.user_rq_jobs.sleeps", 0)
    worker = PipelineWorker([queue], connection=client)
    worker._stopped_job_id = job.id  # what RQ's stop-job command sets before it calls kill_horse
    assert stop_job.request(job.id)
    worker.work(burst=True)
    assert job.get_status() == JobStatus.STOPPED and _runs(client, job) == 0
    assert client.get(f"stopped:{job.id}") == b"1"
    assert after.get_status() == JobStatus.FINISHED and _runs(client, after) == 1


@pytest.mark.slow
def test_a_jobs_own_retry_retries_an_ordinary_exception_as_rq_does(
    settings: Settings, client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BACKEND_ENV, "rq")
    queue = _queue(client)
    with rq_worker(settings, tmp_path) as group:
        job = queue.enqueue("tests.user_rq_jobs.fails", retry=Retry(max=2))
        # The pipeline's own way: the task's options, retry_on=(KeyError,), decide for its jobs.
        user_rq_jobs.fails_unlisted.submit()
        (submitted,) = [j for j in queue.get_jobs() if j.func_name == user_rq_jobs.fails_unlisted.name]
        failed = FailedJobRegistry(queue.name, connection=client, serializer=JSONSerializer)
        assert wait_until(lambda: failed.count == 2, timeout=60), group.workers[0].tail()
    assert _runs(client, job) == 3  # the first run and its two retries, as with RQ's own worker
    job.refresh()
    assert job.get_status() == JobStatus.FAILED and job.retries_left == 0
    assert _runs(client, submitted) == 1
    assert submitted.get_status() == JobStatus.FAILED


@pytest.mark.parametrize("describe", [True, False])
def test_job_descriptions_are_logged_unless_turned_off(
    client: redis.Redis, caplog: pytest.LogCaptureFixture, describe: bool
) -> None:
    compute = tasks.queue("compute", client)
    # Two jobs: the first is dequeued, the second claimed by the first one's success script.
    jobs = [compute.enqueue_call(tasks.compute, args=(i, 3), **tasks.JOB_OPTIONS) for i in range(2)]
    caplog.set_level(logging.INFO, logger="rq.worker")
    PipelineWorker([compute], connection=client, log_job_description=describe).work(burst=True)
    text = caplog.text
    for job in jobs:
        assert job.get_status() == JobStatus.FINISHED
        assert job.description and job.id in text
        assert (f"compute: {job.description} ({job.id})" in text) is describe
        assert (f"Successfully completed {job.description} job" in text) is describe
        assert (f"Successfully completed job {job.id}" in text) is not describe


_UNDER_PREFIX = textwrap.dedent(
    """
    import json
    import os

    import redis
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from rq_impl import stop_job, tasks
    from rq_impl.worker import PipelineWorker

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    ids = [tasks.compute.delay(i, 7).id for i in range(3)]
    for queue in ("compute", "result"):
        PipelineWorker([tasks.queue(queue, client)], connection=client).work(burst=True)
    statuses = {Job.fetch(i, connection=client, serializer=JSONSerializer).get_status().value for i in ids}
    print("statuses", sorted(statuses))
    print("stored", [tasks.store.get(i, 7) for i in range(3)])
    print("keys", json.dumps(sorted(k.decode() for k in client.keys("*"))))
    """
)


def test_rq_key_prefix_is_followed(settings: Settings, client: redis.Redis) -> None:
    """RQ 3.0 reads ``RQ_KEY_PREFIX`` at import; the job scripts write under it as RQ does."""
    env = {**os.environ, "REDIS_URL": settings.redis_url, "RQ_KEY_PREFIX": "myapp"}
    done = subprocess.run(
        [sys.executable, "-c", _UNDER_PREFIX], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["statuses"] == "['finished']"
    assert lines["stored"] == "[0, 7, 14]"
    keys = json.loads(lines["keys"])
    assert keys and not [k for k in keys if k.startswith("rq:")]
    assert "myapp:finished:compute" in keys and "myapp:queues" in keys


def test_a_job_class_with_its_own_key_prefix_is_refused_in_one_line(settings: Settings) -> None:
    env = {**os.environ, "REDIS_URL": settings.redis_url, TASKS_ENV: MODULE}
    command = [stock_cli("rq"), "worker", "--burst", "--worker-class", "rq_impl.worker.PipelineWorker"]
    command += ["--job-class", "tests.user_rq_jobs.OwnPrefixJob", user_rq_jobs.QUEUE]
    done = subprocess.run(
        command,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.strip()]
    assert line.startswith("error: PipelineWorker writes RQ's key layout under RQ_KEY_PREFIX")
    assert "elsewhere:job:" in line
