"""A woken worker's dequeue: RQ's BLMOVE, then read and start the job in one script call.

After ``BLMOVE`` hands an idle worker a job id, RQ reads the job (``HGETALL``) and then writes
its start in a second and third round trip, because the start's TTLs come from the job's
timeout. ``records.start`` reads the job and starts it in one script that takes the timeout
from the job's own hash; an id whose hash is gone is skipped, as RQ skips it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rq.job import Job
from rq.queue import Queue
from rq.utils import as_text

from rq_impl import records

if TYPE_CHECKING:
    from rq_impl.lifecycle import LeanLifecycle


def dequeue_and_start(worker: LeanLifecycle, timeout: int | None) -> tuple[Job, Queue] | None:
    """RQ's single-queue dequeue (BLMOVE to the intermediate queue), then ``records.start``;
    raises DequeueTimeout as RQ's does."""
    queue = worker._ordered_queues[0]
    while True:
        moved = worker.queue_class.lmove(worker.connection, queue.key, timeout)
        if moved is None:
            return None
        started = records.start(worker, queue.name, as_text(moved[1]))
        if started is None:
            continue
        job, worker._prestarted = started
        return job, queue
