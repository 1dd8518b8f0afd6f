"""A leaner job lifecycle for ``SimpleWorker``: RQ's records, one round trip per job under load.

Stock RQ 3.0 spends about eleven sequential round trips of bookkeeping on every job (measured
with ``MONITOR``, see docs/performance.md), and builds its records in Python. This class writes
the same keys with the same values (``rq_impl.records``), so ``rq info``, the registries,
abandoned-job recovery and our ops commands read what they always read:

- an idle worker is woken, and claims and starts its job, in one round trip
  (``rq_impl.prestart``);
- a job's success is one script call (``records.finish``) that also writes what the job held
  back while it ran (``rq_impl.outbox``: its stored result, or the writes of the job it
  enqueued) and claims and starts the next job of the worker's queues;
- a job whose rows go to a store other than Redis (SQL) has its success held while the next
  job is already waiting, so a backlog is committed in one statement (``rq_impl.store_batch``);
- ``execute_job`` then runs that job at once, and so on while jobs keep coming: a started job is
  never held across the work loop's stop, suspension and maintenance checks, because the claim
  is skipped when one of them is due (a stop requested, maintenance due, ``--max-jobs`` set;
  the script itself claims nothing while ``rq suspend`` is in force). A stop that arrives after
  a claim lets the claimed job finish first, as one arriving mid-job does.

Failures, retries, repeats, ``result_ttl <= 0`` and workers of several queues before their
first claim keep RQ's code paths: they are rare here and not worth a copy.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from base64 import b64encode
from typing import Any

import redis
from redis.client import Pipeline
from rq.defaults import UNSERIALIZABLE_RETURN_VALUE_PAYLOAD
from rq.exceptions import DequeueTimeout
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.rate_limit import release_slot
from rq.utils import now
from rq.worker import SimpleWorker, WorkerStatus

from rq_impl import outbox, record_scripts, records, store_batch
from rq_impl.alarm import StandingAlarm
from rq_impl.dependents import enqueue_dependents
from rq_impl.outbox import Outbox
from rq_impl.prestart import dequeue_and_start, sweep_holds
from rq_impl.store_batch import HeldSuccess
from shared import stopping
from shared.errors import config_error

#: `rq suspend` is honoured within this many seconds by a worker between two chains of jobs
#: (RQ checks, with a round trip, between every two jobs; the claim script checks it itself).
SUSPENSION_CHECK_SECONDS = 1.0


class LeanLifecycle(SimpleWorker):
    """``SimpleWorker`` with RQ's per-job records written by one script call per transition."""

    #: A job's start records live its timeout (this if it has none) plus this grace.
    heartbeat_grace = 60
    untimed_job_timeout = 420
    death_penalty_class = StandingAlarm

    _start_pipe: Pipeline | None = None
    _suspension_checked_at: float = -math.inf
    _claims_ahead = True
    #: The execution of a job a script already started.
    _prestarted: Execution | None = None
    #: A job the last success claimed and started, run next by execute_job.
    _held: records.Claim | None = None
    #: Successes held until their rows are stored with the next jobs' (``rq_impl.store_batch``).
    _successes: list[HeldSuccess]
    #: When the first of ``_successes`` was held.
    _holding_since = 0.0
    #: This worker's hold list is in its queue's set (``rq_impl.prestart``).
    hold_registered = False
    #: A hold list that keeps ids this long belongs to a dead worker (``prestart.sweep_holds``).
    hold_grace = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        prefixes = (
            self.queue_class.redis_queue_namespace_prefix,
            self.job_class.redis_job_namespace_prefix,
            self.redis_worker_namespace_prefix,
        )
        expected = record_scripts.KEY_PREFIXES
        if prefixes != expected:  # RQ_KEY_PREFIX is followed; a class's own is not
            raise config_error(
                f"{type(self).__name__} writes RQ's key layout under RQ_KEY_PREFIX {expected}, "
                f"not the queue/job/worker class prefixes {prefixes}: set RQ_KEY_PREFIX instead"
            )
        self.scripts = records.Scripts(self.connection)
        self._successes = []

    def work(self, *args: Any, **kwargs: Any) -> bool:
        # --max-jobs counts the loop's turns: every job must be one.
        self._claims_ahead = kwargs.get("max_jobs") is None
        return super().work(*args, **kwargs)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        timeout = job.timeout if job.timeout and job.timeout > 0 else self.untimed_job_timeout
        return int(timeout) + self.heartbeat_grace

    def start_ttl_terms(self) -> tuple[int, int]:
        """``get_heartbeat_ttl``'s terms, for the scripts that start jobs: (grace, fallback)."""
        return self.heartbeat_grace, self.untimed_job_timeout

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            while True:
                execution = self.prepare_execution(job)
                self.perform_job(job, queue, execution)
                held, self._held = self._held, None
                if held is None:
                    break
                # Built after the last job's success is handled: a job hash RQ cannot read stops
                # the worker as RQ's own fetch does, and never fails the job before it.
                job, self._prestarted = records.started(self, held.job_id, held.flat, held.ttl, held.stamp)
                queue = self._queue_named(held.queue_name)
                self.reorder_queues(reference_queue=queue)
                job.redis_server_version = self.get_redis_server_version()
                self._log_dequeued(queue, job)
        finally:
            self._release_held()
        if self.get_state() != WorkerStatus.IDLE:  # the success script already wrote it
            self.set_state(WorkerStatus.IDLE)

    def _log_dequeued(self, queue: Queue, job: Job) -> None:
        """RQ's line for a job taken off a queue: its description too, unless
        ``log_job_description`` is off (``rq worker --disable-job-desc-logging``)."""
        if self.log_job_description:
            self.log.info("Worker %s: %s: %s (%s)", self.name, queue.name, job.description, job.id)
        else:
            self.log.info("Worker %s: %s: %s", self.name, queue.name, job.id)

    def _queue_named(self, name: str) -> Queue:
        for queue in self.queues:
            if queue.name == name:
                return queue
        raise LookupError(f"claimed a job from {name!r}, not one of this worker's queues")

    def prepare_execution(self, job: Job) -> Execution:
        started, self._prestarted = self._prestarted, None
        if started is not None and started.job_id == job.id:
            return started
        # RQ's own start (a worker of several queues): queued here, sent with
        # prepare_job_execution's writes, one transaction instead of two.
        pipe = self.connection.pipeline()
        execution = Execution.create(job, self.get_heartbeat_ttl(job), pipeline=pipe, worker_name=self.name)
        self.executions[execution.id] = execution
        self.set_state(WorkerStatus.BUSY, pipeline=pipe)
        self._start_pipe = pipe
        return execution

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        pipe, self._start_pipe = self._start_pipe, None
        if pipe is not None:  # else a script started it
            with pipe:
                self.heartbeat(self.get_heartbeat_ttl(job), pipeline=pipe)
                job.prepare_for_execution(self.name, pipeline=pipe)  # also sets last_heartbeat
                pipe.persist(job.key)
                pipe.execute()
        outbox.close()  # a job prepared and never finished (RQ's tests do this) leaves nothing behind
        if self._lean_success(job):
            outbox.open_for(self.connection)
        self.procline(f"Processing {job.func_name} from {job.origin} since {time.time()}")

    def _lean_success(self, job: Job) -> bool:
        """Whether ``records.finish`` can write this job's success (else RQ's own code does)."""
        repeating = job.repeats_left is not None and job.repeats_left > 0
        return not repeating and job.get_result_ttl(self.default_result_ttl) > 0

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        # On success the finish script writes ended_at and last_heartbeat with the status.
        if job.get_status(refresh=False) == JobStatus.FAILED:
            super().handle_execution_ended(job, queue, heartbeat_ttl)
            return
        job.ended_at = job.last_heartbeat = now()

    def handle_job_success(
        self, job: Job, queue: Queue, started_job_registry: Any, execution: Execution
    ) -> None:
        box = outbox.close()
        if box is None:
            super().handle_job_success(job, queue, started_job_registry, execution)
            return
        if self._batches(box) or self._successes:
            if self._hold(job, queue, execution, box):
                return
            self._commit_held(box)
        self._finish(job, queue, execution, box, claim=True)

    def _batches(self, box: Outbox) -> bool:
        """Whether this success is worth holding for the next ones (``rq_impl.store_batch``): it
        has rows for a store other than Redis, or it must be confirmed on replicas (one ``WAIT``
        for the batch instead of one per job)."""
        return bool(box.stored) or self.scripts.replicas > 0

    def _hold(self, job: Job, queue: Queue, execution: Execution, box: Outbox) -> bool:
        """Hold this success for the next job's rows, if one is waiting (``rq_impl.store_batch``)."""
        if not self._batches(box) or len(self._successes) + 1 >= store_batch.MAX_JOBS:
            return False
        if self._successes and time.monotonic() - self._holding_since > store_batch.MAX_SECONDS:
            return False
        claim_from = self._claim_from()
        claimed = records.claim_next(self, claim_from) if claim_from else None
        if claimed is None and claim_from and self._successes:
            claimed = self._linger(claim_from)
        if claimed is None:
            return False
        if not self._successes:
            self._holding_since = time.monotonic()
        self._successes.append(HeldSuccess(job, queue, execution, box))
        self._held = claimed
        return True

    def _linger(self, claim_from: list[str]) -> records.Claim | None:
        """A batch is forming and the queue is empty for now: look again a few times, for at
        most ``store_batch.LINGER_SECONDS``, before committing it (``rq_impl.store_batch``)."""
        for _ in range(store_batch.LINGER_POLLS):
            time.sleep(store_batch.LINGER_SECONDS / store_batch.LINGER_POLLS)
            if (claimed := records.claim_next(self, claim_from)) is not None:
                return claimed
        return None

    def _commit_held(self, box: Outbox | None = None) -> None:
        """Store the held jobs' rows and ``box``'s, then record the held jobs' successes, all in
        one round trip; if the write fails, the held jobs fail with its error (and the caller's
        job with it); a job whose success script fails fails alone."""
        held, self._successes = self._successes, []
        try:
            store_batch.commit(held, box)
        except Exception:
            exc_info = sys.exc_info()
            for success in held:
                self._finalize_failure(success.job, success.queue, success.execution, exc_info)
            raise
        replies = records.finish_many(self, [self._success(s.job, s.execution, s.box) for s in held])
        for success, reply in zip(held, replies, strict=True):
            if isinstance(reply, Exception):
                error = (type(reply), reply, reply.__traceback__)
                self._finalize_failure(success.job, success.queue, success.execution, error)
            else:
                self._finished(success.job, success.queue, success.execution, reply)

    def _release_held(self) -> None:
        """Outside a success (a failure, a loop that stops): what is held is written now."""
        if self._successes:
            with contextlib.suppress(Exception):  # the held jobs have failed with the error
                self._commit_held()

    def _finish(self, job: Job, queue: Queue, execution: Execution, box: Outbox, claim: bool) -> None:
        """Record ``job``'s success with what it held back; with ``claim``, claim the next job."""
        claim_from = self._claim_from() if claim else []
        dependents, claimed = records.finish(self, self._success(job, execution, box), claim_from)
        if claim:
            self._held = claimed
            if claimed is None:
                self._state = WorkerStatus.IDLE  # written by the script
        self._finished(job, queue, execution, dependents)

    def _success(self, job: Job, execution: Execution, box: Outbox) -> records.Success:
        """``records.success_args``' arguments for ``job`` (after the worker)."""
        ttl = job.get_result_ttl(self.default_result_ttl)
        return job, execution, ttl, self._return_value(job), box.rows, box.commands()

    def _finished(self, job: Job, queue: Queue, execution: Execution, dependents: str | None) -> None:
        """What follows a success script in Python: the job's state, dependents, slot and log."""
        self.executions.pop(execution.id, None)
        job._status = JobStatus.FINISHED
        if dependents is not None:  # the job's status before this success: RQ's rule reads it
            enqueue_dependents(queue, job, dependents)
        release_slot(job)
        assert job.started_at is not None and job.ended_at is not None
        took = job.ended_at - job.started_at
        if self.log_job_description:
            completed = "Successfully completed %s job in %ss on worker %s"
            self.log.info(completed, job.description, took, self.name)
        else:
            self.log.info("Successfully completed job %s in %ss on worker %s", job.id, took, self.name)

    def _return_value(self, job: Job) -> str:
        """The result stream's ``return_value`` field as RQ's ``Result`` writes it ('' for None)."""
        value = job._result
        if value is None:
            return ""
        try:
            encoded = self.serializer.dumps(value)
        except Exception:
            encoded = self.serializer.dumps(UNSERIALIZABLE_RETURN_VALUE_PAYLOAD)
        return b64encode(encoded).decode()

    def _claim_from(self) -> list[str]:
        """The queues to claim the next job from, in order; none when the loop has a check due."""
        if not self._claims_ahead or self._stop_requested or self.should_run_maintenance_tasks:
            return []
        return [queue.name for queue in self._ordered_queues]

    def handle_job_failure(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        outbox.close()  # a failed job's outputs are dropped with it
        self._release_held()
        super().handle_job_failure(job, queue, *args, **kwargs)

    def handle_job_retry(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        outbox.close()
        self._release_held()
        super().handle_job_retry(job, queue, *args, **kwargs)

    def clean_registries(self) -> None:
        super().clean_registries()
        for queue in self.queues:
            sweep_holds(self.connection, queue.name, self.hold_grace)

    def _single_queue(self) -> bool:
        """Where RQ itself would dequeue with BLMOVE (one queue, Redis 6.2+): there
        ``dequeue_and_start`` waits with BLMOVE and claims in the same round trip."""
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

    def check_for_suspension(self, burst: bool) -> None:
        if not burst and time.monotonic() - self._suspension_checked_at < SUSPENSION_CHECK_SECONDS:
            return
        self._suspension_checked_at = time.monotonic()
        super().check_for_suspension(burst)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """RQ's loop, without re-sending an ``idle`` state the success script just wrote."""
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
                result = self._dequeue(timeout)
                if result is not None:
                    job, queue = result
                    self.reorder_queues(reference_queue=queue)
                    job.redis_server_version = self.get_redis_server_version()
                    self._log_dequeued(queue, job)
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
                stopping.wait(connection_wait_time)  # a stop ends the wait (shared.stopping)
                # A start that failed half-way left this worker "busy": a busy worker ignores a
                # stop request until its job ends, and there is no job.
                with contextlib.suppress(redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                    if self.get_state() != WorkerStatus.IDLE:
                        self.set_state(WorkerStatus.IDLE)  # sets the local state first
                connection_wait_time = min(
                    connection_wait_time * self.exponential_backoff_factor, self.max_connection_wait_time
                )
        if result is None:
            # Holding a job, no heartbeat here: PipelineWorker's raises StopRequested when a
            # stop came in during BLMOVE, and the job would be left started. Its start carried
            # a heartbeat; the stop is honoured right after the job.
            self.heartbeat()
        return result
