"""A finished job's dependents, moved to their queues by RQ's own rule.

RQ's ``handle_job_success`` moves the dependents before it writes ``finished``, and asks the
parent's status from Redis then: a job cancelled (``Job.cancel``) or stopped while it ran is
``canceled`` / ``stopped`` there, and ``Job.dependencies_are_met`` keeps every dependent deferred;
one marked ``failed`` meanwhile (abandoned, say) lets through only the dependents that allow
failures. Our success script writes ``finished`` in the same call as everything else, so it reads
the status just before and hands it here (``records.finish``); RQ's check then runs on it, not on
what Redis holds now. A job without dependents costs nothing: the script says so.
"""

from __future__ import annotations

from rq.job import Job, JobStatus
from rq.queue import Queue

#: A parent in one of these states keeps all its dependents deferred (``dependencies_are_met``).
HOLDS_BACK = frozenset({JobStatus.CANCELED.value, JobStatus.STOPPED.value})


def enqueue_dependents(queue: Queue, job: Job, status_before: str) -> None:
    """Enqueue ``job``'s dependents whose dependencies are met, judging ``job`` by the status it
    had when it ended (``status_before``), as RQ does; then ``job`` is finished again in memory."""
    if status_before in HOLDS_BACK:
        return  # no dependent can be met: RQ's pass would move none
    try:
        job._status = JobStatus(status_before)
    except ValueError:
        job._status = JobStatus.STARTED  # a status RQ does not know: judged as running
    try:
        queue.enqueue_dependents(job, refresh_job_status=False)
    finally:
        job._status = JobStatus.FINISHED
