"""``make compat``: Dramatiq's and RQ's own test suites, on stock and on our broker and worker.

    python -m tests.compat.run [--suite dramatiq|rq ...] [--ours-runs N] [--jobs N]

For each suite (``tests.compat.suites``) this fetches the installed release's sdist
(``tests.compat.sdists``), runs the chosen test files with pytest once on the stock side and
``--ours-runs`` times on ours (the swap is ``tests/compat/plugins``), each run against a private
redis-server of its own on a free port, started and stopped here. The table (per file, stock and
ours passed/failed/skipped) goes to stdout and, with the differences, to ``.compat/latest.md``
and ``.compat/latest.json``; each run's log and outcomes are in ``.compat/runs/``.

Exit 1 when a difference is not in ``expected_differences.toml``, a listed one no longer differs,
a test's outcome changes between our runs unlisted, or a test process dies (``tests.compat.report``).

Their suites flush Redis databases and default to ``localhost:6379``: every Python process of a
run has ``tests/compat/plugins`` on PYTHONPATH, whose ``sitecustomize`` sends any redis-py
connection to a loopback port 6379 to the run's private server instead. Each run is also its own
session (process group): a test that signals its whole group cannot reach this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import click

from shared.embedded import private_redis
from tests.compat.outcomes import Run, load_run
from tests.compat.report import (
    Expected,
    SuiteReport,
    as_json,
    compare,
    differences_text,
    load_expected,
    table,
)
from tests.compat.sdists import SdistError, suite_source
from tests.compat.suites import SUITES, Suite

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PLUGINS = HERE / "plugins"
EXPECTED = HERE / "expected_differences.toml"
#: Seconds one pytest run may take before its process group is killed (one takes 2-3 min).
RUN_TIMEOUT = 900
#: One test's limit (pytest-timeout, thread method: RQ and our worker use SIGALRM themselves).
TEST_TIMEOUT = 180
#: pytest's traceback style. "line" reads no source: on Python 3.11, pytest parsing a failing test's
#: source (``ast.parse``) while a worker thread formats an exception for its log (3.11 tracebacks
#: parse source lines too) can stop the whole session with "SystemError: AST constructor recursion
#: depth mismatch". ``--tb long`` shows full tracebacks in .compat/runs/*.log when investigating.
TRACEBACK = "line"
#: Environment a run must not inherit: it would point their suites or ours elsewhere.
DROPPED_PREFIXES = ("REDIS_", "RQ_", "DRAMATIQ_", "PIPELINE_", "PYTEST_", "COMPAT_")
DROPPED = frozenset({"PYTHONPATH", "RUN_SLOW_TESTS_TOO", "RUN_SSL_TESTS"})


@dataclass(frozen=True)
class Job:
    suite: Suite
    side: str
    index: int
    source: Path
    not_run: tuple[str, ...]
    runs_dir: Path
    tb: str

    @property
    def label(self) -> str:
        return f"{self.suite.name}-{self.side}-{self.index}"

    @property
    def record(self) -> Path:
        return self.runs_dir / f"{self.label}.jsonl"

    @property
    def log(self) -> Path:
        return self.runs_dir / f"{self.label}.log"


def check_placement(suite: Suite, source: Path) -> None:
    """Every test file of the sdist is either run or left out with a reason (``suites``)."""
    present = {path.relative_to(source).as_posix() for path in (source / "tests").glob("test*.py")}
    placed = set(suite.run) | set(suite.not_run)
    if unplaced := sorted(present - placed):
        raise click.ClickException(f"{suite.name}: test files neither run nor left out: {unplaced}")
    if missing := sorted(set(suite.run) - present):
        raise click.ClickException(f"{suite.name}: test files to run are not in the sdist: {missing}")


def child_env(port: int, source: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED_PREFIXES) and k not in DROPPED}
    # The compat_* plugins and the sitecustomize redirect; then their root, so that their `tests`
    # package wins over ours (on sys.path by the editable install) in every process, including
    # the `rqworker` subprocesses that import tests.fixtures.
    env["PYTHONPATH"] = os.pathsep.join([str(PLUGINS), str(source)])
    env["COMPAT_REDIS_PORT"] = str(port)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def command(job: Job, url: str) -> list[str]:
    suite = job.suite
    args = [sys.executable, "-P", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rN", "--color=no"]
    args.append(f"--tb={job.tb}")
    args += ["-p", "compat_record", "-p", suite.plugin, f"--compat-side={job.side}"]
    args += [f"--compat-redis-url={url}", f"--compat-record={job.record}"]
    args += [f"--timeout={TEST_TIMEOUT}", "--timeout-method=thread", *suite.pytest_args]
    for nodeid in job.not_run:
        args += ["--deselect", nodeid]
    return [*args, *suite.run]


def execute(job: Job) -> float:
    """Run one side of one suite on a private redis-server; the seconds it took."""
    job.record.unlink(missing_ok=True)
    started = time.monotonic()
    with private_redis() as server, job.log.open("w") as log:
        env = {**child_env(server.port, job.source), **job.suite.env}
        process = subprocess.Popen(
            command(job, server.url), cwd=job.source, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            process.wait(RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.write(f"\ncompat: killed after {RUN_TIMEOUT} s\n")
        finally:
            # The run's session: pytest and whatever its tests started and left behind.
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    seconds = time.monotonic() - started
    click.echo(f"compat: {job.label} finished in {seconds:.0f} s (exit {process.returncode})", err=True)
    return seconds


def plan(
    suites: Sequence[Suite], ours_runs: int, cache: Path, expected: dict[str, Expected], tb: str
) -> list[Job]:
    """Stock once and ours ``ours_runs`` times per suite, each a job of its own."""
    runs_dir = cache / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for suite in suites:
        try:
            version, source = suite_source(suite.name, cache)
        except SdistError as exc:
            raise click.ClickException(str(exc)) from None
        check_placement(suite, source)
        click.echo(f"compat: {suite.name} {version}: {len(suite.run)} test files from its sdist", err=True)
        not_run = tuple(expected.get(suite.name, Expected()).not_run_on_ours)
        jobs.append(Job(suite, "stock", 1, source, (), runs_dir, tb))
        jobs += [Job(suite, "ours", i, source, not_run, runs_dir, tb) for i in range(1, ours_runs + 1)]
    return jobs


def summarize(jobs: Sequence[Job], expected: dict[str, Expected]) -> list[SuiteReport]:
    reports = []
    for name in dict.fromkeys(job.suite.name for job in jobs):
        mine = [job for job in jobs if job.suite.name == name]
        stock = load_run(next(job for job in mine if job.side == "stock").record)
        ours: list[Run] = [load_run(job.record) for job in mine if job.side == "ours"]
        version = mine[0].source.name.rpartition("-")[2]
        reports.append(compare(name, version, stock, ours, expected.get(name, Expected())))
    return reports


@click.command()
@click.option("--suite", "names", multiple=True, type=click.Choice(sorted(SUITES)), help="default: all")
@click.option("--ours-runs", default=1, show_default=True, help="runs on our side (2+: find flaky tests)")
@click.option("--jobs", default=4, show_default=True, help="pytest runs at once (each has its own Redis)")
@click.option("--cache", type=click.Path(path_type=Path), default=ROOT / ".compat", show_default=True)
@click.option("--expected", "expected_path", type=click.Path(path_type=Path), default=EXPECTED)
@click.option("--tb", type=click.Choice(["line", "short", "long"]), default=TRACEBACK, show_default=True)
def main(
    names: tuple[str, ...], ours_runs: int, jobs: int, cache: Path, expected_path: Path, tb: str
) -> None:
    """Their suites on stock and on ours; exit 1 on any difference the expected file does not list."""
    started = time.monotonic()
    suites = [SUITES[name] for name in names] if names else list(SUITES.values())
    try:
        expected = load_expected(expected_path)
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"{expected_path}: {exc}") from None
    planned = plan(suites, max(1, ours_runs), cache, expected, tb)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(execute, planned))
    reports = summarize(planned, expected)
    seconds = time.monotonic() - started
    text = table(reports)
    listed = differences_text(reports)
    problems = [problem for report in reports for problem in report.problems]
    click.echo(text)
    if listed:
        click.echo("\n" + listed)
    (cache / "latest.md").write_text(text + "\n\n" + listed + "\n", encoding="utf-8")
    (cache / "latest.json").write_text(
        json.dumps(as_json(reports, seconds), indent=2) + "\n", encoding="utf-8"
    )
    click.echo(f"\ncompat: {seconds:.0f} s; table in {cache / 'latest.md'}", err=True)
    if problems:
        click.echo("\n".join(["", "compat: FAILED", *(f"  {problem}" for problem in problems)]), err=True)
        raise SystemExit(1)
    click.echo("compat: every difference is expected", err=True)


if __name__ == "__main__":
    main()
