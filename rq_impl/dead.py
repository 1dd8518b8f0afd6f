"""RQ's failed jobs as ``DeadMessage`` rows, and the one failure a user can fix at once: a worker
without the JSON serializer.

Per queue, the failed registry ``rq:failed:<queue>`` names the jobs; each job's hash (``data``:
function and arguments, ``ended_at``) is decoded by RQ's ``Job.restore``, and its reason is the
latest entry of its result stream ``rq:results:<id>`` (RQ >= 1.12; older RQ kept ``exc_info`` in
the hash). A stock ``rq worker`` without ``--serializer json`` unpickles our JSON jobs and fails
every one with ``DeserializationError``; such a job's data still decodes as JSON, which tells it
apart from a job whose data is really broken.
"""

from __future__ import annotations

import zlib
from base64 import b64decode
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import Job
from rq.results import Result
from rq.serializers import JSONSerializer

from shared.dead import DeadMessage, iso_utc, one_line

if TYPE_CHECKING:
    from rq_impl.backend import RQBackend

#: Jobs per pipelined round trip.
BATCH = 500
#: Failed jobs per queue ``status`` reads (newest first) to look for the serializer mistake.
STATUS_SCAN = 1000
#: The exception RQ raises for job data its serializer cannot read.
DECODE_ERROR = DeserializationError.__name__


@dataclass(frozen=True)
class FailedJob:
    message: DeadMessage
    #: The job's data decodes as JSON (so a DeserializationError came from the worker's serializer).
    json_data: bool

    @property
    def wrong_serializer(self) -> bool:
        return self.json_data and self.message.reason.endswith(DECODE_ERROR)


def _exc_string(entries: list[Any]) -> str | None:
    """``exc_string`` of the latest result-stream entry (zlib + base64, as RQ's ``Result`` writes it)."""
    if not entries:
        return None
    _, payload = entries[0]
    raw = payload.get(b"exc_string")
    if not raw:
        return None
    try:
        return zlib.decompress(b64decode(raw)).decode(errors="replace")
    except (ValueError, zlib.error):
        return None


def _row(
    backend: RQBackend, queue: str, job_id: str, raw: dict[bytes, bytes], entries: list[Any]
) -> FailedJob:
    job = Job(job_id, connection=backend.connection, serializer=JSONSerializer)
    try:
        job.restore(raw)
    except NoSuchJobError:  # expired or deleted since the registry named it
        return FailedJob(DeadMessage(job_id, "?", queue, "job data gone", ""), json_data=False)
    try:
        task, json_data = job.func_name or "?", True
    except DeserializationError:
        task, json_data = "?", False
    reason = _exc_string(entries) or getattr(job, "_exc_info", None)
    when: Any = job.ended_at
    if when is None and entries:  # a stream entry's id starts with its time in ms
        when = int(entries[0][0].split(b"-")[0]) / 1000
    return FailedJob(DeadMessage(job_id, task, queue, one_line(reason), iso_utc(when)), json_data)


def failed(
    backend: RQBackend, queues: Sequence[str] | None = None, limit: int | None = None
) -> list[FailedJob]:
    """The failed jobs of ``queues`` (all if None), newest first, at most ``limit`` per queue."""
    rows: list[FailedJob] = []
    for name in queues or list(backend.queues):
        registry = backend.queues[name].failed_job_registry
        ids = registry.get_job_ids(0, (limit or 0) - 1, desc=True)
        for start in range(0, len(ids), BATCH):
            batch = ids[start : start + BATCH]
            pipe = backend.connection.pipeline(transaction=False)
            for job_id in batch:
                pipe.hgetall(Job.key_for(job_id))
                pipe.xrevrange(Result.get_key(job_id), "+", "-", count=1)
            replies = iter(pipe.execute())
            rows.extend(_row(backend, name, job_id, next(replies), next(replies)) for job_id in batch)
    return rows


def dead(
    backend: RQBackend, queues: Sequence[str] | None = None, limit: int | None = None
) -> list[DeadMessage]:
    return [f.message for f in failed(backend, queues, limit)]


def serializer_hints(backend: RQBackend, dead_counts: dict[str, int]) -> tuple[int, list[str]]:
    """How many failed jobs (of queues with any) a worker without the JSON serializer ran, and
    the line that names the fix (none if there are none)."""
    queues = [name for name, count in dead_counts.items() if count]
    found = sum(f.wrong_serializer for f in failed(backend, queues, STATUS_SCAN)) if queues else 0
    if not found:
        return 0, []
    hint = (
        f"{found} failed job(s) could not be decoded ({DECODE_ERROR}): a worker without the JSON "
        "serializer ran them. Start RQ workers with --serializer json (e.g. 'rq worker --serializer "
        "json compute result', see README), then run them again: 'redis-pipeline requeue --backend "
        "rq --all' (or the ids 'redis-pipeline dead --backend rq' lists)."
    )
    return found, [hint]
