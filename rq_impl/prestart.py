"""A woken worker's dequeue: woken, claimed and started in one round trip.

RQ's single-queue dequeue is a ``BLMOVE`` to the queue's intermediate list, then a read of the
job (``HGETALL``), then its start in two more round trips, and a worker that dies between the
move and the start strands the id in the intermediate list until maintenance finds it. Here the
wait takes nothing off the queue and the claim script sent with it pops and starts the job
atomically (``records.claim_woken``): one wake-up per job, and nothing to strand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rq.exceptions import DequeueTimeout
from rq.job import Job
from rq.queue import Queue

from rq_impl import records

if TYPE_CHECKING:
    from rq_impl.lifecycle import LeanLifecycle


def dequeue_and_start(worker: LeanLifecycle, timeout: int | None) -> tuple[Job, Queue] | None:
    """The next job of the worker's one queue, started; waits up to ``timeout`` s and raises
    DequeueTimeout as RQ's dequeue does (``None``: no wait, None if the queue is empty)."""
    queue = worker._ordered_queues[0]
    while True:
        woken, claimed = records.claim_woken(worker, queue.name, timeout)
        if claimed is not None:
            job, worker._prestarted = records.started(
                worker, claimed.job_id, claimed.flat, claimed.ttl, claimed.stamp
            )
            return job, queue
        if not woken:  # nothing came: RQ's outcome for an empty queue
            if timeout is None:
                return None
            raise DequeueTimeout(timeout, queue.key)
        # Woken, but another worker claimed the job first (or its hash was gone): wait again.
