"""``redis-pipeline dead``: the dead-lettered / failed messages, with the ids ``requeue`` takes.

Registered on the ``redis-pipeline`` group by ``shared.cli`` (kept apart so that module stays small).
"""

from __future__ import annotations

from collections import Counter

import click
from rich.console import Console

from shared.backend import BACKENDS
from shared.dead import DEFAULT_LIMIT, render_all, to_json


@click.command()
@click.option("--backend", type=click.Choice([*BACKENDS, "both"]), default="both", show_default=True)
@click.option("--queue", "queues", multiple=True, help="Only this queue (repeatable); default: all.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="Newest messages per queue; 0 for all.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON keyed by backend: id, task, queue, reason, time.")
def dead(backend: str, queues: tuple[str, ...], limit: int, as_json: bool) -> None:
    """List dead-lettered (Dramatiq) / failed (RQ) messages: id, task, queue, reason, time (UTC).

    Run one again with 'redis-pipeline requeue --backend NAME ID'.
    """
    from shared.cli import ops_backends  # shared.cli imports this module

    listed = {}
    for target in ops_backends(backend):
        if unknown := [q for q in queues if q not in target.queue_depths()]:
            raise click.BadParameter(f"unknown queue {unknown[0]!r} for {target.name}", param_hint="--queue")
        listed[target.name] = target.dead(list(queues) or None, limit or None)
    if as_json:
        click.echo(to_json(listed))
        return
    Console().print(render_all(listed))
    shown = Counter((name, m.queue) for name, rows in listed.items() for m in rows)
    if limit and limit in shown.values():
        click.echo(f"(the newest {limit} per queue; --limit 0 lists all)", err=True)
