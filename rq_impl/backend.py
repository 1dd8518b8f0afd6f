"""The ``Backend`` interface over RQ (found by name from ``shared.backend``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from rq import Queue, Worker

from rq_impl import ops, tasks
from shared.chunks import chunked, validate_chunk
from shared.commands import stock_cli
from shared.connection import connect
from shared.routing import COMPUTE_TASK, active_table
from shared.settings import Settings
from shared.store import ResultStore
from shared.tasks import Point, validate_point

#: Jobs per pipelined round trip in ``submit_many``.
BATCH = 1000

#: Our worker class (no fork per job, fast abandoned-job recovery, see rq_impl.worker) and a
#: connection that rides out Redis restarts. ``--quiet`` drops three INFO lines per job
#: (warnings and failures are still logged).
WORKER_OPTIONS = (
    "--worker-class",
    "rq_impl.worker.PipelineWorker",
    "--connection-class",
    "shared.connection.ResilientRedis",
    "--quiet",
)


class RQBackend:
    name = tasks.BACKEND_NAME

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connection = connect(settings)
        self.store = ResultStore(self.connection, self.name)
        routing = active_table()
        self.queues = {name: tasks.queue(name, self.connection) for name in routing.queues}
        self.compute_queue = self.queues[routing.queue_for(COMPUTE_TASK)]

    def submit(self, x: int, y: int) -> None:
        x, y = validate_point(x, y)
        tasks.enqueue(self.compute_queue, tasks.compute, x, y)

    def submit_many(self, points: Iterable[Point]) -> int:
        checked = [validate_point(x, y) for x, y in points]
        self._enqueue(tasks.compute, checked)
        return len(checked)

    def submit_chunks(self, points: Iterable[Point], size: int) -> int:
        checked = [validate_chunk(chunk) for chunk in chunked(points, size)]
        self._enqueue(tasks.compute_chunk, [(chunk,) for chunk in checked])
        return sum(map(len, checked))

    def _enqueue(self, fn: Any, calls: Sequence[tuple[Any, ...]]) -> None:
        """Enqueue ``fn(*args)`` for each of ``calls``, ``BATCH`` jobs per pipelined round trip."""
        it = iter(calls)
        while batch := list(islice(it, BATCH)):
            jobs = [Queue.prepare_data(fn, args, **tasks.JOB_OPTIONS) for args in batch]
            with self.connection.pipeline() as pipe:
                self.compute_queue.enqueue_many(jobs, pipeline=pipe)
                pipe.execute()

    def queue_depths(self) -> dict[str, int]:
        return {name: q.count for name, q in self.queues.items()}

    def purge(self) -> None:
        self.purge_queues()

    def worker_command(self, queues: Sequence[str]) -> list[str]:
        # REDIS_URL reaches the worker through its environment, never its command line (ps shows that).
        return [stock_cli("rq"), "worker", "--serializer", "json", *WORKER_OPTIONS, *queues]

    def live_workers(self, since: float) -> int:
        start = datetime.fromtimestamp(since, UTC).replace(tzinfo=None)
        workers = Worker.all(connection=self.connection)
        return sum(1 for w in workers if w.birth_date and w.birth_date.replace(tzinfo=None) >= start)

    def status(self) -> ops.Status:
        return ops.status(self)

    def requeue(self, ids: Sequence[str] | None = None) -> list[str]:
        return ops.requeue(self, ids)

    def purge_queues(self, queues: Sequence[str] | None = None, dead: bool = False) -> dict[str, int]:
        return ops.purge(self, queues, dead)


def create(settings: Settings) -> RQBackend:
    return RQBackend(settings)
