"""The RQ worker class of our path: ``rq worker --worker-class rq_impl.worker.PipelineWorker``.

RQ's defaults lose time or work when a worker dies: a SIGKILLed worker's job stays "started"
until its heartbeat expires (job timeout + 60 s) and the next maintenance pass (every 600 s)
moves it to the failed registry. This worker, still driven by the stock CLI:

- runs jobs in its own process (SimpleWorker: no fork per job; our jobs are pure functions),
  writing RQ's own per-job records with one script call per job where RQ takes eleven round
  trips: a job's success also writes its output and starts the next job (rq_impl.lifecycle);
- runs maintenance every ``MAINTENANCE_SECONDS`` and marks a job abandoned ``HEARTBEAT_GRACE``
  seconds after its timeout, so a dead worker's job is found within seconds, and — because our
  jobs carry an RQ ``Retry`` — requeued, not failed;
- gives back a job stranded between dequeue and start (its worker died right after the
  ``BLMOVE``: in that worker's hold list, ``rq_impl.prestart``, or in RQ's intermediate queue if
  a stock RQ worker shares the queue) ``INTERMEDIATE_GRACE`` seconds after it is first seen,
  where RQ waits over a minute;
- keeps RQ's ``Retry`` rule, but a pipeline task's job retries what its task's ``retry_on`` says
  (bad arguments never), and a job it will not run (undecodable, a function outside the
  pipeline) goes straight to the failed registry (``rq_impl.retry_rule``);
- stops a running job on ``rq.command.send_stop_job_command`` as RQ's forking worker does
  (``on_stopped``, status ``stopped``), where RQ's ``SimpleWorker`` lets it run on
  (``rq_impl.stop_job``);
- stops without stranding a job: RQ's warm shutdown raises out of whatever an idle worker is
  doing, and a job it had just moved off the queue (BLMOVE) stays in the intermediate queue
  for a minute or more; this worker only flags the stop while idle, and waits on the queue with
  a ``DEQUEUE_SECONDS`` timeout so it still stops within a second;
- runs only the pipeline's own functions (``rq_impl.job.PipelineJob``), so a job written into
  Redis by someone else cannot name ``os.system``;
- reads and writes JSON only, whatever ``--serializer`` says (RQ's CLI has no environment variable
  for it, so the plain ``rq worker compute result`` under ``redis-pipeline env`` needs no flag);
  a ``--serializer`` other than json is logged once and ignored;
- stops in time whatever Redis does: a stop starts the stop budget (``shared.stopping``), after
  which Redis commands fail instead of retrying, and a job it could not record stays in the
  started registry / hold list, recovered as abandoned by the next worker.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from types import FrameType, TracebackType
from typing import Any

import redis

from shared.backend import BACKEND_ENV

# Before anything declares a task: the tasks this worker imports declare themselves on RQ.
os.environ.setdefault(BACKEND_ENV, "rq")

from rq.defaults import DEFAULT_JOB_CLASS, DEFAULT_MAINTENANCE_TASK_INTERVAL, DEFAULT_SERIALIZER_CLASS
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.utils import now
from rq.worker import WorkerStatus

from rq_impl import stop_job
from rq_impl.job import PipelineJob
from rq_impl.lifecycle import LeanLifecycle
from rq_impl.retry_rule import may_retry
from shared import stopping
from shared.pipeline import import_tasks, prepare_worker

MAINTENANCE_SECONDS = 5
HEARTBEAT_GRACE = 5
DEQUEUE_SECONDS = 1
INTERMEDIATE_GRACE = 5
HEARTBEAT_EVERY = 1.0

#: ``--serializer`` values that mean JSON, and RQ's default, which its CLI passes when the flag is absent.
_QUIETLY_JSON: tuple[object, ...] = (
    None,
    DEFAULT_SERIALIZER_CLASS,
    "json",
    "rq.serializers.JSONSerializer",
    JSONSerializer,
)


def _json_queues(queues: Any) -> Any:
    """RQ's CLI builds the queues with its serializer (pickle unless told): a queue of another
    serializer is passed on by name, so the worker builds it with JSON."""
    if isinstance(queues, Queue):
        queues = [queues]
    if not isinstance(queues, (list, tuple)):
        return queues
    return [q.name if isinstance(q, Queue) and q.serializer is not JSONSerializer else q for q in queues]


class PromptIntermediateQueue(IntermediateQueue):
    """RQ's intermediate queue, but a job counts as stranded after seconds, not a minute: a live
    worker moves its job out within microseconds of dequeueing it."""

    def should_be_cleaned_up(self, job_id: str) -> bool:
        first_seen = self.get_first_seen(job_id)
        return first_seen is not None and now() - first_seen > timedelta(seconds=INTERMEDIATE_GRACE)


class PipelineWorker(LeanLifecycle):
    #: A job is found abandoned HEARTBEAT_GRACE s after its timeout (60 s if it has none).
    heartbeat_grace = HEARTBEAT_GRACE
    untimed_job_timeout = 60
    hold_grace = INTERMEDIATE_GRACE
    #: The job timeout, which also opens the window a stop request lands in (``rq_impl.stop_job``).
    death_penalty_class = stop_job.StoppableAlarm

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import_tasks()  # PIPELINE_TASKS: the declared tasks this worker may run
        # The CLI passes its defaults explicitly; replace only those, so its flags still win.
        if (
            kwargs.get("maintenance_interval", DEFAULT_MAINTENANCE_TASK_INTERVAL)
            == DEFAULT_MAINTENANCE_TASK_INTERVAL
        ):
            kwargs["maintenance_interval"] = MAINTENANCE_SECONDS
        if kwargs.get("job_class") in (None, DEFAULT_JOB_CLASS, Job):
            kwargs["job_class"] = PipelineJob
        asked = kwargs.get("serializer")
        kwargs["serializer"] = "json"  # our jobs are JSON; never unpickle what is in Redis
        if args:
            args = (_json_queues(args[0]), *args[1:])
        elif "queues" in kwargs:
            kwargs["queues"] = _json_queues(kwargs["queues"])
        super().__init__(*args, **kwargs)
        if asked not in _QUIETLY_JSON:
            self.log.warning("Worker %s: runs JSON jobs only; serializer %s ignored", self.name, asked)
        prepare_worker(self.queue_names())  # a result worker opens its store before its first job

    @property
    def dequeue_timeout(self) -> int:
        return DEQUEUE_SECONDS

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        stopping.begin()
        if self.get_state() == WorkerStatus.BUSY:
            super().request_stop(signum, frame)  # finishes the job, then stops
            return
        self._shutdown_requested_date = now()
        signal.signal(signal.SIGINT, self.request_force_stop)
        signal.signal(signal.SIGTERM, self.request_force_stop)
        self.handle_warm_shutdown_request()
        self._stop_requested = True

    def set_shutdown_requested_date(self) -> None:
        # Informational, and written from the signal handler: Redis being away must not stop the stop.
        try:
            super().set_shutdown_requested_date()
        except redis.RedisError as exc:
            self.log.warning("Worker %s: could not record the stop request: %s", self.name, exc)

    def teardown(self) -> None:
        try:
            super().teardown()
        except redis.RedisError as exc:
            if not stopping.requested():
                raise
            self.log.warning(
                "Worker %s: Redis unreachable at exit (%s); its registration expires by itself and "
                "a job it held is recovered as abandoned.",
                self.name,
                exc,
            )
        finally:
            stopping.reset()  # stopped: the process's other clients retry as before

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        # Called before every dequeue: the one point where an idle worker holds no job.
        if self._stop_requested and self.get_state() != WorkerStatus.BUSY:
            raise StopRequested()
        if pipeline is not None:  # part of a larger write: costs no round trip
            super().heartbeat(timeout, pipeline)
            return
        # Alone, RQ sends it twice per job as three round trips; once a second, pipelined, keeps
        # the worker key (TTL worker_ttl + 60 s) just as alive. A call that sets its own TTL
        # (a longer job ahead) always goes through.
        last = self.last_heartbeat
        if timeout is None and last is not None and (now() - last).total_seconds() < HEARTBEAT_EVERY:
            return
        with self.connection.pipeline() as pipe:
            super().heartbeat(timeout, pipe)
            pipe.execute()

    def clean_registries(self) -> None:
        super().clean_registries()
        for queue in self.queues:
            if queue.acquire_maintenance_lock():
                try:
                    PromptIntermediateQueue(queue.key, self.connection).cleanup(self, queue)
                finally:
                    queue.release_maintenance_lock()

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        if not may_retry(job, exc_info[1] if len(exc_info) > 1 else None):
            job.retries_left = 0
        super().handle_exception(job, *exc_info)

    def work(self, *args: Any, **kwargs: Any) -> bool:
        stop_job.install()  # the main thread's handler for stop requests
        return super().work(*args, **kwargs)

    def kill_horse(self, sig: signal.Signals = signal.SIGTERM) -> None:
        # RQ's stop-job / stop-execution commands (pubsub thread), _stopped_job_id already set:
        # no horse here, so the job is stopped where it runs.
        if self._stopped_job_id:
            stop_job.request(self._stopped_job_id)

    def get_current_job_id(self) -> str | None:
        # The job running now; RQ's answer (the first of `executions`) may be a held success.
        return stop_job.running_job_id() or super().get_current_job_id()

    def _finalize_failure(
        self,
        job: Job,
        queue: Queue,
        execution: Execution,
        exc_info: tuple[type[BaseException] | None, BaseException | None, TracebackType | None],
    ) -> None:
        if self._stopped_job_id == job.id and isinstance(exc_info[1], stop_job.JobStopped):
            stop_job.finalize_stopped(self, job, queue, execution)
            return
        super()._finalize_failure(job, queue, execution, exc_info)
