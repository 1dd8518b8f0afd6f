"""Which of Dramatiq's and RQ's own test files ``make compat`` runs, and why the others are left out.

Every test file of a release's sdist is in one of the two lists of its suite: ``run`` (on the stock
side and on ours) or ``not_run`` (with the reason). A file in neither (a new release added one)
stops the run until it is placed, so a new test file is never silently skipped nor silently run.

Dramatiq: ``tests/test_redis.py`` drives a Redis broker and workers; the files of actors,
retries, time limits, callbacks, pipelines, groups and results are written against its in-memory
StubBroker, and run here with their ``stub_broker`` fixture bound to the side's Redis broker
(``plugins/compat_dramatiq.py``; their StubBroker-only checks, ``join(fail_fast=...)``,
``broker.queues[...]``, ``dead_letters``, fail on both sides alike). Left
out: other brokers (RabbitMQ), rate-limiter backends, the CLI's process management, the
StubBroker's own tests, and files with no broker.

RQ: the files whose tests build a ``Worker`` or ``SimpleWorker`` (or run ``rq worker``, whose
default class is ``rq.Worker``), which is what our side replaces; a file that builds none runs the
same code on both sides and only costs time. RQ's ``@slow`` tests stay skipped, as RQ itself runs
them only with ``RUN_SLOW_TESTS_TOO`` (they would add about two minutes to each side).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

_NO_WORKER = "builds no Worker or SimpleWorker: the same code runs on both sides"


@dataclass(frozen=True)
class Suite:
    """One library's test suite: the distribution whose sdist holds it, and how to run it."""

    name: str
    #: The pytest plugin that swaps our broker/worker in (tests/compat/plugins), besides compat_record.
    plugin: str
    run: tuple[str, ...]
    not_run: Mapping[str, str]
    #: Extra pytest arguments for both sides.
    pytest_args: tuple[str, ...] = ()
    #: Environment variables for both sides.
    env: Mapping[str, str] = field(default_factory=dict)


DRAMATIQ = Suite(
    name="dramatiq",
    plugin="compat_dramatiq",
    run=(
        "tests/test_redis.py",
        # Written for the StubBroker; run on the side's Redis broker (compat_dramatiq).
        "tests/test_actors.py",
        "tests/test_callbacks.py",
        "tests/test_composition.py",
        "tests/test_encoders.py",
        "tests/test_generic_actors.py",
        "tests/test_messages.py",
        "tests/test_results.py",
        "tests/test_worker.py",
    ),
    not_run={
        "tests/test_rabbitmq.py": "RabbitMQ broker (pika, a RabbitMQ server)",
        "tests/test_broker.py": "broker selection and middleware on StubBroker and RabbitmqBroker (pika)",
        "tests/test_stub_broker.py": "the StubBroker's own behaviour (its queues, dead letters, join)",
        "tests/test_barrier.py": "rate-limiter backends (memcached, Redis): not our broker",
        "tests/test_bucket_rate_limiter.py": "rate-limiter backends (memcached, Redis): not our broker",
        "tests/test_concurrent_rate_limiter.py": "rate-limiter backends (memcached, Redis): not our broker",
        "tests/test_window_rate_limiter.py": "rate-limiter backends (memcached, Redis): not our broker",
        "tests/test_cli.py": "the dramatiq CLI's process management (its broker module, in a subprocess)",
        "tests/test_pidfile.py": "the dramatiq CLI's pid file, in a subprocess",
        "tests/test_watch.py": "the dramatiq CLI's --watch (watchdog), in a subprocess",
        "tests/test_canteen.py": "no broker",
        "tests/test_common.py": "no broker",
        "tests/test_types.py": "no broker (type checks only)",
    },
    # The sdist has neither tests/__init__.py nor the conftest.py and common.py its tests import
    # (compat_dramatiq provides those); its addopts ask for pytest-cov.
    pytest_args=("--import-mode=importlib", "-o", "addopts="),
)

RQ = Suite(
    name="rq",
    plugin="compat_rq",
    run=tuple(
        f"tests/test_{name}.py"
        for name in (
            "callbacks",
            "cli",
            "commands",
            "decorator",
            "dependencies",
            "executions",
            "group",
            "intermediate_queue",
            "job",
            "job_dependency",
            "queue",
            "rate_limit",
            "registry",
            "repeat",
            "results",
            "retry",
            "scheduler",
            "timeouts",
            "webhooks",
            "worker",
            "worker_registration",
        )
    ),
    not_run={
        "tests/test_connection.py": _NO_WORKER,
        "tests/test_cron.py": _NO_WORKER + " (the cron scheduler)",
        "tests/test_cron_job.py": _NO_WORKER,
        "tests/test_cron_job_registry.py": _NO_WORKER,
        "tests/test_cron_scheduler_registry.py": _NO_WORKER,
        "tests/test_fixtures.py": _NO_WORKER,
        "tests/test_helpers.py": _NO_WORKER,
        "tests/test_job_lifecycle.py": _NO_WORKER + " (exception-handler helpers)",
        "tests/test_key_prefix.py": _NO_WORKER + " (RQ_KEY_PREFIX at import, in subprocesses)",
        "tests/test_queue_unique.py": _NO_WORKER,
        "tests/test_scripts.py": _NO_WORKER + " (RQ's Lua scripts)",
        "tests/test_serializers.py": _NO_WORKER,
        "tests/test_utils.py": _NO_WORKER + " (imports worker classes by name only)",
        "tests/test_spawn_worker.py": "SpawnWorker: another kind of worker, not replaced",
        "tests/test_worker_pool.py": "WorkerPool: starts workers of its own class, not replaced",
    },
)

SUITES: dict[str, Suite] = {suite.name: suite for suite in (DRAMATIQ, RQ)}
