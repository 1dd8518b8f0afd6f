"""A user's own jobs, enqueued through RQ's own API (``Retry``, ``on_stopped``, ``depends_on``,
``Job.cancel``, ``send_stop_job_command``) and run by ``PipelineWorker``, which runs only declared
tasks: declared here with ``@task`` (``PIPELINE_TASKS=tests.user_rq_jobs``) and enqueued by name.
"""

from __future__ import annotations

import time
from typing import Any

from redis import Redis
from rq.job import Job, get_current_job
from rq.serializers import JSONSerializer

from shared.pipeline import task

QUEUE = "semantics"


def _count_run() -> None:
    """Count this run of the current job under ``runs:<job id>`` (written at once, kept on failure)."""
    job = get_current_job()
    assert job is not None
    job.connection.incr(f"runs:{job.id}")


@task(queue=QUEUE, store=False)
def fails() -> None:
    """An ordinary exception, every time."""
    _count_run()
    raise ValueError("an ordinary failure")


@task(queue=QUEUE, store=False, retries=2, retry_on=(KeyError,))
def fails_unlisted() -> None:
    """A pipeline task that retries KeyError only (its own ``retry_on``), failing otherwise."""
    _count_run()
    raise ValueError("not in this task's retry_on")


@task(queue=QUEUE, store=False)
def sleeps(seconds: float) -> float:
    _count_run()
    time.sleep(seconds)
    return seconds


@task(queue=QUEUE, store=False)
def cancelled_while_running() -> int:
    """Cancelled by another client (its own connection) while it runs, then returns."""
    job = get_current_job()
    assert job is not None
    other = Redis(connection_pool=job.connection.connection_pool)
    Job.fetch(job.id, connection=other, serializer=JSONSerializer).cancel()
    return 1


def record_stopped(job: Job, connection: Redis, *args: Any, **kwargs: Any) -> None:
    """``on_stopped``: what RQ's forking worker calls for a job it stopped."""
    connection.set(f"stopped:{job.id}", "1")


class OwnPrefixJob(Job):
    """A job class with a key prefix of its own (not RQ_KEY_PREFIX): refused by our worker."""

    redis_job_namespace_prefix = "elsewhere:job:"
