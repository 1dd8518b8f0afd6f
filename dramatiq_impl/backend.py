"""The ``Backend`` interface over Dramatiq (found by name from ``shared.backend``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dramatiq_impl import ops, ownership, tasks
from dramatiq_impl.broker import build_broker
from dramatiq_impl.dead import dead as dead_messages
from shared import seed
from shared.chunks import chunked
from shared.commands import stock_cli
from shared.dead import DeadMessage
from shared.ownership import Keys
from shared.routing import active_table
from shared.settings import Settings
from shared.store import ResultStore
from shared.tasks import Point

#: Messages per pipelined round trip in ``submit_many``.
BATCH = 1000


def worker_environment() -> dict[str, str]:
    """Nothing beyond ``REDIS_URL`` and the ``PIPELINE_*`` settings: ``dramatiq dramatiq_impl.tasks``
    brings our broker with the module (``redis-pipeline env``, ``shared.env_command``)."""
    return {}


class DramatiqBackend:
    name = tasks.BACKEND_NAME

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.broker = build_broker(settings)
        self.store = ResultStore(self.broker.client, self.name)
        self.queues = active_table().queues

    def submit(self, x: int, y: int) -> None:
        call = seed.compute.call(x, y)
        self.broker.enqueue(tasks.compute.message(*call.args))

    def submit_many(self, points: Iterable[Point]) -> int:
        """Check every point (``seed.compute``'s check), then enqueue them on this backend's broker."""
        checked = seed.compute.calls(points)
        self.broker.enqueue_many((tasks.compute.message(*c.args) for c in checked), batch=BATCH)
        return len(checked)

    def submit_chunks(self, points: Iterable[Point], size: int) -> int:
        checked = seed.compute_chunk.calls([[list(p) for p in chunk]] for chunk in chunked(points, size))
        self.broker.enqueue_many((tasks.compute_chunk.message(*c.args) for c in checked), batch=BATCH)
        return sum(len(c.args[0]) for c in checked)

    def queue_depths(self) -> dict[str, int]:
        pipe = self.broker.client.pipeline(transaction=False)
        for queue in self.queues:
            pipe.llen(f"{self.broker.namespace}:{queue}")
        return dict(zip(self.queues, pipe.execute(), strict=True))

    def purge(self) -> None:
        self.purge_queues()

    def worker_command(self, queues: Sequence[str]) -> list[str]:
        return self.task_worker_command(queues, ["dramatiq_impl.tasks"])

    def task_worker_command(self, queues: Sequence[str], modules: Sequence[str]) -> list[str]:
        return [stock_cli("dramatiq"), *modules, "--processes", "1", "--queues", *queues]

    def live_workers(self, since: float) -> int:
        heartbeats = f"{self.broker.namespace}:__heartbeats__"
        return int(self.broker.client.zcount(heartbeats, int(since * 1000), "+inf"))

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


def create(settings: Settings) -> DramatiqBackend:
    return DramatiqBackend(settings)
