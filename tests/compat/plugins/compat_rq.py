"""pytest plugin for RQ's own test suite (``-p compat_rq``): their tests, our worker.

With ``--compat-side=ours`` (an option of ``compat_record``, loaded beside this plugin),
``rq.Worker``, ``rq.SimpleWorker``, ``rq.worker.Worker`` and ``rq.worker.SimpleWorker`` name
``CompatWorker`` (below) before their test modules import them: every worker their tests build
under either name, and every ``rq worker`` their CLI tests run (RQ's default worker class is the
string ``rq.Worker``), is ours. Both names, because ``PipelineWorker`` is what a user runs in place
of either. It is a ``SimpleWorker``: jobs run in the worker's own process, with no work horse, so
a test of a forked horse (its pid, killing it, its exit status) cannot pass on ours. The other
kinds of worker (``SpawnWorker``, ``HerokuWorker``, ``RoundRobinWorker``, ``RandomWorker``,
``WorkerPool``'s own) stay RQ's: we replace none of them.

``CompatWorker`` is ``rq_impl.worker.PipelineWorker`` without the two limits that keep a
production worker safe, each of which would fail nearly every test of theirs for one known reason:

- it reads jobs with the serializer the test asks for (RQ's default is pickle; ours reads JSON
  only, whatever ``--serializer`` says), and builds the queues it is given with it;
- its jobs may name any importable function and callback (``CompatJob``: ``PipelineJob`` with
  RQ's own ``Job.func`` and callback properties; ours runs only declared tasks and callbacks from
  their modules, so ``tests.fixtures.say_hello`` is refused).

Everything else is ours as shipped: the one-script job lifecycle and its Redis records
(``rq_impl.lifecycle``, ``records``, ``prestart``), ``PipelineJob``'s hash reading, the
maintenance cadence, heartbeats, the prompt intermediate-queue cleanup, stop handling (stop-job
commands included) and the retry rule (``rq_impl.retry_rule``: RQ's for jobs outside the
pipeline). ``PipelineWorker.__init__``'s other steps import the ``PIPELINE_TASKS`` modules and
open the pipeline's result store, which none of their tests use; its defaults are repeated here.

``--compat-side=stock`` leaves RQ as it is. Either side talks to the run's private redis-server:
RQ's tests connect to ``localhost:6379`` (databases 4 to 16), which ``sitecustomize`` beside this
file redirects, in the test process and in the ``rqworker`` subprocesses some tests start.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
import rq
import rq.worker
from rq.defaults import DEFAULT_JOB_CLASS, DEFAULT_MAINTENANCE_TASK_INTERVAL
from rq.job import Job

#: PipelineJob's properties that refuse names outside the pipeline's tasks: RQ's own on our side.
LIFTED = ("func", "success_callback", "failure_callback", "stopped_callback")
#: Where RQ's tests and CLI find the two worker classes.
SWAPPED = ((rq, "Worker"), (rq, "SimpleWorker"), (rq.worker, "Worker"), (rq.worker, "SimpleWorker"))


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--compat-side") == "ours":
        worker_class = compat_worker_class()
        for module, name in SWAPPED:
            setattr(module, name, worker_class)


def pytest_report_header(config: pytest.Config) -> str:
    return f"compat: RQ's suite on the {config.getoption('--compat-side')} worker"


def compat_worker_class() -> type[Any]:
    """``PipelineWorker`` with their serializer and their functions (imported only on our side:
    ``rq_impl`` checks the RQ release when imported)."""
    from rq_impl.job import PipelineJob
    from rq_impl.lifecycle import LeanLifecycle
    from rq_impl.worker import MAINTENANCE_SECONDS, PipelineWorker

    class CompatJob(PipelineJob):
        """``PipelineJob`` (cheaper to build, same records) running any importable function and
        callback, as RQ's ``Job`` does."""

    for name in LIFTED:  # RQ's own properties, in place of PipelineJob's allow-list checks
        setattr(CompatJob, name, getattr(Job, name))

    class CompatWorker(PipelineWorker):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # PipelineWorker.__init__'s defaults (CLI flags still win), without forcing JSON
            # and PipelineJob on the test's queues and jobs.
            interval = kwargs.get("maintenance_interval", DEFAULT_MAINTENANCE_TASK_INTERVAL)
            if interval == DEFAULT_MAINTENANCE_TASK_INTERVAL:
                kwargs["maintenance_interval"] = MAINTENANCE_SECONDS
            if kwargs.get("job_class") in (None, DEFAULT_JOB_CLASS, Job):
                kwargs["job_class"] = CompatJob
            LeanLifecycle.__init__(self, *args, **kwargs)

    # Importable by name as RQ's CLI and registries expect of a worker class: compat_rq.CompatWorker.
    for made in (CompatJob, CompatWorker):
        made.__qualname__ = made.__name__
        setattr(sys.modules[__name__], made.__name__, made)
    return CompatWorker
