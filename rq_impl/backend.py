"""The ``Backend`` interface over RQ (found by name from ``shared.backend``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from rq import Worker

from rq_impl import ops, ownership, tasks
from rq_impl.dead import dead as dead_messages
from rq_impl.job_template import JobTemplate
from shared import seed
from shared.chunks import chunked
from shared.commands import stock_cli
from shared.connection import connect
from shared.dead import DeadMessage
from shared.ownership import Keys
from shared.routing import COMPUTE_TASK, active_table
from shared.settings import Settings
from shared.store import ResultStore
from shared.tasks import Point

#: Jobs per round trip in ``submit_many`` and ``submit_chunks`` (every point is checked first:
#: a bad one refuses the whole call with nothing enqueued).
BATCH = 1000

#: Our worker class (no fork per job, fast abandoned-job recovery, JSON only, see rq_impl.worker)
#: and a connection that rides out Redis restarts.
WORKER_CLASS = "rq_impl.worker.PipelineWorker"
CONNECTION_CLASS = "shared.connection.ResilientRedis"
#: ``--quiet`` drops three INFO lines per job (warnings and failures are still logged).
WORKER_OPTIONS = ("--worker-class", WORKER_CLASS, "--connection-class", CONNECTION_CLASS, "--quiet")


def worker_environment() -> dict[str, str]:
    """What the plain ``rq worker QUEUES`` needs to run our path: RQ's CLI reads these two options
    from the environment (``--serializer`` it does not: ``PipelineWorker`` is JSON-only) and
    ``REDIS_URL`` itself (``redis-pipeline env``, ``shared.env_command``)."""
    return {"RQ_WORKER_CLASS": WORKER_CLASS, "RQ_CONNECTION_CLASS": CONNECTION_CLASS}


class RQBackend:
    name = tasks.BACKEND_NAME

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connection = connect(settings)
        self.store = ResultStore(self.connection, self.name)
        routing = active_table()
        self.queues = {name: tasks.queue(name, self.connection) for name in routing.queues}
        self.compute_queue = self.queues[routing.queue_for(COMPUTE_TASK)]
        # RQ's job hashes, written by us (rq_impl.job_template): ~1/5 of enqueue_many's CPU.
        self.compute_jobs = JobTemplate(self.compute_queue, tasks.compute, tasks.JOB_OPTIONS)
        self.chunk_jobs = JobTemplate(self.compute_queue, tasks.compute_chunk, tasks.JOB_OPTIONS)

    def submit(self, x: int, y: int) -> None:
        call = seed.compute.call(x, y)
        tasks.enqueue(self.compute_jobs, *call.args)

    def submit_many(self, points: Iterable[Point]) -> int:
        """Check every point (``seed.compute``'s check), then write the jobs on this connection."""
        checked = seed.compute.calls(points)
        self.compute_jobs.write_many([c.args for c in checked], BATCH)
        return len(checked)

    def submit_chunks(self, points: Iterable[Point], size: int) -> int:
        checked = seed.compute_chunk.calls([[list(p) for p in chunk]] for chunk in chunked(points, size))
        self.chunk_jobs.write_many([c.args for c in checked], BATCH)
        return sum(len(c.args[0]) for c in checked)

    def queue_depths(self) -> dict[str, int]:
        return {name: q.count for name, q in self.queues.items()}

    def purge(self) -> None:
        self.purge_queues()

    def worker_command(self, queues: Sequence[str]) -> list[str]:
        # REDIS_URL reaches the worker through its environment, never its command line (ps shows that).
        return [stock_cli("rq"), "worker", "--serializer", "json", *WORKER_OPTIONS, *queues]

    def task_worker_command(self, queues: Sequence[str], modules: Sequence[str]) -> list[str]:
        # The modules reach the worker as PIPELINE_TASKS in its environment (PipelineWorker imports them).
        return self.worker_command(queues)

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

    def dead(self, queues: Sequence[str] | None = None, limit: int | None = None) -> list[DeadMessage]:
        return dead_messages(self, queues, limit)

    def occupied(self, queues: Sequence[str]) -> list[str]:
        """What a run on ``queues`` would empty (``shared.ownership``)."""
        return ownership.occupied(self, queues)

    def footprint(self, queues: Sequence[str]) -> Keys:
        """The fixed keys a run on ``queues`` may create (``shared.ownership``)."""
        return ownership.footprint(self, queues)


def create(settings: Settings) -> RQBackend:
    return RQBackend(settings)
