"""The seed's pipeline, declared once on the task interface (``shared.pipeline``): its first user.

``compute(x, y)`` runs on the compute workers and hands ``(x, y, x*y)`` to ``handle_result``, which
runs on the result worker and stores it: the ``compute`` → ``handle_result`` shape of the Celery
example, where a task hands its result on itself (``store=False``: nothing goes through
``store_results``). Chunked mode (``shared.chunks``) is the same pair with many points per
message. The adapters turn these into Dramatiq actors (``dramatiq_impl.tasks``: ``compute.send``)
and RQ jobs (``rq_impl.tasks``: ``compute.delay``); the routing table places them by these names.

Results go to the seed's own store (``shared.store``: one Redis hash per backend, so a run on
each backend is verified on its own); on a worker they are written in the same script as the
message's ack.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

from shared import chunks
from shared import tasks as logic
from shared.backend import configured_backend
from shared.chunks import MAX_CHUNK_SIZE
from shared.pipeline import running_driver, task
from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK
from shared.settings import Settings
from shared.store import ResultStore

#: An argument: an int in [ARG_MIN, ARG_MAX] (products stay exact in any JSON reader).
Arg = Annotated[int, Field(ge=logic.ARG_MIN, le=logic.ARG_MAX)]


def _row_in_range(row: list[int]) -> list[int]:
    for name, value in zip("xy", row[:2], strict=False):
        if not logic.ARG_MIN <= value <= logic.ARG_MAX:
            raise ValueError(f"{name}={value} is outside [{logic.ARG_MIN}, {logic.ARG_MAX}]")
    return row


PointList = Annotated[list[Arg], Field(min_length=2, max_length=2)]
RowList = Annotated[list[int], Field(min_length=3, max_length=3), AfterValidator(_row_in_range)]
Points = Annotated[list[PointList], Field(min_length=1, max_length=MAX_CHUNK_SIZE)]
Rows = Annotated[list[RowList], Field(min_length=1, max_length=MAX_CHUNK_SIZE)]

#: The seed's job options: a timeout far above the task's cost (it also bounds how long a dead RQ
#: worker's job waits to be found), three retries, results handed on by the tasks themselves.
SEED_OPTIONS: dict[str, Any] = {"store": False, "timeout": 10, "retries": 3}


@task(name=COMPUTE_TASK, **SEED_OPTIONS)
def compute(x: Arg, y: Arg) -> None:
    """Perform the computation and hand its result to ``handle_result``."""
    handle_result.submit(x, y, logic.compute(x, y))


@task(name=HANDLE_RESULT_TASK, **SEED_OPTIONS)
def handle_result(x: Arg, y: Arg, result: int) -> None:
    """Store the result at the other end (idempotent: a redelivery stores nothing new)."""
    store_rows([(x, y, result)])


@task(name="tasks.compute_chunk", route_as=COMPUTE_TASK, **SEED_OPTIONS)
def compute_chunk(points: Points) -> None:
    """Compute a chunk; one ``handle_results`` for it, and a failed point retried as a ``compute``."""
    rows = chunks.compute_chunk(points, retry_point=compute.submit)
    if rows:
        handle_results.submit(rows)


@task(name="tasks.handle_results", route_as=HANDLE_RESULT_TASK, **SEED_OPTIONS)
def handle_results(rows: Rows) -> None:
    """Store a chunk's results in one round trip (idempotent per point, as ``handle_result``)."""
    store_rows(rows)


_stores: dict[tuple[str, str], ResultStore] = {}


def seed_store(backend: str, settings: Settings | None = None) -> ResultStore:
    """The seed's result store of ``backend`` on ``REDIS_URL`` (one client per process and URL)."""
    url = (settings or Settings.from_env()).redis_url
    store = _stores.get((backend, url))
    if store is None:
        store = _stores[(backend, url)] = ResultStore.from_env(backend, Settings(url))
    return store


def store_rows(rows: list[Any]) -> None:
    """On a worker: with the message's ack (same script); anywhere else: at once."""
    driver = running_driver()
    store = seed_store(driver.name if driver is not None else configured_backend())
    if driver is None or not driver.defer([store.script_row(x, y, r) for x, y, r in rows]):
        store.put_many((x, y, r) for x, y, r in rows)
