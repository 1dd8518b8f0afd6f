"""Long runs of ``redis-pipeline run``: progress from the first message, a question before a huge
run, and a Ctrl-C that says what it leaves behind.

- Submitting 25 M calls takes minutes; the grid goes in slices (``shared.submission``) and a
  bar moves per slice, beside the bar of results stored, from the start.
- Above ``CONFIRM_ABOVE`` calls the run warns and asks; ``--yes`` skips the question, and
  without a terminal to ask on (stdin not a tty) the run is refused in one line (exit 2).
- On Ctrl-C the run's workers are stopped (warm, ``WorkerGroup.stop``); then this prints how
  many messages are still queued, per queue, and the commands that drop them or finish them, and
  the run exits 130 (the shell's code for SIGINT).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shared.backend import (
    BACKEND_ENV,
    TASKS_ENV,
    load_backend,
    load_ops_backend,
    load_task_backend,
)
from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK, active_table
from shared.runner import RunRefused
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.pipeline import Task

#: More calls than this in one run: warn and ask first (``--yes`` skips the question).
CONFIRM_ABOVE = 1_000_000
#: Exit status of a run stopped by Ctrl-C (128 + SIGINT, as a shell reports it).
INTERRUPTED_EXIT = 130


class TooLarge(RunRefused):
    """A run above ``CONFIRM_ABOVE`` calls with nobody to confirm it and no ``--yes``."""


def confirm_size(calls: int, yes: bool, console: Console) -> None:
    """Ask before a run of more than ``CONFIRM_ABOVE`` calls, unless ``yes``; raise TooLarge when
    stdin is no terminal to ask on. Called before anything is started or enqueued."""
    if calls <= CONFIRM_ABOVE or yes:
        return
    if not sys.stdin.isatty():
        raise TooLarge(
            f"refusing to run {calls:,} calls (more than {CONFIRM_ABOVE:,}) without --yes: "
            "stdin is not a terminal to confirm on"
        )
    console.print(
        f"[yellow]warning:[/] {calls:,} calls is a long run (more than {CONFIRM_ABOVE:,}): every "
        "call is a message in Redis until a worker takes it; Ctrl-C stops it and says what is left.",
        highlight=False,
    )
    click.confirm("Submit them?", abort=True, err=True)


class RunProgress:
    """Two bars on stderr: calls submitted (moving per slice while the submit runs) and results
    stored. Keeps the last counts for the interrupt report."""

    def __init__(self, bar: Progress, name: str, calls: int, results: int) -> None:
        self.bar = bar
        self.calls = calls
        self.submitted = 0
        self.stored = 0
        self._submit = bar.add_task(f"{name} submitted", total=calls)
        self._store = bar.add_task(f"{name} stored", total=results)

    def on_submit(self, done: int, _total: int) -> None:
        self.submitted = done
        self.bar.update(self._submit, completed=done)

    def on_stored(self, done: int, _total: int) -> None:
        self.stored = done
        self.bar.update(self._store, completed=done)


@contextmanager
def run_progress(console: Console, name: str, calls: int, results: int) -> Iterator[RunProgress]:
    with Progress(
        TextColumn("{task.description:>18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        yield RunProgress(bar, name, calls, results)


@dataclass
class Leftovers:
    """Where an interrupted run of one backend leaves its messages, and what consumes them."""

    backend: str
    settings: Settings
    #: False: the run's own private redis-server, removed when the run exits.
    shared: bool
    #: A ``run --task`` run's task (its workers run the task's module); None for the grid.
    task: Task | None = None

    def workers(self) -> tuple[list[list[str]], dict[str, str]]:
        """Command lines of workers that finish the run's queues (one per queue), and the
        environment they need besides REDIS_URL."""
        if self.task is None:
            backend = load_backend(self.backend, self.settings)
            routing = active_table()
            queues = [routing.queue_for(COMPUTE_TASK), routing.queue_for(HANDLE_RESULT_TASK)]
            return [backend.worker_command([q]) for q in queues], {}
        from shared.pipeline import store_results  # declares the pipeline's tasks: only when needed

        tasks = load_task_backend(self.backend, self.settings)
        modules = [self.task.fn.__module__]
        env = {BACKEND_ENV: self.backend, TASKS_ENV: ",".join(modules)}
        queues = [self.task.queue, store_results.queue]
        return [tasks.task_worker_command([q], modules) for q in queues], env


def _command(argv: Sequence[str], env: dict[str, str]) -> str:
    """A command line to print: the console script by name, env assignments first."""
    words = [Path(argv[0]).name, *argv[1:]]
    return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in env.items()), shlex.join(words)])


def interrupt_report(left: Leftovers, progress: RunProgress | None) -> list[str]:
    """The lines that tell what an interrupted run left in Redis and what to do with it."""
    backend = load_ops_backend(left.backend, left.settings)
    queues = [q for q in backend.status().queues if q.depth or q.delayed]
    total = sum(q.depth + q.delayed for q in queues)
    per_queue = ", ".join(f"{q.name} {q.depth + q.delayed:,}" for q in queues) or "none"
    lines = ["Interrupted: the workers this run started are stopped."]
    if progress is not None:
        # The grid's count now (the stopped workers finished what they held); a task's as last seen.
        stored = backend.store.count() if left.task is None else progress.stored
        sent = f"{progress.submitted:,}" + ("+" if progress.submitted < progress.calls else "")
        lines.append(
            f"{left.backend}: {sent} of {progress.calls:,} calls submitted; {stored:,} results stored."
        )
    where = left.settings.redacted_url
    if not left.shared:
        lines.append(
            f"{left.backend}: {total:,} messages were still queued ({per_queue}) on this run's private "
            f"redis-server {where}, removed with it as the run exits: nothing to purge, nothing to "
            "resume. Set REDIS_URL to a Redis of yours to be able to resume an interrupted run."
        )
        return lines
    lines.append(f"{left.backend}: {total:,} messages remain queued on {where}: {per_queue}.")
    if left.task is None and (ttl := backend.store.client.ttl(backend.store.results_key)) > 0:
        lines.append(
            f"{left.backend}: the results so far stay in {backend.store.results_key} for "
            f"{round(ttl / 86_400)} days, then expire; `redis-pipeline run` refuses to start on them "
            "until --purge drops them."
        )
    if total == 0:
        return lines
    commands, env = left.workers()
    lines += [
        "With the same REDIS_URL:",
        f"  drop them:   redis-pipeline purge --backend {left.backend} --yes",
        "  finish them: start workers, one per queue, e.g.",
        *(f"                 {_command(argv, env)}" for argv in commands),
        "               they store the results (`redis-pipeline status` shows the progress).",
        "`redis-pipeline run` does not resume a run: it refuses non-empty queues, and with --purge "
        "starts over.",
    ]
    return lines


@contextmanager
def watched_run(console: Console, left: Leftovers, calls: int, results: int) -> Iterator[RunProgress]:
    """The run's bars (``RunProgress``); a Ctrl-C in the block (its workers already stopped on the
    way out) becomes the report of what is left, then exit 130."""
    progress: RunProgress | None = None
    try:
        with run_progress(console, left.backend, calls, results) as progress:
            yield progress
    except KeyboardInterrupt:
        try:
            lines = interrupt_report(left, progress)
        except Exception as exc:  # Redis gone too: say so rather than show a traceback
            lines = [f"Interrupted: the workers this run started are stopped; Redis not readable: {exc}"]
        for line in lines:
            console.print(line, highlight=False, soft_wrap=True, markup=False)
        raise SystemExit(INTERRUPTED_EXIT) from None
