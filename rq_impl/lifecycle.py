"""A leaner job lifecycle for ``SimpleWorker``: RQ's writes, in fewer round trips.

Stock RQ 3.0 spends about eleven sequential round trips of bookkeeping on every job (measured
with ``MONITOR``, see docs/performance.md): the execution record and the job's "started" state
in two separate transactions, a lone ``HSET`` for the job's last heartbeat when it ends, a
``WATCH`` + ``SMEMBERS`` of its dependents before the success transaction, the worker's
``idle`` state twice, and a suspension check (heartbeat + ``EXISTS``) between every two jobs.
This class writes the same keys with the same values, so ``rq info``, the registries, abandoned
job recovery and our ops commands read what they always read, in two transactions per job:

- start: execution record, started registry, worker ``busy``, job ``started``, out of the
  intermediate queue: one ``MULTI`` (also atomic now, where RQ used two);
- success: counters, job ``finished`` with its end time and last heartbeat, result, finished
  registry, execution removed, worker ``idle``, plus a look at the job's dependents *inside*
  the transaction: a dependent registered after it sees the job finished and enqueues itself,
  one registered before is found here and released by RQ's own ``enqueue_dependents``.

Failures, retries and repeats keep RQ's code paths: they are rare and not worth a copy.
"""

from __future__ import annotations

import math
import time
from typing import Any

import redis
from redis.client import Pipeline
from rq.exceptions import DequeueTimeout
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.rate_limit import release_slot
from rq.utils import now
from rq.worker import SimpleWorker, WorkerStatus

#: `rq suspend` is honoured within this many seconds while jobs keep coming (RQ checks, with a
#: round trip, between every two jobs; an idle worker is not affected either way).
SUSPENSION_CHECK_SECONDS = 1.0


class LeanLifecycle(SimpleWorker):
    """``SimpleWorker`` with RQ's per-job writes folded into two transactions."""

    _start_pipe: Pipeline | None = None
    _suspension_checked_at: float = -math.inf

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        self.perform_job(job, queue, execution)
        if self.get_state() != WorkerStatus.IDLE:  # the success transaction already wrote it
            self.set_state(WorkerStatus.IDLE)

    def prepare_execution(self, job: Job) -> Execution:
        # Queued here, sent with prepare_job_execution's writes: one transaction, not two.
        pipe = self.connection.pipeline()
        execution = Execution.create(job, self.get_heartbeat_ttl(job), pipeline=pipe, worker_name=self.name)
        self.executions[execution.id] = execution
        self.set_state(WorkerStatus.BUSY, pipeline=pipe)
        self._start_pipe = pipe
        return execution

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        pipe, self._start_pipe = self._start_pipe, None
        if pipe is None:  # called outside execute_job
            pipe = self.connection.pipeline()
        with pipe:
            self.heartbeat(self.get_heartbeat_ttl(job), pipeline=pipe)
            job.prepare_for_execution(self.name, pipeline=pipe)  # also sets last_heartbeat
            pipe.persist(job.key)
            if remove_from_intermediate_queue:
                pipe.lrem(Queue(job.origin, connection=self.connection).intermediate_queue_key, 1, job.id)
            pipe.execute()
        self.procline(f"Processing {job.func_name} from {job.origin} since {time.time()}")

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        # On success the job hash is saved whole right after, last_heartbeat included.
        if job.get_status(refresh=False) == JobStatus.FAILED:
            super().handle_execution_ended(job, queue, heartbeat_ttl)
            return
        job.ended_at = job.last_heartbeat = now()

    def handle_job_success(
        self, job: Job, queue: Queue, started_job_registry: Any, execution: Execution
    ) -> None:
        if job.repeats_left is not None and job.repeats_left > 0:
            super().handle_job_success(job, queue, started_job_registry, execution)
            return
        assert job.started_at is not None and job.ended_at is not None
        with self.connection.pipeline() as pipe:
            self.increment_successful_job_count(pipeline=pipe)
            self.increment_total_working_time(job.ended_at - job.started_at, pipe)
            result_ttl = job.get_result_ttl(self.default_result_ttl)
            if result_ttl != 0:
                job._handle_success(
                    result_ttl,
                    pipeline=pipe,
                    worker_name=self.name,
                    execution_id=execution.id,
                    execution_started_at=execution.created_at,
                    execution_ended_at=job.ended_at,
                )
            dependents_at = len(pipe.command_stack)
            pipe.exists(job.dependents_key)  # before cleanup: result_ttl=0 deletes the set
            job.cleanup(result_ttl, pipeline=pipe, remove_from_queue=False)
            job._status = JobStatus.FINISHED
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            self.set_state(WorkerStatus.IDLE, pipeline=pipe)
            has_dependents = pipe.execute()[dependents_at]
        if has_dependents:
            queue.enqueue_dependents(job)
        release_slot(job)
        self.log.info(
            "Successfully completed job %s in %ss on worker %s",
            job.id,
            job.ended_at - job.started_at,
            self.name,
        )

    def check_for_suspension(self, burst: bool) -> None:
        if not burst and time.monotonic() - self._suspension_checked_at < SUSPENSION_CHECK_SECONDS:
            return
        self._suspension_checked_at = time.monotonic()
        super().check_for_suspension(burst)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """RQ's loop, without re-sending an ``idle`` state the success transaction just wrote."""
        if self.get_state() != WorkerStatus.IDLE:
            self.set_state(WorkerStatus.IDLE)
        self.procline("Listening on " + ",".join(self.queue_names()))
        connection_wait_time = 1.0
        idle_since = now()
        idle_time_left = max_idle_time
        result = None
        while True:
            try:
                self.heartbeat()
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()
                if timeout is not None and idle_time_left is not None:
                    timeout = min(timeout, idle_time_left)
                result = self.queue_class.dequeue_any(
                    self._ordered_queues,
                    timeout,
                    connection=self.connection,
                    job_class=self.job_class,
                    serializer=self.serializer,
                    death_penalty_class=self.death_penalty_class,
                )
                if result is not None:
                    job, queue = result
                    self.reorder_queues(reference_queue=queue)
                    job.redis_server_version = self.get_redis_server_version()
                    self.log.info("Worker %s: %s: %s", self.name, queue.name, job.id)
                break
            except DequeueTimeout:
                if max_idle_time is not None:
                    idle_time_left = math.ceil(max_idle_time - (now() - idle_since).total_seconds())
                    if idle_time_left <= 0:
                        break
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as err:
                self.log.error(
                    "Worker %s: could not connect to Redis: %s; retrying in %d s",
                    self.name,
                    err,
                    connection_wait_time,
                )
                time.sleep(connection_wait_time)
                connection_wait_time = min(
                    connection_wait_time * self.exponential_backoff_factor, self.max_connection_wait_time
                )
        self.heartbeat()
        return result
