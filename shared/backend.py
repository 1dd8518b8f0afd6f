"""The one interface both adapters implement, so the CLI and the benchmarks never branch on a name.

Backends are found by name: ``load_backend("rq")`` imports ``rq_impl.backend`` and calls its
``create(settings)``. ``shared`` never imports an adapter directly.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from typing import Protocol

from shared.settings import Settings
from shared.store import ResultStore
from shared.tasks import Point

#: Backend name -> the module that provides ``create(settings) -> Backend``.
BACKENDS = {
    "dramatiq": "dramatiq_impl.backend",
    "rq": "rq_impl.backend",
}


class Backend(Protocol):
    """What a queueing library has to offer the pipeline."""

    name: str
    settings: Settings
    store: ResultStore

    def submit(self, x: int, y: int) -> None:
        """Validate and enqueue one ``compute(x, y)``."""

    def submit_many(self, points: Iterable[Point]) -> int:
        """Validate every point, then enqueue them all in pipelined round trips; returns the count."""

    def queue_depths(self) -> dict[str, int]:
        """Messages waiting per queue of the routing table."""

    def purge(self) -> None:
        """Drop every waiting message of this backend's queues (not the results)."""

    def worker_command(self, queues: Sequence[str]) -> list[str]:
        """The stock CLI command line of one worker process consuming ``queues``."""

    def live_workers(self, since: float) -> int:
        """Worker processes that showed life in Redis at or after ``since`` (epoch seconds)."""


def load_backend(name: str, settings: Settings | None = None) -> Backend:
    try:
        module = importlib.import_module(BACKENDS[name])
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}") from None
    backend: Backend = module.create(settings or Settings.from_env())
    return backend
