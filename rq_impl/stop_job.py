"""A running job stopped on request (``rq.command.send_stop_job_command``,
``send_stop_execution_command``), in the worker's own process.

RQ's forking ``Worker`` stops a job by killing its work horse: the job ends ``stopped``, in the
failed registry, never retried, its ``on_stopped`` callback run (not ``on_failure``), and its
dependents stay deferred. RQ's ``SimpleWorker`` has no horse to kill: it notes the request and
the job runs on to its end, ``on_stopped`` never fires. Our worker runs jobs in its process, so it
stops the job where it runs, then does what RQ's ``Worker`` does for a killed horse:

- the command arrives on RQ's pubsub thread, which notes the job (``request``) and signals the
  main thread (``STOP_SIGNAL``);
- the handler raises ``JobStopped`` in the main thread only while that job is under its timeout
  (``StoppableAlarm``: the job's function, or its callbacks), never in the worker's bookkeeping;
  a stop that lands while the timeout is being set is raised once it is set, and one for a job
  whose timeout has been cleared (it ended) is dropped;
- ``finalize_stopped`` runs ``on_stopped`` and records the failure as RQ's ``Worker`` does.

No Redis command and no system call is added to a job that nobody stops: ``StoppableAlarm``
keeps the job id it was given and compares it with one variable. Like RQ's own timeout (SIGALRM),
the stop interrupts Python code and sleeps, not a C call that never returns to the interpreter.
``JobStopped`` is a ``BaseException``, so a job's ``except Exception`` does not swallow it.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

import rq.timeouts
from rq.callbacks import execute_stopped_callback
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.timeouts import JobTimeoutException

from rq_impl import alarm
from rq_impl.alarm import StandingAlarm

if TYPE_CHECKING:
    from rq_impl.lifecycle import LeanLifecycle

STOP_SIGNAL = signal.SIGUSR1
#: What the failed job's result says, as RQ's ``Worker`` says it for a killed horse.
STOPPED_REASON = "Job stopped by user, work-horse terminated."

#: The job a stop was requested for, until it is raised or dropped. Written by the pubsub thread,
#: read and cleared by the main thread (handler and timeout), each a single assignment.
_target: str | None = None
_main_thread: int | None = None
#: Code that opens and closes a job's timeout: a stop is never raised there (it is raised once the
#: timeout is set, or dropped once it is cleared).
_OWN_FILES = frozenset({__file__, alarm.__file__, rq.timeouts.__file__})


class JobStopped(BaseException):
    """Raised inside a job that was stopped on request."""


class StoppableAlarm(StandingAlarm):
    """The job timeout of ``StandingAlarm``, knowing its job: the window a stop may land in."""

    def __init__(self, timeout: Any, exception: type[BaseException] = JobTimeoutException, **kwargs: Any):
        super().__init__(timeout, exception, **kwargs)
        self.job_id: str | None = kwargs.get("job_id")

    def setup_death_penalty(self) -> None:
        global _target
        super().setup_death_penalty()
        if _target is not None:  # requested before (or while) this window opened
            target, _target = _target, None
            if target == self.job_id:
                self.cancel_death_penalty()
                raise JobStopped(f"job {target} stopped on request")
            # else a job that has ended: nothing to stop


def install() -> None:
    """Set the stop handler (main thread only: elsewhere no job can be stopped in process)."""
    global _main_thread
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(STOP_SIGNAL) is not _on_stop_signal:
        signal.signal(STOP_SIGNAL, _on_stop_signal)
    _main_thread = threading.main_thread().ident


def request(job_id: str) -> bool:
    """Stop ``job_id`` if it is running here (from any thread); False if no handler is set."""
    global _target
    if _main_thread is None:
        return False
    _target = job_id
    signal.pthread_kill(_main_thread, STOP_SIGNAL)
    return True


def running_job_id() -> str | None:
    """The job whose function (or callback) runs now, if any."""
    armed = StandingAlarm.armed
    return armed.job_id if isinstance(armed, StoppableAlarm) else None


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    global _target
    target = _target
    if target is None or running_job_id() != target:
        return  # not started yet (raised when its timeout is set), or ended (dropped then)
    if frame is not None and frame.f_code.co_filename in _OWN_FILES:
        signal.raise_signal(STOP_SIGNAL)  # opening or closing the window: again a few bytecodes on
        return
    _target = None
    raise JobStopped(f"job {target} stopped on request")


def finalize_stopped(worker: LeanLifecycle, job: Job, queue: Queue, execution: Execution) -> None:
    """What RQ's ``Worker`` does for a job whose horse it killed on request: ``on_stopped``, then
    the failure recorded as ``stopped`` (``handle_job_failure`` sees ``_stopped_job_id``)."""
    job._status = JobStatus.FAILED
    worker.handle_execution_ended(job, queue, job.stopped_callback_timeout)
    stopped = "Worker %s: job %s stopped by user, moving job to FailedJobRegistry"
    worker.log.warning(stopped, worker.name, job.id)
    try:
        execute_stopped_callback(job, worker.death_penalty_class)
    except (Exception, JobStopped):  # a second stop of the same job lands in its callback
        worker.log.exception("Worker %s: stopped callback for job %s raised", worker.name, job.id)
    worker.handle_job_failure(
        job,
        queue=queue,
        started_job_registry=queue.started_job_registry,
        exc_string=STOPPED_REASON,
        execution=execution,
    )
