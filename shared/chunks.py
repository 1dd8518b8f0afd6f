"""Chunked mode: many grid points per message, each point still computed, stored and retried alone.

Per message, a framework spends far more on a task's bookkeeping (a message, an ack, a job hash)
than on ``x * y``. A chunk of k points pays that once for k points: the compute worker computes
every point of the chunk and sends one result message per chunk; the result worker stores the
whole chunk in one round trip (``ResultStore.put_many``, still ``HSETNX`` per point, so a
redelivered chunk stores nothing twice). A point whose computation raises does not fail its
chunk: it is sent again on its own, as a per-point ``compute`` message with the framework's usual
retries and dead-letter queue, while the rest of the chunk goes on.

The seed's chunk tasks (``shared.seed``: ``compute_chunk``, ``handle_results``) are routed like
its per-point tasks, to the compute and result queues; a declared task's ``map(..., chunk_size=K)``
does the same for any task (``shared.pipeline.run_chunk``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from shared.tasks import InvalidArguments, Point, compute

#: Points per message unless told otherwise: large enough that per-message costs vanish next to
#: the points' own (on 25,000 points, RQ: 14k tasks/s at 50, 20k at 100, 39k at 250), small
#: enough that a chunk is a few kB of JSON and a redelivery redoes little.
DEFAULT_CHUNK_SIZE = 250
#: A chunk larger than this is refused: its JSON would pass ~200 kB and one redelivery redo it all.
MAX_CHUNK_SIZE = 10_000

Row = list[int]

logger = logging.getLogger(__name__)


def validate_chunk_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_CHUNK_SIZE:
        raise InvalidArguments(f"chunk size must be an int in [1, {MAX_CHUNK_SIZE}], got {size!r:.40}")
    return size


def chunked(points: Iterable[Point], size: int = DEFAULT_CHUNK_SIZE) -> Iterator[list[Point]]:
    """Consecutive lists of ``size`` points (the last one shorter)."""
    validate_chunk_size(size)
    it = iter(points)
    while chunk := list(islice(it, size)):
        yield chunk


def compute_chunk(
    points: Iterable[Point] | Iterable[list[int]],
    retry_point: Callable[[int, int], object],
    fn: Callable[[int, int], int] = compute,
) -> list[Row]:
    """Compute every point; a point whose computation raises goes to ``retry_point`` (sent again on
    its own) and the others still return. Returns the rows to hand to ``handle_results``."""
    rows = []
    for x, y in points:
        try:
            rows.append([x, y, fn(x, y)])
        except Exception as exc:
            logger.warning("compute(%d, %d) failed in a chunk, retrying it alone: %r", x, y, exc)
            retry_point(x, y)
    return rows
