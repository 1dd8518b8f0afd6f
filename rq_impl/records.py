"""RQ's per-job records, written by two Lua scripts: a woken worker's claim and start of a job,
and a job's success with the claim and start of the next.

RQ builds these records in Python, a few dozen objects and commands per job (a ``Queue``, three
registries, an ``Execution``, a ``Result``, the whole job hash saved again). Here each transition
is one script call holding the same keys with the same values, so everything that reads them
(``rq info``, the registries, ``Job.fetch().get_status()``, ``latest_result()``, abandoned-job
detection, worker statistics) reads what RQ's own worker leaves; ``tests/test_rq_records.py``
checks that against RQ's readers. The layout copied is RQ 3.0's:

- start (``prepare_execution`` + ``prepare_job_execution``): the execution hash
  ``rq:execution:<job>:<execution>``, the job's execution registry ``rq:executions:<job>``,
  the started registry ``rq:wip:<queue>``, the worker's executions set, the worker's state,
  heartbeat and TTL, the job's ``started`` status, ``started_at``, ``worker_name``;
- success (``handle_job_success``): worker counters, the job's ``finished`` status and times,
  its result stream ``rq:results:<job>``, the finished registry, the job's TTL, and the
  execution records removed.

``finish`` also writes what the job held back (``rq_impl.outbox``: results to store, and commands
such as an enqueue's, replayed by the script), and, asked to, claims the next job of the
worker's queues and starts it (``LPOP`` and start in one atomic script, so no intermediate queue
is needed): under load, one round trip per job. It claims nothing while ``rq suspend`` is in
force, as RQ checks before every dequeue. An idle worker's claim (``CLAIM``, sent behind its
wait: ``rq_impl.prestart``) starts the job the wait moved into the worker's hold list; it does
not look at the suspension, as RQ's own idle worker does not while it waits (RQ checks between
jobs).
The start's TTL is the job's timeout (the worker's fallback if it has none) plus the worker's
grace: the formula of ``LeanLifecycle.get_heartbeat_ttl``.

The scripts are written with RQ's default prefix ``rq:``; under ``RQ_KEY_PREFIX`` (RQ 3.0 reads it
at import, and allows only ``[A-Za-z0-9_.:{}-]``, nothing a Lua string could mind) ``keyed`` puts
their keys where RQ's own code puts them. A job, queue or worker class with a key prefix of its
own is refused at worker start (``LeanLifecycle``): RQ's registries, results and executions would not
follow it either. The scripts themselves are in ``rq_impl.record_scripts``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from redis import Redis
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job, JobStatus
from rq.utils import now, utcformat
from rq.worker import WorkerStatus

from rq_impl.record_scripts import CLAIM, CLAIM_NEXT, FINISH
from shared import replication
from shared.direct import call_script, call_script_after, call_scripts
from shared.store import ScriptRow

if TYPE_CHECKING:
    from rq_impl.lifecycle import LeanLifecycle


@dataclass(frozen=True)
class Stamp:
    """What a start records that Python chooses: the execution id and the time."""

    execution_id: str
    at: datetime

    @classmethod
    def new(cls) -> Stamp:
        return cls(uuid.uuid4().hex, now())

    def args(self, worker: LeanLifecycle) -> tuple[Any, ...]:
        return (self.execution_id, utcformat(self.at), self.at.timestamp(), *worker.start_ttl_terms())


@dataclass
class Claim:
    """A job the success script claimed and started for this worker, as Redis returned it."""

    queue_name: str
    job_id: str
    flat: list[bytes]
    ttl: int
    stamp: Stamp


class Scripts:
    """The scripts (EVALSHA, loaded again after a Redis restart emptied the script cache), on
    a connection of the worker's pool kept for them and called through ``shared.direct``: one call
    per job then skips redis-py's pool checkout, stale-connection poll, release and per-command
    machinery (together ~40 % of a hop's Python in the latency run; see docs/performance.md)."""

    def __init__(self, connection: Redis) -> None:
        self.client = type(connection)(
            connection_pool=connection.connection_pool, single_connection_client=True
        )
        self._claim = self.client.register_script(CLAIM)
        self._finish = self.client.register_script(FINISH)
        self._claim_next = self.client.register_script(CLAIM_NEXT)
        #: Replicas that must hold a success before it counts as written (``shared.replication``).
        #: Resent after a short ``WAIT``, a success's claim returns the job it claimed the first time.
        self.replicas = replication.min_replicas()

    def claim(self, args: Sequence[Any], first: Sequence[Any] | None) -> tuple[Any, Any]:
        return call_script_after(self.client, first, self._claim, (), args)

    def finish(self, args: Sequence[Any]) -> Any:
        return call_script(self.client, self._finish, (), args, replicas=self.replicas)

    def finish_many(self, calls: Sequence[Sequence[Any]]) -> list[Any]:
        return call_scripts(self.client, self._finish, [((), args) for args in calls], replicas=self.replicas)

    def claim_next(self, args: Sequence[Any]) -> Any:
        return call_script(self.client, self._claim_next, (), args)


def worker_args(worker: LeanLifecycle) -> tuple[Any, ...]:
    return worker.key, worker.name, int(time.time())  # RQ's registry scores: whole seconds


def started(
    worker: LeanLifecycle, job_id: str, flat: list[bytes], ttl: int, stamp: Stamp
) -> tuple[Job, Execution]:
    """The Job and Execution a script started, as RQ's own start leaves them in memory."""
    job = worker.job_class(job_id, connection=worker.connection, serializer=worker.serializer)
    job.restore(dict(zip(flat[::2], flat[1::2], strict=True)))
    job.worker_name, job.started_at, job.last_heartbeat = worker.name, stamp.at, stamp.at
    job._status = JobStatus.STARTED
    execution = Execution(stamp.execution_id, job_id, worker.connection, worker.name)
    execution.created_at = execution.last_heartbeat = stamp.at
    execution._job = job
    worker.executions[execution.id] = execution
    worker.last_heartbeat = stamp.at
    worker._state = WorkerStatus.BUSY
    if (actual := worker.get_heartbeat_ttl(job)) != ttl:  # a subclass's own rule: its TTLs
        restamp(worker, job, execution, actual)
    return job, execution


def claim_args(worker: LeanLifecycle, queue_names: list[str]) -> tuple[list[Any], Stamp | None]:
    """``claim``'s arguments: the queues, then a new stamp if there are any."""
    if not queue_names:
        return [0], None
    stamp = Stamp.new()
    return [len(queue_names), *queue_names, *stamp.args(worker)], stamp


def parse_claim(reply: Any, stamp: Stamp | None) -> Claim | None:
    """The job a script's ``claim`` returned, if any, with the stamp its arguments carried."""
    if not reply or stamp is None:
        return None
    queue_name, job_id, flat, ttl = reply
    return Claim(queue_name.decode(), job_id.decode(), flat, int(ttl), stamp)


#: ``success_args``' arguments after the worker: job, execution, result TTL, return value, rows, commands.
Success = tuple[Job, Execution, int, str, list[ScriptRow], list[tuple[Any, ...]]]


def finish(worker: LeanLifecycle, success: Success, claim_from: list[str]) -> tuple[str | None, Claim | None]:
    """Write a job's success with what it held back (its rows to store, its commands such as an
    enqueue's), and claim and start the next job of ``claim_from`` if any; returns (None if the
    job has no dependents, else its status before this success, the job claimed)."""
    claiming, stamp = claim_args(worker, claim_from)
    reply = worker.scripts.finish([*success_args(worker, *success), *claiming])
    return (reply[0].decode() or None), parse_claim(reply[1:], stamp)


def finish_many(worker: LeanLifecycle, successes: Sequence[Success]) -> list[str | Exception | None]:
    """``finish`` without a claim for each of ``successes`` (``success_args``' arguments after the
    worker), every script call in one round trip (``rq_impl.store_batch``): each job's parent
    status as ``finish`` returns it, or the error that stopped its script."""
    replies = worker.scripts.finish_many([[*success_args(worker, *success), 0] for success in successes])
    return [reply if isinstance(reply, Exception) else (reply[0].decode() or None) for reply in replies]


def success_args(
    worker: LeanLifecycle,
    job: Job,
    execution: Execution,
    result_ttl: int,
    return_value: str,
    rows: list[ScriptRow],
    commands: list[tuple[Any, ...]],
) -> list[Any]:
    """``FINISH``'s arguments up to the claim's."""
    assert job.started_at is not None and job.ended_at is not None
    args: list[Any] = [
        *worker_args(worker),
        job.origin,
        job.id,
        execution.id,
        utcformat(job.started_at),
        utcformat(job.ended_at),
        execution.created_at.timestamp(),
        job.ended_at.timestamp(),
        (job.ended_at - job.started_at).total_seconds(),
        result_ttl,
        return_value,
        "1" if job._dependency_ids else "",
        len(rows),
    ]
    for row in rows:
        args.extend(row)
    args.append(len(commands))
    for command in commands:
        args.append(len(command))
        args.extend(command)
    return args


def claim_next(worker: LeanLifecycle, queue_names: list[str]) -> Claim | None:
    """Claim and start the next job of ``queue_names`` if one is waiting (never blocks)."""
    claiming, stamp = claim_args(worker, queue_names)
    if stamp is None:
        return None
    return parse_claim(worker.scripts.claim_next([*worker_args(worker), *claiming]), stamp)


def restamp(worker: LeanLifecycle, job: Job, execution: Execution, ttl: int) -> None:
    """Rewrite the TTL-bearing start records with ``ttl``, through RQ's own calls."""
    with worker.connection.pipeline() as pipe:
        execution.save(ttl=ttl, pipeline=pipe)
        ExecutionRegistry(job_id=job.id, connection=pipe).add(execution=execution, ttl=ttl, pipeline=pipe)
        job.started_job_registry.add_execution(execution, pipeline=pipe, ttl=ttl, xx=False)
        pipe.expire(execution.worker_executions_key, ttl + 60)
        worker.heartbeat(ttl, pipeline=pipe)
        pipe.execute()
