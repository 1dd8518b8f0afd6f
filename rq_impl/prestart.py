"""A woken worker's dequeue: woken, claimed and started in one round trip.

RQ's single-queue dequeue is a ``BLMOVE`` to the queue's intermediate list, shared by every
worker of the queue, then a read of the job (``HGETALL``), then its start in two more round trips.
Here the ``BLMOVE`` moves the job into the worker's own hold list and the claim script sent in the
same write takes it from there and starts it (``record_scripts.CLAIM``): one wake-up per job, for one
worker. Redis runs the script right after the move, so the hold list is empty again at once; if
the worker dies between the two (its connection closed in the same instant), the id stays there,
and ``sweep_holds`` (every worker's maintenance) puts it back on the queue after a grace, as RQ's
cleanup does for its intermediate list. A worker whose connection broke there and which lives on
takes the id from its hold list on its next wait.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from redis import Redis
from rq.exceptions import DequeueTimeout
from rq.job import Job
from rq.queue import Queue

from rq_impl import record_scripts, records

if TYPE_CHECKING:
    from rq_impl.lifecycle import LeanLifecycle

#: ARGV: queue name, now (s), grace (s). At most once per ``grace`` for the queue, whichever worker
#: comes first: a hold list that has held ids since a sweep ``grace`` or more ago goes back to the
#: head of the queue (a live worker empties its own in the same write as the move); one that
#: holds ids is marked seen; an empty one is unmarked, and leaves the set once its worker's key is
#: gone. Returns how many ids went back. Keys under ``RQ_KEY_PREFIX`` (``record_scripts.keyed``).
SWEEP = record_scripts.keyed("""
local queue = 'rq:queue:' .. ARGV[1]
local holds = queue .. ':holds'
local seen = holds .. ':seen'
local now, grace = tonumber(ARGV[2]), tonumber(ARGV[3])
if not redis.call('SET', holds .. ':swept', now, 'NX', 'EX', math.max(1, math.floor(grace))) then
    return 0
end
local first = {}
local marks = redis.call('HGETALL', seen)
for k = 1, #marks, 2 do first[marks[k]] = tonumber(marks[k + 1]) end
local prefix = queue .. ':hold:'
local moved = 0
for _, hold in ipairs(redis.call('SMEMBERS', holds)) do
    if redis.call('LLEN', hold) == 0 then
        if first[hold] then redis.call('HDEL', seen, hold) end
        if redis.call('EXISTS', 'rq:worker:' .. string.sub(hold, #prefix + 1)) == 0 then
            redis.call('SREM', holds, hold)
        end
    elseif not first[hold] then
        redis.call('HSET', seen, hold, now)
    elseif now - first[hold] >= grace then
        while redis.call('LMOVE', hold, queue, 'RIGHT', 'LEFT') do moved = moved + 1 end
        redis.call('HDEL', seen, hold)
    end
end
return moved
""")


def hold_key(queue_name: str, worker_name: str) -> str:
    """The list a waiting worker's ``BLMOVE`` moves its job into, emptied by its claim at once."""
    return f"{record_scripts.KEY_PREFIXES[0]}{queue_name}:hold:{worker_name}"


def holds_key(queue_name: str) -> str:
    """The set of the queue's hold lists, where ``SWEEP`` finds a dead worker's."""
    return f"{record_scripts.KEY_PREFIXES[0]}{queue_name}:holds"


def dequeue_and_start(worker: LeanLifecycle, timeout: int | None) -> tuple[Job, Queue] | None:
    """The next job of the worker's one queue, started; waits up to ``timeout`` s and raises
    DequeueTimeout as RQ's dequeue does (``None``: no wait, None if the queue is empty)."""
    queue = worker._ordered_queues[0]
    hold = hold_key(queue.name, worker.name)
    if not worker.hold_registered:  # before the first move into it, so a sweep can find it
        worker.connection.sadd(holds_key(queue.name), hold)
        worker.hold_registered = True
    while True:
        wait = None if timeout is None else ("BLMOVE", queue.key, hold, "LEFT", "RIGHT", timeout)
        args, stamp = records.claim_args(worker, [queue.name])
        head = (*records.worker_args(worker), hold, holds_key(queue.name))
        woken, reply = worker.scripts.claim([*head, *args], first=wait)
        claimed = records.parse_claim(reply, stamp)
        if claimed is not None:
            job, worker._prestarted = records.started(
                worker, claimed.job_id, claimed.flat, claimed.ttl, claimed.stamp
            )
            return job, queue
        if woken is None:  # nothing came: RQ's outcome for an empty queue
            if timeout is None:
                return None
            raise DequeueTimeout(timeout, queue.key)
        # An id came whose job hash was gone (RQ skips those too): wait again.


def sweep_holds(connection: Redis, queue_name: str, grace: float, now: float | None = None) -> int:
    """Put the ids that dead workers left in the queue's hold lists back on it; how many."""
    return int(connection.eval(SWEEP, 0, queue_name, time.time() if now is None else now, grace))
