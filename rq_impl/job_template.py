"""RQ's job hash for one task on one queue, written without building a ``Job`` per enqueue.

``Queue.enqueue_call`` / ``enqueue_many`` spend 100-250 us of producer CPU per job here: a
``Job`` object (``resolve_serializer``'s ``isinstance`` against a runtime ``Protocol`` alone is
~30 us), ``to_dict``, three commands of ~20 arguments each to pack and their replies to parse
(docs/performance.md). Yet every job of one function on one queue with one set of options gets
the same hash but for four fields. So ``JobTemplate`` asks RQ once -- ``Queue.create_job`` and
``Job.to_dict``, RQ's own code -- and per job fills in only:

- the id, ``str(uuid4())`` as RQ makes it;
- ``created_at`` and ``enqueued_at``, RQ's ``utcformat``: one instant for both, and for every job
  of a ``write_many`` batch (it lands in Redis at once; RQ stamps each job as it builds it);
- ``data``: the JSON serializer's ``(func_name, None, args, kwargs)``, zlib-compressed, as
  ``Job.data`` and ``to_dict`` make it (the same bytes);
- ``description``: RQ's own ``get_call_string``.

What lands in Redis is what ``enqueue_call`` leaves there: the queue registered in ``rq:queues``,
the job hash (same fields, same values, same order: RQ sends ``status`` first, then the whole
hash), an ``EXPIRE`` on it if the options set a ``ttl`` (RQ also expires the job's dependents
and dependencies keys, which a new job does not have), its id pushed on the queue in order.
Two ways to write it:

- ``write`` / ``write_many``: one job (``.delay``) or a batch (bulk submit) in one atomic script
  call (``WRITE_JOBS``): the template's fields go once per call and three arguments per job,
  where a pipeline packs ~40 arguments per job and parses a reply per command (with MULTI/EXEC,
  ~30 us a job of the producer's CPU here, more than everything else);
- ``add``: one job's commands (three, where ``enqueue_call`` sends four) onto a pipeline the
  caller executes, e.g. inside a worker's own transaction, where a script would cost a round trip
  (redis-py checks a pipeline's scripts with ``SCRIPT EXISTS`` first).

A template is made for one function, one queue and one set of options, and never changes:
anything else needs another template. ``__init__`` checks, with two jobs built by RQ, that only
those four fields differ between jobs, so an RQ that adds a per-job field fails here, not later.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, NamedTuple
from uuid import uuid4

from redis.client import Pipeline
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import get_call_string, now, utcformat

from shared import replication

#: The options a template reproduces; any other (dependencies, callbacks, meta, ...) is RQ's job.
OPTIONS = frozenset({"timeout", "result_ttl", "ttl", "failure_ttl", "retry"})

#: The hash fields that differ from one job to the next; ``to_dict`` gives every other one.
PER_JOB_FIELDS = ("created_at", "data", "description", "enqueued_at")

#: KEYS: queue, rq:queues, one job key per job. ARGV: the number of hash fields n, the template's
#: n field/value pairs (this batch's time already in), the positions of data and description in
#: them, the ttl (0: none), then each job's id, data and description. RPUSH in slices: Lua's
#: unpack is bounded.
WRITE_JOBS = """
redis.call('SADD', KEYS[2], KEYS[1])
local n = tonumber(ARGV[1])
local hash = {unpack(ARGV, 2, 2 * n + 1)}
local data_at, description_at = tonumber(ARGV[2 * n + 2]), tonumber(ARGV[2 * n + 3])
local ttl = tonumber(ARGV[2 * n + 4])
local ids, a = {}, 2 * n + 5
for k = 3, #KEYS do
  hash[data_at], hash[description_at] = ARGV[a + 1], ARGV[a + 2]
  redis.call('HSET', KEYS[k], unpack(hash))
  if ttl > 0 then redis.call('EXPIRE', KEYS[k], ttl) end
  ids[#ids + 1] = ARGV[a]
  a = a + 3
  if #ids == 1000 or k == #KEYS then
    redis.call('RPUSH', KEYS[1], unpack(ids))
    ids = {}
  end
end
return #KEYS - 2
"""


class _Batch(NamedTuple):
    """One ``WRITE_JOBS`` call: the jobs' ids, its keys and arguments."""

    ids: list[str]
    keys: list[Any]
    argv: list[Any]


class JobTemplate:
    """The writes of ``queue.enqueue_call(fn, args, kwargs, **options)``, for any args."""

    def __init__(self, queue: Queue, fn: Callable[..., Any] | str, options: Mapping[str, Any]) -> None:
        if unknown := set(options) - OPTIONS:
            raise ValueError(f"a job template cannot reproduce {', '.join(sorted(unknown))}")
        if queue.serializer is not JSONSerializer or not queue.is_async:
            raise ValueError(f"queue {queue.name!r} must be asynchronous and use the JSON serializer")
        self.queue = queue
        self.queue_key: str = queue.key
        self.queues_key: str = queue.redis_queues_keys
        self.job_prefix: str = queue.job_class.redis_job_namespace_prefix
        self._prototype = _rq_job(queue, fn, options, args=())
        self.func_name: str = self._prototype.func_name or ""
        self.ttl: int | None = self._prototype.ttl
        hash_ = _hash_checked_against_another_job(queue, fn, options, self._prototype)
        # Encoded once, as redis-py would encode them on every send.
        encode = queue.connection.get_encoder().encode
        fields = {"status": hash_.pop("status"), **hash_}
        #: Flat field/value pairs, per-job values as placeholders.
        self._pairs: list[Any] = [encode(x) for pair in fields.items() for x in pair]
        self._at = {name: 2 * i + 1 for i, name in enumerate(fields)}  # value index in _pairs
        self._connection = queue.connection
        self._script = queue.connection.register_script(WRITE_JOBS)

    def add(
        self,
        pipe: Pipeline,
        args: Sequence[Any],
        kwargs: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> str:
        """Add one job's writes to ``pipe`` (as ``enqueue_call(..., pipeline=pipe)``); returns
        its id. ``at`` is its created and enqueued time (default: now)."""
        job_id = str(uuid4())
        kwargs = kwargs or {}
        pairs = self._stamped(at or now())
        pairs[self._at["data"]] = self._data(args, kwargs)
        pairs[self._at["description"]] = self._description(args, kwargs)
        key = self.job_prefix + job_id
        pipe.sadd(self.queues_key, self.queue_key)
        pipe.execute_command("HSET", key, *pairs)
        if self.ttl:
            pipe.expire(key, self.ttl)
        pipe.rpush(self.queue_key, job_id)
        return job_id

    def write(
        self, args: Sequence[Any], kwargs: dict[str, Any] | None = None, at: datetime | None = None
    ) -> str:
        """Write one job now, in one atomic script call on the queue's connection (as
        ``enqueue_call`` in a transaction); returns its id. ``at`` as for ``add``."""
        return self._send(self._prepare([(args, kwargs or {})], at or now()))[0]

    def write_many(self, calls: Sequence[Sequence[Any]], batch: int = 1000) -> int:
        """Write a job per args of ``calls``, pushed in order, ``batch`` jobs per atomic script call
        (as ``enqueue_many`` in a transaction); returns how many. While one batch is in Redis the
        next is built: one sender thread, one batch in flight, so a failed batch stops the rest."""
        return self.write_calls([(args, {}) for args in calls], batch)

    def write_calls(self, calls: Sequence[tuple[Sequence[Any], dict[str, Any]]], batch: int = 1000) -> int:
        """``write_many`` for (args, kwargs) pairs."""
        with ThreadPoolExecutor(max_workers=1) as sender:
            in_flight: Future[list[str]] | None = None
            for start in range(0, len(calls), batch):
                prepared = self._prepare(calls[start : start + batch], now())
                if in_flight is not None:
                    in_flight.result()
                in_flight = sender.submit(self._send, prepared)
            if in_flight is not None:
                in_flight.result()
        return len(calls)

    def _prepare(self, calls: Iterable[tuple[Sequence[Any], dict[str, Any]]], at: datetime) -> _Batch:
        pairs = self._stamped(at)
        keys: list[Any] = [self.queue_key, self.queues_key]
        argv: list[Any] = [len(pairs) // 2, *pairs, self._at["data"] + 1, self._at["description"] + 1]
        argv.append(self.ttl or 0)
        ids = []
        for args, kwargs in calls:
            job_id = str(uuid4())
            ids.append(job_id)
            keys.append(self.job_prefix + job_id)
            argv += (job_id, self._data(args, kwargs), self._description(args, kwargs))
        return _Batch(ids, keys, argv)

    def _send(self, batch: _Batch) -> list[str]:
        """One script call; confirmed on replicas when ``PIPELINE_MIN_REPLICAS`` asks."""
        if batch.ids:
            replication.call(self._connection, self._script, batch.keys, batch.argv)
        return batch.ids

    def job(self, job_id: str, args: Sequence[Any], kwargs: dict[str, Any], at: datetime) -> Job:
        """The ``Job`` that ``enqueue_call`` returns, for what ``add`` or ``write`` wrote: a copy of
        the template's own RQ job with this job's values (and containers of its own). Only its
        ``redis_server_version`` stays unset: RQ fills it from an ``INFO`` and never reads it."""
        job = copy.copy(self._prototype)
        job.id = job_id
        job.created_at = job.enqueued_at = at
        job.args, job.kwargs = args, dict(kwargs)
        job.description = self._description(args, kwargs)
        job.meta, job.webhooks = {}, []
        job.retry_intervals = copy.copy(job.retry_intervals)
        return job

    def _stamped(self, at: datetime) -> list[Any]:
        pairs = self._pairs.copy()
        pairs[self._at["created_at"]] = pairs[self._at["enqueued_at"]] = utcformat(at)
        return pairs

    def _data(self, args: Sequence[Any], kwargs: dict[str, Any]) -> bytes:
        return zlib.compress(JSONSerializer.dumps((self.func_name, None, args, kwargs)))

    def _description(self, args: Sequence[Any], kwargs: dict[str, Any]) -> str | None:
        return get_call_string(self.func_name, args, kwargs, max_length=75)


def _rq_job(
    queue: Queue, fn: Callable[..., Any] | str, options: Mapping[str, Any], args: tuple[Any, ...]
) -> Job:
    """The job RQ's ``enqueue_call`` builds and saves, up to its pipeline writes."""
    job = queue.create_job(fn, args=args, kwargs={}, status=JobStatus.QUEUED, **options)  # type: ignore[type-var]
    job.enqueued_at = job.created_at
    return job


def _hash_checked_against_another_job(
    queue: Queue, fn: Callable[..., Any] | str, options: Mapping[str, Any], job: Job
) -> dict[str, Any]:
    """``job``'s hash (``to_dict``), after checking that it and a job of other args differ in
    ``PER_JOB_FIELDS`` only."""
    fields = job.to_dict()
    other = _rq_job(queue, fn, options, args=(0,)).to_dict()
    differing = {name for name in fields.keys() | other.keys() if fields.get(name) != other.get(name)}
    if differing - set(PER_JOB_FIELDS) or set(PER_JOB_FIELDS) - fields.keys():
        raise RuntimeError(f"RQ's job hash differs per job in {sorted(differing)}, not {PER_JOB_FIELDS}")
    return fields
