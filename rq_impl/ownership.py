"""What a run of ours on RQ would empty, and the fixed keys it may create (``shared.ownership``).

Counts are raw ``LLEN`` / ``ZCARD`` reads: RQ's own counters clean registries on read, and a
check must change nothing of another application's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rq_impl.driver import queue
from rq_impl.prestart import holds_key
from shared.ownership import Keys

if TYPE_CHECKING:
    from rq_impl.backend import RQBackend


def occupied(backend: RQBackend, queues: Sequence[str]) -> list[str]:
    """The queues' waiting jobs and their scheduled / deferred ones (what ``purge`` drops)."""
    pipe = backend.connection.pipeline(transaction=False)
    for name in queues:
        q = queue(name, backend.connection)
        pipe.llen(q.key)
        pipe.zcard(q.scheduled_job_registry.key)
        pipe.zcard(q.deferred_job_registry.key)
    replies = iter(pipe.execute())
    found = []
    for name in queues:
        waiting, scheduled, deferred = next(replies), next(replies), next(replies)
        if waiting:
            found.append(f"rq queue {name!r} holds {waiting} job(s)")
        if scheduled + deferred:
            found.append(f"rq queue {name!r} holds {scheduled + deferred} scheduled / deferred job(s)")
    return found


def footprint(backend: RQBackend, queues: Sequence[str]) -> Keys:
    """Per queue its registries and hold set (ours: ``rq_impl.prestart``); the queue's entry in
    ``rq:queues``. Not here: waiting lists (a verified run leaves them empty) and worker sets
    (our workers leave them on a clean stop; a worker of someone else's may have joined)."""
    keys: list[str] = []
    members: dict[str, list[str]] = {}
    for name in queues:
        q = queue(name, backend.connection)
        registries = (
            q.started_job_registry,
            q.finished_job_registry,
            q.failed_job_registry,
            q.scheduled_job_registry,
            q.deferred_job_registry,
            q.canceled_job_registry,
        )
        keys += [r.key for r in registries]
        keys += [q.intermediate_queue_key, holds_key(name), f"{holds_key(name)}:seen"]
        members.setdefault(q.redis_queues_keys, []).append(q.key)
    return Keys(keys, members)
