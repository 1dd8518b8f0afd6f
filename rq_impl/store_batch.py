"""Results for a store other than Redis, and successes confirmed on replicas, committed for a run
of jobs in one write.

A ``pipeline.store_results`` job whose store is not the broker's Redis (a SQL database) holds
its rows in its outbox (``RQDriver.defer_store``); they are committed before the job's success
is recorded. One job at a time, that is a statement and a commit per result. Instead, a success
whose worker would claim its next job anyway, and finds one waiting, is held: the worker claims
and runs that job at once (``records.claim_next``). When no job is waiting, the next job stores
nothing, or ``MAX_JOBS`` successes are held (or the first for ``MAX_SECONDS``), the rows of every
held job go to their store in one ``put_many`` (one statement), then every held job's success is
recorded, all their success scripts in one round trip (``records.finish_many``; one per job
left PostgreSQL at 79-83 % of the Redis store in ``make bench``, 93 % with it). Once a batch is
forming, an empty queue is looked at again for up to ``LINGER_SECONDS`` before the batch is
committed: under load, results arrive a fraction of a millisecond apart, and without it a batch
ended at the first gap (about one statement per job in the 50x50 benchmark: PostgreSQL at 87 %
of the Redis store without it, 105 % and 119 % with it, in targeted runs of 5 repetitions each).
Nothing waits for a batch to start: under light load every job commits on its own, as before.
With ``PIPELINE_MIN_REPLICAS`` > 0 every success is held the same way, rows or not: the batch's
success scripts then carry one ``WAIT`` between them (``shared.replication``) instead of one per
job (RQ per message on a master with one replica: 65-80 % of the knob-off rate with a ``WAIT`` per
job, 81-101 % held; single runs of ``redis-pipeline run --backend rq``).

A worker that dies while it holds successes leaves those jobs started, never finished:
abandoned-job detection runs them again, and the store counts the second delivery without
storing twice (as for a death between a commit and its success). If the write fails, every held
job fails with its error, and RQ's retry rule decides, job by job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue

from rq_impl.outbox import Outbox
from shared.results import by_store

#: At most this many successes are held for one write, for at most this long.
MAX_JOBS = 200
MAX_SECONDS = 0.1
#: Once a batch is forming, an empty queue is looked at again this many times, over this long,
#: before the batch is committed: jobs arriving a fraction of a millisecond apart join it.
LINGER_POLLS = 4
LINGER_SECONDS = 0.002


@dataclass(frozen=True)
class HeldSuccess:
    """A job that returned, its success recorded once its rows are stored."""

    job: Job
    queue: Queue
    execution: Execution
    box: Outbox


def commit(held: Sequence[HeldSuccess], last: Outbox | None = None) -> None:
    """Store the rows of ``held`` and of ``last`` (the job finishing now): one ``put_many`` per
    store, which retries for its own budget and raises after it."""
    writes = [write for success in held for write in success.box.stored]
    if last is not None:
        writes.extend(last.stored)
    for store, rows in by_store(writes):
        store.put_many(rows)
