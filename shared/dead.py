"""Dead-lettered (Dramatiq) / failed (RQ) messages, backend-neutral: what ``redis-pipeline dead`` lists.

Each adapter reads its own keys into ``DeadMessage`` rows (``dramatiq_impl.dead``, ``rq_impl.dead``);
this module shapes them for people (a rich table that wraps rather than drops a column) and for
machines (JSON keyed by backend, like ``status --json``). The ids are the ones ``requeue`` takes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

#: Messages listed per queue unless ``--limit`` says otherwise (newest first).
DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class DeadMessage:
    """One dead-lettered / failed message. ``reason``: one line (a traceback's last line);
    ``time``: when it failed, ISO 8601 in UTC ("" if unknown)."""

    id: str
    task: str
    queue: str
    reason: str
    time: str


def one_line(text: str | None) -> str:
    """A reason on one line: a traceback's last line (the exception), else the text's lines joined."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return "-"
    if lines[0].startswith("Traceback"):
        return lines[-1]
    return " ".join(lines)


def iso_utc(when: datetime | float | None) -> str:
    """``when`` (a datetime, naive meaning UTC, or epoch seconds) as ISO 8601 in UTC, to the second."""
    if when is None:
        return ""
    if isinstance(when, datetime):
        moment = when if when.tzinfo else when.replace(tzinfo=UTC)
    else:
        moment = datetime.fromtimestamp(when, UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def to_json(listed: dict[str, list[DeadMessage]], indent: int | None = 2) -> str:
    """One JSON object keyed by backend name: ``jq '.rq[].id'`` gives the ids ``requeue`` takes."""
    return json.dumps({name: [asdict(m) for m in rows] for name, rows in listed.items()}, indent=indent)


class DeadTable:
    """One backend's messages: five columns where they fit; on a narrow terminal (80 columns)
    two, id over time and task, queue over reason, so an id stays whole (to copy) and nothing
    is dropped."""

    def __init__(self, backend: str, rows: list[DeadMessage]) -> None:
        self.title = f"{backend}: {len(rows)} dead-lettered / failed message(s)"
        self.rows = rows

    def wide(self) -> Table:
        table = Table(title=self.title, title_justify="left")
        for column in ("id", "task", "queue", "reason", "time (UTC)"):
            table.add_column(column, overflow="fold")
        for m in self.rows:
            # Text, not str: a reason may hold brackets rich would read as markup.
            table.add_row(*(Text(v) for v in (m.id, m.task, m.queue, m.reason, _shown(m.time))))
        return table

    def narrow(self) -> Table:
        table = Table(title=self.title, title_justify="left", show_lines=True)
        width = max(len(m.id) for m in self.rows)
        table.add_column("id / time (UTC)", overflow="fold", width=min(max(width, 19), 40))
        table.add_column("task on queue: reason", overflow="fold")
        for m in self.rows:
            table.add_row(
                Text(f"{m.id}\n{_shown(m.time)}"),
                Text.assemble((m.task, "bold"), f" on {m.queue}:\n{m.reason}"),
            )
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self.rows:
            yield Text(self.title)
            return
        wide = self.wide()
        natural = Measurement.get(console, options.update_width(10_000), wide).maximum
        yield wide if natural <= options.max_width else self.narrow()


def _shown(iso: str) -> str:
    return iso.removesuffix("+00:00").replace("T", " ")


def render_all(listed: dict[str, list[DeadMessage]]) -> RenderableType:
    return Group(*(DeadTable(name, rows) for name, rows in listed.items()))
