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

Under load a third round trip goes too: the success transaction also claims the next job
(``LMOVE`` to the intermediate queue + ``HGETALL``, one script: what RQ's ``BLMOVE`` and
``Job.fetch`` do in two). The claim is skipped when a stop was requested or maintenance is due,
so a claimed job waits microseconds, as after RQ's ``BLMOVE``; a worker that stops holding one
hands it back to the head of its queue (``teardown``); one killed holding it leaves it in the
intermediate queue, where maintenance finds it as it finds one left by ``BLMOVE``.

A worker woken by ``BLMOVE`` reads its job and starts it in one transaction (rq_impl.prestart).

Failures, retries and repeats keep RQ's code paths: they are rare and not worth a copy.
"""

from __future__ import annotations

import contextlib
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

from rq_impl.prestart import dequeue_and_start

#: `rq suspend` is honoured within this many seconds while jobs keep coming (RQ checks, with a
#: round trip, between every two jobs; an idle worker is not affected either way).
SUSPENSION_CHECK_SECONDS = 1.0

#: KEYS: queue, its intermediate queue; ARGV: job key prefix. Non-blocking, so it may run inside
#: a MULTI; returns false or {id, flat job hash}.
CLAIM_SCRIPT = """
local id = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
if not id then return false end
return {id, redis.call('HGETALL', ARGV[1] .. id)}
"""


class LeanLifecycle(SimpleWorker):
    """``SimpleWorker`` with RQ's per-job writes folded into two transactions."""

    _start_pipe: Pipeline | None = None
    _suspension_checked_at: float = -math.inf
    #: A job claimed by the last success transaction: (queue, id, raw job hash).
    _claimed: tuple[Queue, str, dict[bytes, bytes]] | None = None
    #: The execution of a job the dequeue already started (rq_impl.prestart).
    _prestarted: Execution | None = None
    _prestarted_id: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Queue key -> heartbeat TTL of its last job: what prestart assumes for the next one.
        self._ttl_guess: dict[str, int] = {}

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        self.perform_job(job, queue, execution)
        if self.get_state() != WorkerStatus.IDLE:  # the success transaction already wrote it
            self.set_state(WorkerStatus.IDLE)

    def prepare_execution(self, job: Job) -> Execution:
        started, self._prestarted = self._prestarted, None
        if started is not None and started.job_id == job.id:
            self._prestarted_id = job.id
            return started
        # Queued here, sent with prepare_job_execution's writes: one transaction, not two.
        pipe = self.connection.pipeline()
        ttl = self.get_heartbeat_ttl(job)
        self._ttl_guess[self.queue_class.redis_queue_namespace_prefix + job.origin] = ttl
        execution = Execution.create(job, ttl, pipeline=pipe, worker_name=self.name)
        self.executions[execution.id] = execution
        self.set_state(WorkerStatus.BUSY, pipeline=pipe)
        self._start_pipe = pipe
        return execution

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        if self._prestarted_id == job.id:  # started with its fetch
            self._prestarted_id = None
            self.procline(f"Processing {job.func_name} from {job.origin} since {time.time()}")
            return
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
            claiming = self._may_claim()
            if claiming:
                self._queue_claim(pipe)
            results = pipe.execute()
        if claiming:
            self._keep_claim(results[-1])
        if results[dependents_at]:
            queue.enqueue_dependents(job)
        release_slot(job)
        self.log.info(
            "Successfully completed job %s in %ss on worker %s",
            job.id,
            job.ended_at - job.started_at,
            self.name,
        )

    def _may_claim(self) -> bool:
        """Claim ahead only where RQ itself uses BLMOVE (one queue), and only when the next
        loop turn goes straight to the dequeue."""
        return (
            self._single_queue()
            and not self._stop_requested
            and self._claimed is None
            and not self.should_run_maintenance_tasks
            and time.monotonic() - self._suspension_checked_at < SUSPENSION_CHECK_SECONDS
        )

    def _queue_claim(self, pipe: Pipeline) -> None:
        queue = self._ordered_queues[0]
        keys = (queue.key, queue.intermediate_queue_key)
        pipe.eval(CLAIM_SCRIPT, 2, *keys, self.job_class.redis_job_namespace_prefix)

    def _keep_claim(self, reply: Any) -> None:
        if not reply:
            return
        job_id, flat = reply
        job_id = job_id.decode() if isinstance(job_id, bytes) else job_id
        self._claimed = (self._ordered_queues[0], job_id, dict(zip(flat[::2], flat[1::2], strict=True)))

    def _take_claim(self) -> tuple[Job, Queue] | None:
        """The claimed job as RQ's dequeue_any returns it (None if its hash was gone: RQ skips
        such an id too, and leaves it to the intermediate queue's cleanup)."""
        claimed, self._claimed = self._claimed, None
        if claimed is None:
            return None
        queue, job_id, data = claimed
        if not data:
            return None
        queue = self.queue_class.from_queue_key(
            queue.key,
            connection=self.connection,
            job_class=self.job_class,
            serializer=self.serializer,
            death_penalty_class=self.death_penalty_class,
        )
        job = self.job_class(job_id, connection=self.connection, serializer=self.serializer)
        job.restore(data)
        return job, queue

    def _single_queue(self) -> bool:
        """Where RQ itself dequeues with (B)LMOVE through the intermediate queue."""
        return len(self._ordered_queues) == 1 and self.get_redis_server_version() >= (6, 2, 0)

    def _dequeue(self, timeout: int | None) -> tuple[Job, Queue] | None:
        if self._single_queue():
            return dequeue_and_start(self, timeout)
        return self.queue_class.dequeue_any(
            self._ordered_queues,
            timeout,
            connection=self.connection,
            job_class=self.job_class,
            serializer=self.serializer,
            death_penalty_class=self.death_penalty_class,
        )

    def teardown(self) -> None:
        # Stopping while holding a claimed job: give it back, to the head of its queue.
        if self._claimed is not None:
            queue, job_id, _ = self._claimed
            with self.connection.pipeline() as pipe:
                pipe.lrem(queue.intermediate_queue_key, 1, job_id)
                pipe.lpush(queue.key, job_id)
                pipe.execute()
            self._claimed = None
        super().teardown()

    def check_for_suspension(self, burst: bool) -> None:
        # A claimed job runs first (it became due in between; the next turn checks).
        if self._claimed is not None:
            return
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
                result = self._take_claim() if self._claimed is not None else None
                result = result or self._dequeue(timeout)
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
                # A start that failed half-way (prestart) left this worker "busy": a busy worker
                # ignores a stop request until its job ends, and there is no job.
                with contextlib.suppress(redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                    if self.get_state() != WorkerStatus.IDLE:
                        self.set_state(WorkerStatus.IDLE)  # sets the local state first
                connection_wait_time = min(
                    connection_wait_time * self.exponential_backoff_factor, self.max_connection_wait_time
                )
        if result is None:
            # Holding a job, no heartbeat here: PipelineWorker's raises StopRequested when a
            # stop came in during BLMOVE, which would strand the job in the intermediate queue.
            # The job's start carries a heartbeat; the stop is honoured right after the job.
            self.heartbeat()
        return result
