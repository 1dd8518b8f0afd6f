"""The job class of our worker: RQ's ``Job``, restricted to the pipeline's functions and cheaper to
build.

A worker builds a ``Job`` per job it runs. Three of RQ's costs in that are the same answer every
time, worked out again (``docs/performance.md``, RQ per message round four):

- the serializer is checked against a runtime ``Protocol`` (``isinstance``, 15-30 us on Python
  3.11) in every ``Job.__init__``: the check of one serializer is made once here;
- timestamps are parsed with ``strptime`` (~7 us each, two per job): ``fromisoformat`` reads
  RQ's format (``2026-12-01T13:32:00.410012Z``) into the same aware UTC datetime in 0.2 us, and
  anything it cannot read still goes to RQ's parser;
- the function is imported by name (``import_attribute``) on every access: ours are looked up in
  ``tasks.FUNCTIONS`` (the seed's) and among the tasks declared through ``shared.pipeline``, and a
  name outside them is refused (a job written into Redis by someone else cannot name ``os.system``).

A job's callbacks (``on_success``, ``on_failure``, ``on_stopped``) are imported by name too: RQ
imports whatever the job hash names. Ours come only from a module that declares tasks (the seed's,
``PIPELINE_TASKS``'), so a job cannot name ``os.system`` as a callback either.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from redis import Redis
from rq.job import Job
from rq.serializers import Serializer, resolve_serializer

from rq_impl import tasks
from rq_impl.driver import job_function
from rq_impl.tasks import FUNCTIONS
from shared.pipeline import declared

#: The seed's job functions' module: its callbacks may be named too.
FUNCTIONS_MODULE = tasks.__name__

#: Job hash fields holding RQ timestamps (``utcformat``), with the attribute each is restored to.
_TIMESTAMPS = {
    b"created_at": "created_at",
    b"enqueued_at": "enqueued_at",
    b"started_at": "started_at",
    b"ended_at": "ended_at",
    b"last_heartbeat": "last_heartbeat",
}


class FunctionNotAllowed(Exception):
    """The job names a function outside the pipeline's tasks."""


def _callback_allowed(name: str | None) -> None:
    """Refuse a callback named outside the modules that declare this worker's tasks."""
    if not name:
        return
    modules = {FUNCTIONS_MODULE, *(task.fn.__module__ for task in declared())}
    if name.rpartition(".")[0] not in modules:
        raise FunctionNotAllowed(f"callback {name!r} is not in a module of pipeline tasks")


@cache
def _resolved(serializer: Any) -> Serializer:
    return resolve_serializer(serializer)


class PipelineJob(Job):
    def __init__(
        self, id: str | None = None, connection: Redis | None = None, serializer: Any = None
    ) -> None:
        super().__init__(id, connection)  # no serializer: RQ's default, resolved without a check
        self.serializer = _resolved(serializer)

    @property
    def func(self) -> Any:
        fn = FUNCTIONS.get(self.func_name or "") or job_function(self.func_name or "")
        if fn is None:
            raise FunctionNotAllowed(f"{self.func_name!r} is not a pipeline task")
        return fn

    @property
    def success_callback(self) -> Any:
        _callback_allowed(self._success_callback_name)
        return super().success_callback

    @property
    def failure_callback(self) -> Any:
        _callback_allowed(self._failure_callback_name)
        return super().failure_callback

    @property
    def stopped_callback(self) -> Any:
        _callback_allowed(self._stopped_callback_name)
        return super().stopped_callback

    def restore(self, raw_data: Any) -> Any:
        data = dict(raw_data)
        parsed: dict[str, datetime] = {}
        for field, attribute in _TIMESTAMPS.items():
            value = data.get(field)
            if value:
                try:
                    parsed[attribute] = datetime.fromisoformat(value.decode())
                except ValueError:
                    continue  # RQ's parser has the last word
                del data[field]
        restored = super().restore(data)
        for attribute, value in parsed.items():
            setattr(self, attribute, value)
        return restored
