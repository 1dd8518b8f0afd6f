"""The seed's two tasks as RQ jobs; start workers with ``rq worker --serializer json compute result``.

    >>> from rq_impl.tasks import compute
    >>> compute.delay(6, 7)         # as the seed's compute.delay(6, 7)
    >>> compute_chunk.delay([[0, 1], [2, 3]])   # chunked mode: many points, one job each way

Jobs travel as JSON: a message can never run code on a worker through pickle. In a worker, what a
task writes (its enqueue, its stored result) is held back and written with the job's success
records (``rq_impl.outbox``); anywhere else it is written at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import wraps
from types import MappingProxyType
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq import Queue, Retry
from rq.decorators import job
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.utils import now

from rq_impl import outbox
from rq_impl.job_template import JobTemplate
from shared import chunks, tasks
from shared.connection import connect
from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK, active_table
from shared.settings import Settings
from shared.store import ResultStore

BACKEND_NAME = "rq"

#: Every job: kept 30 s after it finishes (its return value is None: the seed's ignore_result;
#: letting RQ expire a finished job costs fewer round trips than deleting it, ~200 vs ~140
#: tasks/s here), a timeout far above the task's cost (it also bounds how long a dead worker's
#: job waits to be found), and retries for what a second try can fix (see rq_impl.worker).
#: Read-only: the job templates (rq_impl.job_template) are built from it once.
JOB_OPTIONS: Mapping[str, Any] = MappingProxyType({"result_ttl": 30, "timeout": 10, "retry": Retry(max=3)})

connection = connect(Settings.from_env())
routing = active_table()
store = ResultStore(connection, BACKEND_NAME)


def queue(name: str, redis: Redis = connection) -> Queue:
    return Queue(name, connection=redis, serializer=JSONSerializer)


def enqueue(template: JobTemplate, *args: Any, **kwargs: Any) -> Job:
    """``enqueue_call`` of the template's task with ``JOB_OPTIONS`` in one round trip, written from
    the template (rq_impl.job_template); returns the ``Job`` that ``enqueue_call`` returns."""
    at = now()
    return template.job(template.write(args, kwargs, at), args, kwargs, at)


def enqueue_on(pipe: Pipeline, template: JobTemplate, *args: Any, **kwargs: Any) -> Job:
    """``enqueue``'s writes, queued on ``pipe`` for whoever sends them: a job running in a worker
    enqueues with its own success records (``rq_impl.outbox``)."""
    at = now()
    return template.job(template.add(pipe, args, kwargs, at), args, kwargs, at)


def task(queue_name: str, validator: Callable[..., Any]) -> Callable[[Callable[..., None]], Any]:
    """RQ's ``@job`` (JSON, no stored return value) whose ``.delay`` validates, then enqueues in
    one round trip (``enqueue``), or, in a worker's job, with the job's success. ``.template``
    writes its jobs into a pipeline of your own."""

    def decorate(fn: Callable[..., None]) -> Any:
        target = queue(queue_name)
        rq_job = job(target, connection=connection, **JOB_OPTIONS)(fn)
        template = JobTemplate(target, fn, JOB_OPTIONS)

        @wraps(rq_job.delay)
        def delay(*args: Any, **kwargs: Any) -> Job:
            validator(*args, **kwargs)
            if (box := outbox.current()) is not None:
                return enqueue_on(box.pipeline, template, *args, **kwargs)
            return enqueue(template, *args, **kwargs)

        rq_job.delay = delay
        rq_job.template = template
        return rq_job

    return decorate


def _store(rows: Sequence[tuple[int, int, int]]) -> None:
    """``store.put_many``, or, in a worker's job, held back to be written with its success."""
    if (box := outbox.current()) is None:
        store.put_many(rows)
    else:
        box.rows.extend(store.script_row(*row) for row in rows)


@task(routing.queue_for(HANDLE_RESULT_TASK), tasks.validate_result)
def handle_result(x: int, y: int, result: int) -> None:
    """Store the result at the other end (idempotent: a redelivery stores nothing new)."""
    _store([tasks.validate_result(x, y, result)])


@task(routing.queue_for(COMPUTE_TASK), tasks.validate_point)
def compute(x: int, y: int) -> None:
    """Perform the computation and hand its result to ``handle_result``."""
    x, y = tasks.validate_point(x, y)
    handle_result.delay(x, y, tasks.compute(x, y))


@task(routing.queue_for(HANDLE_RESULT_TASK), chunks.validate_rows)
def handle_results(rows: Sequence[Sequence[int]]) -> None:
    """Store a chunk's results in one round trip (idempotent per point, as ``handle_result``)."""
    _store(chunks.validate_rows(rows))


@task(routing.queue_for(COMPUTE_TASK), chunks.validate_chunk)
def compute_chunk(points: Sequence[Sequence[int]]) -> None:
    """Compute a chunk; one ``handle_results`` for it, and a failed point retried as a ``compute``."""
    rows = chunks.compute_chunk(chunks.validate_chunk(points), retry_point=compute.delay)
    if rows:
        handle_results.delay(rows)


#: The only functions a worker of ours will run, by the name a job gives.
FUNCTIONS: dict[str, Callable[..., None]] = {
    f"{__name__}.{fn.__name__}": fn for fn in (compute, handle_result, compute_chunk, handle_results)
}
