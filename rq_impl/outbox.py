"""What a job writes while it runs, held back and written with its own success records.

A job of ours has one output: ``compute`` enqueues a ``handle_result``, ``handle_result`` stores a
result. Written at once, each is a round trip of its own before the job's success transaction;
held back, it goes to Redis in that transaction (``rq_impl.records.finish``): one round trip
less per job, and the job's outputs and its "finished" records land together or not at all. A
worker that dies in between leaves the job started and nothing written; abandoned-job detection
runs it again, and the store counts the second delivery without storing twice.

Only a worker opens an outbox (around each job it performs); anywhere else, a user calling
``compute.delay(6, 7)`` in a shell, ``current()`` is None and the task writes at once.
"""

from __future__ import annotations

from contextvars import ContextVar

from redis import Redis
from redis.client import Pipeline

from shared.store import ScriptRow


class Outbox:
    """One job's held-back writes: results to store, and a transaction holding its enqueues."""

    __slots__ = ("_connection", "_pipeline", "rows")

    def __init__(self, connection: Redis) -> None:
        self._connection = connection
        self._pipeline: Pipeline | None = None
        self.rows: list[ScriptRow] = []

    @property
    def pipeline(self) -> Pipeline:
        """A transaction (MULTI) on the worker's connection to queue enqueues on; made on first use."""
        if self._pipeline is None:
            self._pipeline = self._connection.pipeline(transaction=True)
        return self._pipeline

    @property
    def enqueues(self) -> Pipeline | None:
        """The transaction holding the job's enqueues, or None if it enqueued nothing."""
        return self._pipeline


_current: ContextVar[Outbox | None] = ContextVar("rq_outbox", default=None)


def current() -> Outbox | None:
    """The outbox of the job running here, or None outside a worker's job (write at once)."""
    return _current.get()


def open_for(connection: Redis) -> Outbox:
    """Hold back the writes of the job about to run (replaces any a previous job left open)."""
    box = Outbox(connection)
    _current.set(box)
    return box


def close() -> Outbox | None:
    """Stop holding writes back; returns what the job held (None if nothing was open)."""
    box = _current.get()
    _current.set(None)
    return box
