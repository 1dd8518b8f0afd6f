"""``redis-pipeline dead`` (the dead-lettered / failed messages, with the ids ``requeue`` takes)
and ``redis-pipeline switchover`` (a planned Sentinel switchover, ``shared.switchover``).

Registered on the ``redis-pipeline`` group by ``shared.cli`` (kept apart so that module stays small).
"""

from __future__ import annotations

from collections import Counter

import click
from rich.console import Console

from shared.backend import BACKENDS
from shared.dead import DEFAULT_LIMIT, render_all, to_json
from shared.errors import config_error
from shared.sentinel import is_sentinel_url
from shared.settings import Settings
from shared.switchover import DEFAULT_TIMEOUT_S, describe
from shared.switchover import switchover as switch_over


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


@click.command()
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=DEFAULT_TIMEOUT_S,
    show_default=True,
    help="Seconds writes may stay paused at most.",
)
def switchover(timeout: float) -> None:
    """Planned switchover of REDIS_URL's Sentinel master (redis+sentinel://...) to a replica,
    losing no acknowledged write.

    Pauses writes on the master, waits until its replicas hold everything, runs SENTINEL
    FAILOVER, makes the old master a replica of the new one, resumes writes (they go to the new
    master). A plain SENTINEL FAILOVER lets the old master take writes that are then lost.
    """
    settings = Settings.from_env()
    if not is_sentinel_url(settings.redis_url):
        raise config_error(f"REDIS_URL={settings.redacted_url}: switchover needs a redis+sentinel:// URL")
    click.echo(describe(switch_over(settings.redis_url, timeout)))
