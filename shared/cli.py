"""``redis-pipeline``: run the seed's compute -> result scenario on Dramatiq and/or RQ."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import NoReturn

import click
import redis
from rich.console import Console
from rich.live import Live
from rich.text import Text

from shared.backend import (
    BACKEND_ENV,
    BACKENDS,
    TASKS_ENV,
    OpsBackend,
    UnknownBackend,
    configured_backend,
    load_backend,
    load_ops_backend,
    load_task_backend,
)
from shared.chunks import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE
from shared.connection import RedisUnavailable, ping
from shared.embedded import RedisServerNotFound, private_redis
from shared.env_command import env as env_command
from shared.errors import ConfigError
from shared.long_run import Leftovers, confirm_size, watched_run
from shared.ops import Status, render_all, to_json, with_unserved_routes
from shared.ops_cli import dead as dead_command
from shared.ops_cli import switchover as switchover_command
from shared.ownership import findings, refusal
from shared.preflight import check_environment
from shared.results import StoreError
from shared.routing import active_table
from shared.runner import RunRefused, RunResult, WorkersFailed, run_grid
from shared.settings import Settings
from shared.switchover import SwitchoverFailed
from shared.tasks import Grid

stderr = Console(stderr=True)


@contextmanager
def redis_settings() -> Iterator[Settings]:
    """``REDIS_URL`` if set (shared: ``shared.ownership`` guards what is not ours); else a private
    redis-server, never whatever answers on 6379. Says which, as the run's first line."""
    if os.environ.get("REDIS_URL"):
        settings = Settings.from_env()
        ping(settings)
        stderr.print(
            f"Redis: {settings.redacted_url} (shared, from REDIS_URL)", highlight=False, soft_wrap=True
        )
        yield settings
        return
    with private_redis() as server:
        stderr.print(
            f"Redis: private redis-server at {server.url} (started for this run, removed after)",
            highlight=False,
            soft_wrap=True,
        )
        os.environ["REDIS_URL"] = server.url
        try:
            yield Settings(server.url)
        finally:
            del os.environ["REDIS_URL"]


def refuse_foreign(names: list[str], settings: Settings, purge: bool) -> None:
    """Before any backend runs: refuse, one line per finding, if a run would empty what is not
    its own (``shared.ownership``), unless ``purge``."""
    found = [f for name in names for f in findings(load_backend(name, settings))]
    if found and not purge:
        raise RunRefused(refusal(found))


def run_one(
    name: str,
    settings: Settings,
    grid: Grid,
    compute_workers: int,
    log_dir: Path,
    chunk_size: int | None,
    purge: bool = False,
    keep: bool = False,
    shared: bool = True,
) -> RunResult:
    backend = load_backend(name, settings)
    # Bars for the submission and the results; Ctrl-C: what is left and how to finish it, exit 130.
    with watched_run(stderr, Leftovers(name, settings, shared), grid.size, grid.size) as bars:
        return run_grid(
            backend,
            grid,
            compute_workers,
            log_dir=log_dir / name,
            progress=bars.on_stored,
            chunk_size=chunk_size,
            purge=purge,
            keep=keep,
            submitted=bars.on_submit,
        )


@click.group()
def main() -> None:
    """The Celery compute -> result example on Redis, as Dramatiq actors and as RQ jobs."""
    # Task and celeryconfig modules are found from here, as the dramatiq and rq CLIs find them.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if "--help" not in sys.argv[1:]:  # help works whatever the settings
        check_environment()  # a bad setting: one line and exit 2 before anything starts


@main.command()
@click.option(
    "--backend",
    type=click.Choice([*BACKENDS, "both"]),
    help="Default: both for the grid; PIPELINE_BACKEND (else dramatiq) with --task.",
)
@click.option(
    "--grid", "grid_text", default="50x50", show_default=True, help="WIDTHxHEIGHT points to compute."
)
@click.option("--compute-workers", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path), help="Keep worker logs here.")
@click.option(
    "--chunked",
    is_flag=True,
    help=f"Send the grid as chunks of {DEFAULT_CHUNK_SIZE} points per message (a task: its chunk_size).",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(1, MAX_CHUNK_SIZE),
    help="Points (calls) per message in chunked mode (implies --chunked).",
)
@click.option(
    "--task", "task_spec", metavar="MODULE:FUNCTION", help="Run a task of yours instead of the grid."
)
@click.option(
    "--args",
    "args_file",
    metavar="FILE",
    help="With --task: one JSON array (or object) of arguments per line; - for stdin.",
)
@click.option(
    "--check", "check_spec", metavar="MODULE:FUNCTION", help="With --task: check(value, *args) -> bool."
)
@click.option("--replace", is_flag=True, help="With --task: clear the task's stored results first.")
@click.option(
    "--purge", is_flag=True, help="Empty the queues and results a run would otherwise refuse to start on."
)
@click.option("--keep", is_flag=True, help="Keep the grid's results in Redis after the run.")
@click.option("--yes", is_flag=True, help="Do not ask before a run of over 1,000,000 calls.")
def run(
    backend: str | None,
    grid_text: str,
    compute_workers: int,
    log_dir: Path | None,
    chunked: bool,
    chunk_size: int | None,
    task_spec: str | None,
    args_file: str | None,
    check_spec: str | None,
    replace: bool,
    purge: bool,
    keep: bool,
    yes: bool,
) -> None:
    """Start workers with the stock CLIs, submit the grid (or your task's calls), verify every
    result, stop the workers.

    By default one message per grid point, as the seed; --chunked sends many points per message.
    """
    if task_spec is not None and (purge or keep):
        raise click.UsageError("--purge and --keep go with the grid (--task: see --replace)")
    if task_spec is not None:
        run_task_command(
            backend,
            task_spec,
            args_file,
            check_spec,
            replace,
            compute_workers,
            log_dir,
            chunk_size or chunked,
            yes,
        )
        return
    if args_file or check_spec or replace:
        raise click.UsageError("--args, --check and --replace go with --task")
    if chunked and chunk_size is None:
        chunk_size = DEFAULT_CHUNK_SIZE
    try:
        grid = Grid.parse(grid_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--grid") from None
    names = list(BACKENDS) if backend in (None, "both") else [backend]
    confirm_size(grid.size, yes, stderr)  # before anything starts (shared.long_run)
    shared = bool(os.environ.get("REDIS_URL"))  # else the run's own redis-server, gone after it
    failed = False
    with ExitStack() as stack:
        settings = stack.enter_context(redis_settings())
        logs = log_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pipeline-logs-")))
        refuse_foreign(names, settings, purge)
        for name in names:
            result = run_one(name, settings, grid, compute_workers, logs, chunk_size, purge, keep, shared)
            click.echo(result.summary())
            failed = failed or not result.ok
    if failed:
        sys.exit(1)


def run_task_command(
    backend: str | None,
    task_spec: str,
    args_file: str | None,
    check_spec: str | None,
    replace: bool,
    compute_workers: int,
    log_dir: Path | None,
    chunking: int | bool,
    yes: bool = False,
) -> None:
    """``run --task``: your task's calls through workers of one backend, each verified stored once.
    ``chunking``: calls per message, or True for the task's own ``chunk_size``."""
    if args_file is None:
        raise click.UsageError("--task needs --args FILE (one JSON array of arguments per line)")
    if backend == "both":
        raise click.UsageError("--task runs on one backend: --backend dramatiq or rq")
    name = backend or configured_backend()
    os.environ[BACKEND_ENV] = name  # the task module declares its tasks on this backend
    from shared.pipeline import resolve  # declares the pipeline's own tasks on that backend
    from shared.task_runner import load_check, read_calls, run_task

    try:
        items = read_calls(args_file)
        check = load_check(check_spec) if check_spec else None
        task = resolve(task_spec)
        calls = task.calls(items)
        chunk_size = task.options.chunk_size if chunking is True else (chunking or None)
    except ConfigError:
        raise  # an unreadable arguments file: one line from entry(), as every configuration error
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    confirm_size(len(calls), yes, stderr)
    shared = bool(os.environ.get("REDIS_URL"))
    with ExitStack() as stack:
        settings = stack.enter_context(redis_settings())
        logs = log_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pipeline-logs-")))
        left = Leftovers(name, settings, shared, task)
        with watched_run(stderr, left, len(calls), len({c.key for c in calls})) as bars:
            result = run_task(
                load_task_backend(name, settings),
                task,
                calls,
                compute_workers,
                log_dir=logs / name,
                chunk_size=chunk_size,
                check=check,
                replace=replace,
                progress=bars.on_stored,
                submitted=bars.on_submit,
            )
    click.echo(result.summary())
    if not result.ok:
        sys.exit(1)


def ops_backends(backend: str) -> list[OpsBackend]:
    """The named backend(s) on ``REDIS_URL`` as it is: the ops commands never start a Redis."""
    settings = Settings.from_env()
    ping(settings)
    return [load_ops_backend(name, settings) for name in (list(BACKENDS) if backend == "both" else [backend])]


def routes_in_force() -> dict[str, str]:
    """The routing table's routes and, where ``PIPELINE_TASKS`` names task modules, each declared
    task's queue (an explicit ``queue=`` is a route too)."""
    routes = active_table().routed_queues()
    if os.environ.get(TASKS_ENV):
        from shared.pipeline import import_tasks

        routes.update({t.name: t.queue for t in import_tasks() if not t.name.startswith("pipeline.")})
    return routes


@main.command()
@click.option("--backend", type=click.Choice([*BACKENDS, "both"]), default="both", show_default=True)
@click.option("--watch", is_flag=True, help="Refresh in place until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True, help="Seconds.")
@click.option("--count", type=click.IntRange(min=1), help="With --watch: stop after this many refreshes.")
@click.option("--json", "as_json", is_flag=True, help="JSON keyed by backend (with --watch: one line each).")
def status(backend: str, watch: bool, interval: float, count: int | None, as_json: bool) -> None:
    """Per queue: waiting, in flight, dead, delayed; the live workers; the results stored."""
    backends = ops_backends(backend)

    routes = routes_in_force()

    def take() -> list[Status]:
        return [with_unserved_routes(b.status(), routes) for b in backends]

    try:
        if as_json:
            refreshes = 0
            while True:
                click.echo(to_json(take(), indent=None if watch else 2))
                refreshes += 1
                if not watch or refreshes == count:
                    return
                time.sleep(interval)
        console = Console()
        if not watch:
            console.print(render_all(take()))
            return
        with Live(render_all(take()), console=console, auto_refresh=False) as live:
            refreshes = 1
            while refreshes != count:
                time.sleep(interval)
                live.update(render_all(take()), refresh=True)
                refreshes += 1
    except KeyboardInterrupt:
        return


@main.command()
@click.option("--backend", type=click.Choice(list(BACKENDS)), required=True)
@click.option("--all", "everything", is_flag=True, help="Every dead-lettered / failed message.")
@click.argument("ids", nargs=-1)
def requeue(backend: str, everything: bool, ids: tuple[str, ...]) -> None:
    """Move dead-lettered (Dramatiq) / failed (RQ) messages back to their queue, by id or --all."""
    if everything == bool(ids):
        raise click.UsageError("give the ids to requeue, or --all")
    moved = ops_backends(backend)[0].requeue(None if everything else list(ids))
    click.echo(f"{backend}: requeued {len(moved)}")
    if missing := [i for i in ids if i not in moved]:
        stderr.print(f"[red]not dead-lettered / failed:[/] {', '.join(missing)}", highlight=False)
        sys.exit(1)


@main.command()
@click.option("--backend", type=click.Choice(list(BACKENDS)), required=True)
@click.option("--queue", "queues", multiple=True, help="Only this queue (repeatable); default: all.")
@click.option("--dead", is_flag=True, help="Also drop the dead-lettered / failed messages.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge(backend: str, queues: tuple[str, ...], dead: bool, yes: bool) -> None:
    """Drop waiting and delayed messages (never what workers hold, never stored results)."""
    target = ops_backends(backend)[0]
    current = {q.name: q for q in target.status().queues}
    if unknown := [q for q in queues if q not in current]:
        raise click.BadParameter(f"unknown queue {unknown[0]!r}; {backend} has {', '.join(current)}")
    names = list(queues) or list(current)
    counts = [current[n].depth + current[n].delayed + (current[n].dead if dead else 0) for n in names]
    what = "waiting, delayed" + (" and dead" if dead else "")
    if not yes:
        click.confirm(
            f"Drop {sum(counts)} {what} messages from {backend} queue(s) {', '.join(names)} "
            f"on {target.settings.redacted_url}?",
            abort=True,
            err=True,
        )
    for name, n in target.purge_queues(names, dead).items():
        click.echo(f"{backend}: {name}: dropped {n}")


main.add_command(dead_command)  # ``redis-pipeline dead`` (shared/ops_cli.py)
main.add_command(env_command)  # ``redis-pipeline env`` (shared/env_command.py)
main.add_command(switchover_command)  # ``redis-pipeline switchover`` (shared/ops_cli.py)


#: What click (8.2+; we pin 8.4+) raises for a group called with no command: the whole help.
NO_ARGS_IS_HELP = click.exceptions.NoArgsIsHelpError


def _fail(message: str, code: int = 2) -> NoReturn:
    """One ``error:`` line on stderr (the message as text: never read as markup), then exit."""
    stderr.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)
    sys.exit(code)


def entry() -> None:
    """Console-script entry: expected failures end in one line on stderr, not a traceback; so
    does a bad command line (click's usage block, in one line with where to look)."""
    try:
        code = main(standalone_mode=False)
    except NO_ARGS_IS_HELP as exc:  # a bare ``redis-pipeline``: the help, as click shows it
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "redis-pipeline"
        _fail(f"{exc.format_message()} (see {command} --help)", exc.exit_code)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except click.Abort:
        stderr.print("Aborted!", highlight=False)
        sys.exit(1)
    except (
        RedisUnavailable,
        RedisServerNotFound,
        WorkersFailed,
        RunRefused,
        StoreError,
        UnknownBackend,
        ConfigError,
        SwitchoverFailed,
    ) as exc:
        _fail(str(exc))
    except redis.RedisError as exc:
        _fail(f"Redis at {Settings.from_env().redacted_url} failed: {exc}")
    if isinstance(code, int):  # a command's ctx.exit(code)
        sys.exit(code)
