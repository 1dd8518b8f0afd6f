"""The seed's tasks (``shared.seed``) as RQ jobs; start workers with
``rq worker --serializer json compute result``.

    >>> from rq_impl.tasks import compute
    >>> compute.delay(6, 7)         # as the seed's compute.delay(6, 7)
    >>> compute_chunk.delay([[0, 1], [2, 3]])   # chunked mode: many points, one job each way

Each is a plain function RQ can import by name (``rq_impl.tasks.compute``), so any RQ worker can
run it: it checks the call and runs the seed's task. ``.delay`` checks, then enqueues in one
round trip from a job template (``rq_impl.job_template``), or, in a worker's job, with the job's
success (``rq_impl.outbox``); ``.template`` writes its jobs into a pipeline of your own. Jobs
travel as JSON: a message can never run code on a worker through pickle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rq.job import Job
from rq.utils import now

from rq_impl import outbox
from rq_impl.driver import BACKEND_NAME, connection, driver, job_options, job_runner, queue
from rq_impl.job_template import JobTemplate
from shared import seed
from shared.pipeline import Task

__all__ = ["BACKEND_NAME", "FUNCTIONS", "JOB_OPTIONS", "connection", "enqueue", "queue", "store"]

#: The seed's results on this backend (``shared.seed.seed_store``).
store = seed.seed_store(BACKEND_NAME)

#: Every seed job's options (``seed.SEED_OPTIONS``): kept 30 s after it finishes, a 10 s timeout,
#: three retries (bad arguments never: ``rq_impl.retry_rule``).
JOB_OPTIONS: Mapping[str, Any] = job_options(seed.compute.options)


def enqueue(template: JobTemplate, *args: Any, **kwargs: Any) -> Job:
    """``enqueue_call`` of the template's task in one round trip, written from the template;
    returns the ``Job`` that ``enqueue_call`` returns."""
    at = now()
    return template.job(template.write(args, kwargs, at), args, kwargs, at)


class SeedJob:
    """A seed task's RQ job function, with ``.delay`` and ``.template``."""

    def __init__(self, task: Task, name: str) -> None:
        self.task = task
        run = job_runner(task)
        run.__module__, run.__name__, run.__qualname__ = __name__, name, name
        run.__doc__ = task.fn.__doc__
        self.function = run
        driver().bind(task, run)

    def delay(self, *args: Any, **kwargs: Any) -> Job:
        """Check, then enqueue (in a worker's job: with the job's success)."""
        call = self.task.call(*args, **kwargs)
        template = driver().template(self.task, self.task.queue)
        if (box := outbox.current()) is not None:
            at = now()
            return template.job(
                template.add(box.pipeline, call.args, call.kwargs, at), call.args, call.kwargs, at
            )
        return enqueue(template, *call.args, **call.kwargs)


def _job(task: Task, name: str) -> Callable[..., None]:
    seed_job = SeedJob(task, name)
    function: Any = seed_job.function
    function.delay = seed_job.delay
    function.template = driver().template(task, task.queue)
    return function


compute = _job(seed.compute, "compute")
handle_result = _job(seed.handle_result, "handle_result")
compute_chunk = _job(seed.compute_chunk, "compute_chunk")
handle_results = _job(seed.handle_results, "handle_results")

#: The seed's functions a worker of ours runs, by the name a job gives (declared tasks too).
FUNCTIONS: dict[str, Callable[..., None]] = {
    f"{__name__}.{fn.__name__}": fn for fn in (compute, handle_result, compute_chunk, handle_results)
}
