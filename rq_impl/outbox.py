"""What a job writes while it runs, held back and written with its own success records.

A job of ours has one output: ``compute`` enqueues a ``handle_result``, ``handle_result`` stores a
result. Written at once, each is a round trip of its own before the job's success records;
held back, it goes to Redis in the script that writes them (``rq_impl.records.finish``): one
round trip less per job, and the job's outputs and its "finished" records land together. A
worker that dies in between leaves the job started and nothing written; abandoned-job detection
runs it again, and the store counts the second delivery without storing twice.

Only a worker opens an outbox (around each job it performs); anywhere else, a user calling
``compute.delay(6, 7)`` in a shell, ``current()`` is None and the task writes at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from redis import Redis
from redis.client import Pipeline

from shared.results import Row, Store
from shared.store import ScriptRow

#: Commands a Lua script may not call (or that make no sense replayed inside one).
NOT_REPLAYABLE = frozenset(
    {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO", "MULTI", "EXEC", "WATCH"}
    | {"BLPOP", "BRPOP", "BLMOVE", "BRPOPLPUSH", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP"}
)


class Outbox:
    """One job's held-back writes: results to store in Redis (``rows``, written by the success
    script) or in another store (``stored``, committed before it: ``rq_impl.store_batch``), and
    commands (an enqueue's) to replay."""

    __slots__ = ("_connection", "_pipeline", "rows", "stored")

    def __init__(self, connection: Redis) -> None:
        self._connection = connection
        self._pipeline: Pipeline | None = None
        self.rows: list[ScriptRow] = []
        self.stored: list[tuple[Store, Sequence[Row]]] = []

    @property
    def pipeline(self) -> Pipeline:
        """A pipeline to queue writes on (RQ's ``enqueue_call(pipeline=...)`` and the like); it is
        never executed: its commands are read back by ``commands``. Made on first use."""
        if self._pipeline is None:
            self._pipeline = self._connection.pipeline(transaction=False)
        return self._pipeline

    def commands(self) -> list[tuple[Any, ...]]:
        """What was queued on ``pipeline``, each command as its words (``("RPUSH", key, id)``).
        The success script replays them, so only data commands will do: a script, a transaction
        or a blocking command is refused here, by name, rather than fail inside the script."""
        if self._pipeline is None:
            return []
        commands = [args for args, _options in self._pipeline.command_stack]
        for command in commands:
            if str(command[0]).upper().split()[0] in NOT_REPLAYABLE:
                raise TypeError(f"{command[0]} cannot be held back: the success script replays commands")
        return commands


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
