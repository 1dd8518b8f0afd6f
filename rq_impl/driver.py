"""Declared tasks (``shared.pipeline``) as RQ jobs, run by ``PipelineWorker``.

A task's job names a function RQ can import: the task itself (``myproj.tasks.simulate``), or for
the seed's tasks the job functions of ``rq_impl.tasks``. It goes on the task's queue with the
task's timeout and retries, its hash written from a template (``rq_impl.job_template``). A worker
of ours runs only declared tasks (``PIPELINE_TASKS`` names the modules it imports):
``PipelineJob.func`` asks ``job_function`` here. In a worker, what a job sends and stores is held
back and written with its success records (``rq_impl.outbox``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from redis import Redis
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from rq_impl import outbox
from rq_impl.job_template import JobTemplate
from shared.connection import connect
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.pipeline import Task, TaskOptions
    from shared.results import Row as StoreRow
    from shared.results import Store
    from shared.store import ScriptRow

BACKEND_NAME = "rq"
#: A finished job is kept 30 s (its return value is None: the task sends its result on; letting
#: RQ expire a finished job costs fewer round trips than deleting it, ~200 vs ~140 tasks/s here).
RESULT_TTL = 30

connection = connect(Settings.from_env())


def queue(name: str, redis: Redis = connection) -> Queue:
    return Queue(name, connection=redis, serializer=JSONSerializer)


def job_options(options: TaskOptions) -> Mapping[str, Any]:
    """RQ job options for a task's options (RQ's ``Retry`` needs at least one retry). Read-only:
    job templates are built from them once."""
    found: dict[str, Any] = {"result_ttl": RESULT_TTL, "timeout": max(1, round(options.timeout))}
    if options.retries:
        interval = [options.backoff * 2**i for i in range(options.retries)] if options.backoff else 0
        found["retry"] = Retry(max=options.retries, interval=interval)
    return MappingProxyType(found)


class RQDriver:
    name = BACKEND_NAME

    def __init__(self) -> None:
        self._templates: dict[tuple[str, str, float, str], JobTemplate] = {}
        #: task name -> the function its jobs name, where that is not the task itself.
        self._functions: dict[str, Callable[..., Any]] = {}

    def declare(self, task: Task) -> None:
        """Nothing to make: a worker finds a declared task by its job's function (``job_function``)."""

    def bind(self, task: Task, function: Callable[..., Any]) -> None:
        """Have ``task``'s jobs name ``function`` (importable; it runs the task, ``job_runner``)."""
        self._functions[task.name] = function

    def function_of(self, task: Task) -> Callable[..., Any] | str:
        return self._functions.get(task.name, task.name)

    def template(
        self, task: Task, queue_name: str, options: TaskOptions | None = None, redis: Redis = connection
    ) -> JobTemplate:
        """The job template of ``task`` on ``queue_name`` (``options``: a chunk's longer timeout)."""
        options = options or task.options
        key = (task.name, queue_name, options.timeout, repr(redis))
        found = self._templates.get(key)
        if found is None:
            target = queue(queue_name, redis)
            found = self._templates[key] = JobTemplate(target, self.function_of(task), job_options(options))
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

    def defer_store(self, store: Store, rows: Sequence[StoreRow]) -> bool:
        """On a worker: committed before the job's success is recorded, with the rows of the jobs
        that follow it at once (``rq_impl.store_batch``), True; else False."""
        box = outbox.current()
        if box is None:
            return False
        box.stored.append((store, rows))
        return True

    def defer(self, rows: Sequence[ScriptRow]) -> bool:
        box = outbox.current()
        if box is None:
            return False
        box.rows.extend(rows)
        return True


_driver = RQDriver()


def driver() -> RQDriver:
    return _driver


def declared_task(name: str) -> Task | None:
    """The declared task named ``name``, or None (imported late: ``shared.pipeline`` loads us)."""
    from shared.pipeline import get_task

    return get_task(name)


def job_runner(task: Task) -> Callable[..., None]:
    """What a worker calls for a job of ``task``: the call checked and run, its result sent on."""

    def perform(*args: Any, **kwargs: Any) -> None:
        task.perform(_driver, args, kwargs)

    return perform


def job_function(name: str) -> Callable[..., None] | None:
    """What a worker calls for a job naming ``name`` (a declared task's name), or None."""
    task = declared_task(name)
    return None if task is None else job_runner(task)
