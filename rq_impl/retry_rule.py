"""Which failed jobs RQ's ``Retry`` may retry on our worker.

RQ retries a failed job while it has retries left, whatever it raised. That stays the rule for
every job, but for two kinds:

- a job of one of the pipeline's tasks (declared with ``shared.pipeline.task``, the seed's
  ``rq_impl.tasks`` functions among them) retries what its task's options say: an exception of
  its ``retry_on`` (bad arguments never), a lost connection or a timeout always; the same rule as
  on Dramatiq (``dramatiq_impl.driver``);
- a job this worker will not run (a function outside the pipeline, data it cannot decode) is
  never retried: no try can change that.

Called on failures only: the hot path pays nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis
from rq.exceptions import DeserializationError
from rq.job import Job
from rq.timeouts import JobTimeoutException

from rq_impl.driver import declared_task, driver
from rq_impl.job import FunctionNotAllowed

if TYPE_CHECKING:
    from shared.pipeline import Task

#: Retried for any task, whatever its ``retry_on``: a second try can succeed.
RETRYABLE: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError, JobTimeoutException)
#: Never retried: the worker refuses to run the job.
REFUSED: tuple[type[BaseException], ...] = (FunctionNotAllowed, DeserializationError)


def may_retry(job: Job, exc: BaseException | None) -> bool:
    """Whether ``job``, failed with ``exc``, may use its retries left (RQ then decides as ever)."""
    if exc is None:
        return True
    if isinstance(exc, REFUSED):
        return False
    task = task_of(_func_name(job))
    if task is None:
        return True  # not the pipeline's: RQ's rule
    return isinstance(exc, RETRYABLE) or task.options.retryable(exc)


def task_of(func_name: str) -> Task | None:
    """The pipeline task whose jobs name ``func_name``: a declared task by name, or one bound to
    a function of its own (the seed's ``rq_impl.tasks.compute`` for ``tasks.compute``)."""
    if not func_name:
        return None
    task = declared_task(func_name)
    if task is not None:
        return task
    from shared.pipeline import declared  # late, as rq_impl.driver: shared.pipeline loads it

    for candidate in declared():
        function = driver().function_of(candidate)
        if not isinstance(function, str) and f"{function.__module__}.{function.__qualname__}" == func_name:
            return candidate
    return None


def _func_name(job: Job) -> str:
    """The function a job names, or '' when its data cannot be read."""
    try:
        return job.func_name or ""
    except Exception:
        return ""
