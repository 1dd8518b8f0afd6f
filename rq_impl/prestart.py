"""Fetch a woken worker's job and start it in one round trip instead of two.

After ``BLMOVE`` hands an idle worker a job id, RQ reads the job (``HGETALL``), then writes its
start (execution record, registries, states) in a second round trip, because the start's TTLs
come from the job's timeout. Jobs of one queue nearly always share a timeout, so this sends the
read and the start together in one ``MULTI`` with the TTLs of the queue's previous job, then
checks: another timeout rewrites the TTL-bearing records (a second round trip, as RQ would
have had anyway); an id whose job hash is gone has its stray writes removed and is skipped,
as RQ skips it. Every write is RQ's own call on a pipeline, so the records are RQ's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rq.executions import Execution, ExecutionRegistry
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.utils import as_text
from rq.worker import WorkerStatus

if TYPE_CHECKING:
    from rq_impl.lifecycle import LeanLifecycle


def fetch_and_start(
    worker: LeanLifecycle, queue: Queue, job_id: str, ttl: int
) -> tuple[Job, Execution] | None:
    """Read and start ``job_id`` in one transaction; None if its hash is gone (cleaned up)."""
    job = worker.job_class(job_id, connection=worker.connection, serializer=worker.serializer)
    job.origin = queue.name
    with worker.connection.pipeline() as pipe:
        pipe.hgetall(job.key)
        execution = Execution.create(job, ttl, pipeline=pipe, worker_name=worker.name)
        worker.set_state(WorkerStatus.BUSY, pipeline=pipe)
        worker.heartbeat(ttl, pipeline=pipe)
        job.prepare_for_execution(worker.name, pipeline=pipe)
        pipe.persist(job.key)
        pipe.lrem(queue.intermediate_queue_key, 1, job.id)
        data = pipe.execute()[0]
        if not data:  # a stale id: take back what the start wrote
            pipe.delete(job.key)
            execution.delete(job, pipe)
            worker.set_state(WorkerStatus.IDLE, pipeline=pipe)
            pipe.execute()
            return None
    started = job.worker_name, job.started_at, job.last_heartbeat
    job.restore(data)
    job.worker_name, job.started_at, job.last_heartbeat = started
    job._status = JobStatus.STARTED
    worker.executions[execution.id] = execution
    if (actual := worker.get_heartbeat_ttl(job)) != ttl:
        restamp(worker, job, execution, actual)
    return job, execution


def restamp(worker: LeanLifecycle, job: Job, execution: Execution, ttl: int) -> None:
    """Rewrite the TTL-bearing start records (Execution.create's writes) with ``ttl``."""
    with worker.connection.pipeline() as pipe:
        execution.save(ttl=ttl, pipeline=pipe)
        ExecutionRegistry(job_id=job.id, connection=pipe).add(execution=execution, ttl=ttl, pipeline=pipe)
        job.started_job_registry.add_execution(execution, pipeline=pipe, ttl=ttl, xx=False)
        pipe.expire(execution.worker_executions_key, ttl + 60)
        worker.heartbeat(ttl, pipeline=pipe)
        pipe.execute()


def dequeue_and_start(worker: LeanLifecycle, timeout: int | None) -> tuple[Job, Queue] | None:
    """RQ's single-queue dequeue (BLMOVE to the intermediate queue), then fetch_and_start once
    the queue's timeout is known; raises DequeueTimeout as RQ's does."""
    queue_class = worker.queue_class
    while True:
        moved = queue_class.lmove(worker.connection, worker._ordered_queues[0].key, timeout)
        if moved is None:
            return None
        queue_key, job_id = as_text(moved[0]), as_text(moved[1])
        queue = queue_class.from_queue_key(
            queue_key,
            connection=worker.connection,
            job_class=worker.job_class,
            serializer=worker.serializer,
            death_penalty_class=worker.death_penalty_class,
        )
        ttl = worker._ttl_guess.get(queue_key)
        if ttl is None:  # first job of this queue: RQ's way, and learn its TTL
            fetched = queue_class._fetch_dequeued_job(
                worker.connection,
                queue_key,
                job_id,
                worker.job_class,
                worker.serializer,
                worker.death_penalty_class,
            )
            if fetched is None:
                continue
            return fetched
        started = fetch_and_start(worker, queue, job_id, ttl)
        if started is None:
            continue
        job, worker._prestarted = started
        return job, queue
