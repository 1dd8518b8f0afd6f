"""Declared tasks (``shared.pipeline``) as RQ jobs, run by ``PipelineWorker``.

A task's job names the task (``myproj.tasks.simulate``) as its function, on the task's queue,
with the task's timeout and retries; its hash is written from a template as the seed's jobs are
(``rq_impl.job_template``). A worker runs only declared tasks (``PIPELINE_TASKS`` names the
modules it imports): ``PipelineJob.func`` asks ``job_function`` here. In a worker, what a job
sends and stores is held back and written with its success records (``rq_impl.outbox``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rq import Retry

from rq_impl import outbox
from rq_impl.job_template import JobTemplate
from rq_impl.tasks import BACKEND_NAME, JOB_OPTIONS, queue

if TYPE_CHECKING:
    from shared.pipeline import Task, TaskOptions
    from shared.results import RedisStore, Row


def job_options(options: TaskOptions) -> dict[str, Any]:
    """RQ job options for a task's options (RQ's ``Retry`` needs at least one retry)."""
    found: dict[str, Any] = {
        "result_ttl": JOB_OPTIONS["result_ttl"],
        "timeout": max(1, round(options.timeout)),
    }
    if options.retries:
        interval = [options.backoff * 2**i for i in range(options.retries)] if options.backoff else 0
        found["retry"] = Retry(max=options.retries, interval=interval)
    return found


class RQDriver:
    name = BACKEND_NAME

    def __init__(self) -> None:
        self._templates: dict[tuple[str, str, float], JobTemplate] = {}

    def declare(self, task: Task) -> None:
        """Nothing to make: a worker finds a declared task by its name (``job_function``)."""

    def template(self, task: Task, queue_name: str, options: TaskOptions | None) -> JobTemplate:
        options = options or task.options
        key = (task.name, queue_name, options.timeout)
        found = self._templates.get(key)
        if found is None:
            found = self._templates[key] = JobTemplate(queue(queue_name), task.name, job_options(options))
        return found

    def send(
        self,
        task: Task,
        queue: str,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        options: TaskOptions | None = None,
    ) -> None:
        template = self.template(task, queue, options)
        if (box := outbox.current()) is not None:
            template.add(box.pipeline, list(args), kwargs)
        else:
            template.write(list(args), kwargs)

    def send_many(
        self,
        task: Task,
        queue: str,
        calls: Sequence[tuple[Sequence[Any], dict[str, Any]]],
        options: TaskOptions | None = None,
    ) -> int:
        return self.template(task, queue, options).write_calls([(list(a), k) for a, k in calls])

    def defer_rows(self, store: RedisStore, rows: Sequence[Row]) -> bool:
        box = outbox.current()
        if box is None or not store.is_broker:
            return False
        box.rows.extend(store.script_rows(rows))
        return True


_driver = RQDriver()


def driver() -> RQDriver:
    return _driver


def declared_task(name: str) -> Task | None:
    """The declared task a job names, or None (imported late: ``shared.pipeline`` loads us)."""
    from shared.pipeline import get_task

    return get_task(name)


def job_function(name: str) -> Callable[..., None] | None:
    """What a worker calls for a job naming ``name``: the declared task, checked and run, its result
    sent on; None if no task of that name is declared."""
    task = declared_task(name)
    if task is None:
        return None

    def perform(*args: Any, **kwargs: Any) -> None:
        task.perform(_driver, args, kwargs)

    return perform
