"""The ops view through RQ's own API (JSON serializer), so it reads what ``rq info`` reads.

Counts come from RQ's registries exactly as ``rq info`` takes them, including RQ's cleanup of
each registry on read (an abandoned job past its timeout is handled as RQ handles it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rq import Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.serializers import JSONSerializer

from rq_impl.dead import serializer_hints
from shared.ops import QueueStatus, Status, WorkerStatus

if TYPE_CHECKING:
    from rq_impl.backend import RQBackend


def _epoch(when: datetime | None) -> float | None:
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def status(backend: RQBackend) -> Status:
    """Per queue: ``count``, started, failed, scheduled + deferred registries; ``Worker.all``."""
    queues = [
        QueueStatus(
            name=name,
            depth=q.count,
            in_flight=q.started_job_registry.count,
            dead=q.failed_job_registry.count,
            delayed=q.scheduled_job_registry.count + q.deferred_job_registry.count,
        )
        for name, q in backend.queues.items()
    ]
    workers = [
        WorkerStatus(
            name=w.name,
            host=w.hostname or "",
            pid=w.pid,
            queues=w.queue_names(),
            last_seen=_epoch(w.last_heartbeat),
            address=w.ip_address or "",
        )
        for w in Worker.all(connection=backend.connection, serializer=JSONSerializer)
    ]
    wrong, hints = serializer_hints(backend, {q.name: q.dead for q in queues})
    return Status(
        backend.name,
        backend.settings.redacted_url,
        queues,
        workers,
        backend.store.count(),
        wrong_serializer=wrong,
        hints=hints,
    )


def requeue(backend: RQBackend, ids: Sequence[str] | None = None) -> list[str]:
    """Failed jobs (``ids``, or all) back to the end of their queue, by ``FailedJobRegistry.requeue``."""
    wanted = None if ids is None else set(ids)
    moved: list[str] = []
    for q in backend.queues.values():
        registry = q.failed_job_registry
        for job_id in registry.get_job_ids():
            if wanted is not None and job_id not in wanted:
                continue
            try:
                registry.requeue(job_id)
            except (InvalidJobOperation, NoSuchJobError):  # requeued or deleted by someone else
                continue
            moved.append(job_id)
    return moved


def purge(backend: RQBackend, queues: Sequence[str] | None = None, dead: bool = False) -> dict[str, int]:
    """Empty the queues and drop their scheduled / deferred jobs (and with ``dead`` the failed
    ones); started jobs stay with their workers."""
    dropped = {}
    for name in queues or list(backend.queues):
        q = backend.queues[name]
        count = int(q.empty() or 0)
        registries = [q.scheduled_job_registry, q.deferred_job_registry]
        if dead:
            registries.append(q.failed_job_registry)
        for registry in registries:
            for job_id in registry.get_job_ids():
                registry.remove(job_id, delete_job=True)
                count += 1
        dropped[name] = count
    return dropped
