"""``redis-pipeline``: run the seed's compute -> result scenario on Dramatiq and/or RQ."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import click
import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shared.backend import BACKENDS, load_backend
from shared.connection import RedisUnavailable, ping
from shared.embedded import RedisServerNotFound, private_redis
from shared.runner import RunResult, WorkersFailed, run_grid
from shared.settings import DEFAULT_REDIS_URL, Settings
from shared.tasks import Grid

stderr = Console(stderr=True)


@contextmanager
def redis_settings() -> Iterator[Settings]:
    """``REDIS_URL`` if set; else the local default if it answers; else a private redis-server."""
    if os.environ.get("REDIS_URL"):
        settings = Settings.from_env()
        ping(settings)
        yield settings
        return
    try:
        ping(Settings(DEFAULT_REDIS_URL), timeout=0.5)
        yield Settings(DEFAULT_REDIS_URL)
        return
    except RedisUnavailable:
        pass
    with private_redis() as server:
        stderr.print(
            f"[dim]No Redis on {DEFAULT_REDIS_URL}: started a private redis-server on {server.url}[/]"
        )
        os.environ["REDIS_URL"] = server.url
        try:
            yield Settings(server.url)
        finally:
            del os.environ["REDIS_URL"]


def run_one(name: str, settings: Settings, grid: Grid, compute_workers: int, log_dir: Path) -> RunResult:
    backend = load_backend(name, settings)
    with Progress(
        TextColumn(f"{name:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    ) as bar:
        task = bar.add_task(name, total=grid.size)
        return run_grid(
            backend,
            grid,
            compute_workers,
            log_dir=log_dir / name,
            progress=lambda done, total: bar.update(task, completed=done),
        )


@click.group()
def main() -> None:
    """The Celery compute -> result example on Redis, as Dramatiq actors and as RQ jobs."""


@main.command()
@click.option("--backend", type=click.Choice([*BACKENDS, "both"]), default="both", show_default=True)
@click.option(
    "--grid", "grid_text", default="50x50", show_default=True, help="WIDTHxHEIGHT points to compute."
)
@click.option("--compute-workers", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path), help="Keep worker logs here.")
def run(backend: str, grid_text: str, compute_workers: int, log_dir: Path | None) -> None:
    """Start workers with the stock CLIs, submit the grid, verify every result, stop the workers."""
    try:
        grid = Grid.parse(grid_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--grid") from None
    names = list(BACKENDS) if backend == "both" else [backend]
    failed = False
    with ExitStack() as stack:
        settings = stack.enter_context(redis_settings())
        logs = log_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pipeline-logs-")))
        for name in names:
            result = run_one(name, settings, grid, compute_workers, logs)
            click.echo(result.summary())
            failed = failed or not result.ok
    if failed:
        sys.exit(1)


def entry() -> None:
    """Console-script entry: expected failures end in one line on stderr, not a traceback."""
    try:
        main(standalone_mode=True)
    except (RedisUnavailable, RedisServerNotFound, WorkersFailed) as exc:
        stderr.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except redis.RedisError as exc:
        url = Settings.from_env().redacted_url
        stderr.print(f"[red]error:[/] Redis at {url} failed: {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
