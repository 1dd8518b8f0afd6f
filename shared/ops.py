"""The ops view, backend-neutral: what each queue holds, which workers live where, results stored.

Each adapter fills a ``Status`` from its own Redis keys (``dramatiq_impl.ops``, ``rq_impl.ops``);
this module only shapes it for people (rich tables) and for machines (JSON), so both backends read
the same and the CLI never branches on a backend name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class QueueStatus:
    """One queue. ``in_flight``: fetched/started, not yet acked. ``dead``: dead-letter / failed.
    ``delayed``: waiting for a time (retries with backoff, scheduled) or a dependency."""

    name: str
    depth: int
    in_flight: int
    dead: int
    delayed: int


@dataclass(frozen=True)
class WorkerStatus:
    """One live worker process. ``address`` is its ip:port as Redis sees it (tells hosts apart
    even when they share a hostname); ``last_seen`` is epoch seconds of its latest heartbeat."""

    name: str
    host: str
    pid: int | None
    queues: list[str]
    last_seen: float | None
    address: str = ""


@dataclass(frozen=True)
class Status:
    backend: str
    redis_url: str  # always redacted
    queues: list[QueueStatus]
    workers: list[WorkerStatus]
    results_stored: int
    taken_at: float = field(default_factory=time.time)
    #: Routes (task name or glob -> queue) whose queue no live worker consumes: their tasks wait.
    unserved: list[str] = field(default_factory=list)
    #: Failed jobs whose data is valid but which a worker with another serializer could not decode.
    wrong_serializer: int = 0
    #: Lines naming something the user should fix, and how (e.g. the serializer mistake above).
    hints: list[str] = field(default_factory=list)

    def queue(self, name: str) -> QueueStatus:
        return next(q for q in self.queues if q.name == name)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def with_unserved_routes(status: Status, routes: Mapping[str, str]) -> Status:
    """``status`` with the routes (task name or glob -> queue) whose queue no live worker serves."""
    served = {q for w in status.workers for q in w.queues}
    unserved = [f"{task} -> {queue}" for task, queue in sorted(routes.items()) if queue not in served]
    return replace(status, unserved=unserved)


def to_json(statuses: list[Status], indent: int | None = 2) -> str:
    """One JSON object keyed by backend name, so ``jq .rq.queues`` works however many were asked."""
    return json.dumps({s.backend: s.as_dict() for s in statuses}, indent=indent, sort_keys=True)


def _when(epoch: float | None, now: float) -> str:
    if epoch is None:
        return "-"
    return f"{max(0.0, now - epoch):.1f} s ago"


def render(status: Status) -> RenderableType:
    """Two tables (queues, workers) under a title line naming the backend and the redacted URL."""
    taken = datetime.fromtimestamp(status.taken_at, UTC).strftime("%H:%M:%S")
    header = Text.assemble(
        (status.backend, "bold"),
        f" on {status.redis_url} at {taken} UTC: ",
        (str(status.results_stored), "bold"),
        " results stored",
    )
    queues = Table()
    # Narrow terminals (80 columns): text columns fold, numbers / pids / ages never break, so no
    # column is dropped and no number is cut; an address keeps one line up to ipv4:port.
    queues.add_column("queue", overflow="fold")
    for column in ("depth", "in flight", "dead", "delayed"):
        queues.add_column(column, justify="right", no_wrap=True)
    for q in status.queues:
        queues.add_row(q.name, str(q.depth), str(q.in_flight), str(q.dead), str(q.delayed))
    workers = Table(title=f"{len(status.workers)} live workers", title_justify="left")
    address_width = min(
        max((len(w.address) for w in status.workers), default=7), len("255.255.255.255:65535")
    )
    workers.add_column("worker", overflow="fold")
    workers.add_column("host", overflow="fold")
    workers.add_column("address", overflow="fold", width=address_width)
    workers.add_column("pid", no_wrap=True)
    workers.add_column("queues", overflow="fold")
    workers.add_column("last seen", no_wrap=True)
    for w in sorted(status.workers, key=lambda w: (w.host, w.address, w.name)):
        workers.add_row(
            w.name,
            w.host,
            w.address,
            "-" if w.pid is None else str(w.pid),
            ", ".join(w.queues),
            _when(w.last_seen, status.taken_at),
        )
    parts: list[RenderableType] = [header, queues, workers]
    if status.unserved:
        parts.append(Text(f"no live worker serves: {'; '.join(status.unserved)}", style="yellow"))
    parts.extend(Text(f"{status.backend}: {hint}", style="yellow") for hint in status.hints)
    return Group(*parts)


def render_all(statuses: list[Status]) -> RenderableType:
    return Group(*(render(s) for s in statuses))
