"""``python -m benchmarks run --profile quick|full`` and ``python -m benchmarks readme-table``."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console

from benchmarks import machine, output, report, schema
from benchmarks.harness import Harness
from benchmarks.own_task import own_task_run
from benchmarks.result_stores import StoreKind
from benchmarks.stacks import STACKS, Stack, select
from benchmarks.workloads import PROFILES, Profile
from shared.backend import BACKENDS, load_backend
from shared.connection import ping
from shared.embedded import private_redis
from shared.ownership import findings, refusal
from shared.settings import Settings
from shared.tasks import Grid

console = Console(stderr=True)


@contextmanager
def bench_redis() -> Iterator[Settings]:
    """``REDIS_URL`` if set, else a private redis-server for the run.

    A benchmark purges the pipeline's queues and loads the server: never do that to a Redis the user
    did not name. The URL also goes into the environment, which task modules read when imported.
    """
    if os.environ.get("REDIS_URL"):
        settings = Settings.from_env()
        ping(settings)
        # Its runs purge the pipeline's queues and results: refuse where they hold anything.
        found = [f for name in BACKENDS for f in findings(load_backend(name, settings))]
        if found:
            remedy = "empty them (redis-pipeline purge) or unset REDIS_URL for a private server"
            raise click.ClickException(refusal(found, remedy))
        yield settings
        return
    with private_redis() as server:
        os.environ["REDIS_URL"] = server.url
        try:
            yield Settings(server.url)
        finally:
            del os.environ["REDIS_URL"]


@click.group()
def main() -> None:
    """Benchmarks: Dramatiq and RQ against the seed's Celery/RabbitMQ, with a Redis limit probe."""


@main.command()
@click.option("--profile", type=click.Choice(list(PROFILES)), default="quick", show_default=True)
@click.option(
    "--stack",
    "stack_names",
    multiple=True,
    help=f"Only these stacks (repeatable): {', '.join(sorted({s.stack for s in STACKS}))} or 'rq stock'.",
)
@click.option(
    "--workload",
    "workloads",
    multiple=True,
    help="Only the profile's cases of these workloads (repeatable): grid, cpu, latency, submit, ...",
)
@click.option("--repeats", type=click.IntRange(1, 50), help="Repetitions per case instead of the profile's.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Results root (default benchmarks/results).",
)
@click.option("--task", "task_spec", metavar="MODULE:FUNCTION", help="Your @task instead of the grid.")
@click.option("--args", "args_file", metavar="FILE", help="With --task: one JSON array (or object) per line.")
@click.option("--check", "check_spec", metavar="MODULE:FUNCTION", help="With --task: check(value, *args).")
@click.option(
    "--store",
    type=click.Choice(["redis", "sqlite", "postgres"]),
    default="redis",
    show_default=True,
    help="With --task: where the results go (the run's Redis, a SQLite file, a private PostgreSQL).",
)
def run(
    profile: str,
    stack_names: tuple[str, ...],
    workloads: tuple[str, ...],
    repeats: int | None,
    out: Path | None,
    task_spec: str | None,
    args_file: str | None,
    check_spec: str | None,
    store: StoreKind,
) -> None:
    """Run every stack on the profile's workloads; write results.json, report.md and charts.

    With --task, your task's calls (--args) run instead of the grid on our four stacks (both
    backends, per message and chunked); the report goes beside the others, latest.json stays."""
    root = out or output.RESULTS
    if task_spec is None:
        if args_file or check_spec:
            raise click.UsageError("--args and --check go with --task")
        stacks, chosen = _stacks(stack_names), _profile(profile, workloads, repeats)
    elif workloads:
        raise click.UsageError("--workload goes with the grid; --task runs your calls")
    with bench_redis() as settings:
        if task_spec is not None:  # imported here: a task module binds its driver to REDIS_URL
            stacks, chosen = own_task_run(task_spec, args_file, check_spec, store, PROFILES[profile], repeats)
            stacks = [s for s in stacks if not stack_names or {s.label, s.stack} & set(stack_names)]
        directory = output.run_dir(root, suffix="-task" if task_spec else "")
        doc = Harness(chosen, stacks, settings, directory, console).run()
    # A run of your task leaves latest.json (the README's tables) to the grid's runs.
    results = output.write(doc, directory, None if task_spec else root)
    console.print(f"\n{(directory / 'report.md').read_text()}", markup=False, highlight=False)
    console.print(f"[bold]wrote[/] {results.parent} ({doc['wall_seconds']:.0f} s)")
    if any(r["status"].startswith("FAILED") for r in doc["summary"]):
        sys.exit(1)


def _stacks(names: tuple[str, ...]) -> list[Stack]:
    try:
        return select(names or None)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--stack") from None


def _profile(name: str, workloads: tuple[str, ...], repeats: int | None) -> Profile:
    try:
        return PROFILES[name].narrowed(workloads or None, repeats)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--workload") from None


@main.command("readme-table")
@click.option(
    "--results",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=output.RESULTS / "latest.json",
    show_default=True,
)
def readme_table(results: Path) -> None:
    """Print the README's benchmark table, rendered from a results file."""
    doc = output.load(results)
    if errors := schema.problems(doc):
        raise click.ClickException(f"{results} is not a results file: {'; '.join(errors[:3])}")
    click.echo(report.readme_table(doc), nl=False)


@main.command("render")
@click.argument("results", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def render(results: Path) -> None:
    """Redraw report.md and the charts beside an existing results.json."""
    output.write(output.load(results), results.parent, root=None)
    click.echo(results.parent / "report.md")


CHAOS_STACKS = (
    "dramatiq ours",
    "dramatiq chunked",
    "rq ours",
    "rq chunked",
    "celery-rabbitmq seed-defaults",
    "celery-rabbitmq tuned",
    # Peer baselines on Redis, as their docs set them up (reported, not required to pass).
    "celery-redis seed-defaults",
    "huey seed-defaults",
)


@main.command()
@click.option(
    "--stack",
    "stack_names",
    multiple=True,
    help=f"Only these (repeatable); default: {CHAOS_STACKS}, and the PostgreSQL-store stacks "
    "for kill-result and postgres-restart.",
)
@click.option("--scenario", "scenario_names", multiple=True, help="Only these scenarios (repeatable).")
@click.option("--grid", "grid_text", default="50x50", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Results root.")
def chaos(
    stack_names: tuple[str, ...], scenario_names: tuple[str, ...], grid_text: str, out: Path | None
) -> None:
    """Kill workers, restart Redis or PostgreSQL, poison the queues: count what is lost, wrong or doubled."""
    from benchmarks import chaos_report
    from benchmarks.chaos import plan, run_scenario, skip_row
    from benchmarks.result_stores import STORES

    try:
        runs = plan(scenario_names, stack_names, CHAOS_STACKS)
        grid = Grid.parse(grid_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    root = out or output.RESULTS
    directory = output.run_dir(root, suffix="-chaos")
    rows: list[dict[str, object]] = []
    with STORES.session():  # the PostgreSQL stacks' private PostgreSQL, for this run only
        with private_redis() as server:  # only for the machine description and stack checks
            settings = Settings(server.url)
            machine_doc = machine.describe(settings)
            stacks = {stack.key: stack for _, stack in runs}
            problems = {key: stack.problem(settings) for key, stack in stacks.items()}
        for scenario, stack in runs:
            if problem := problems[stack.key]:
                console.print(f"[yellow]skipped[/] {scenario.name} on {stack.label}: {problem}")
                if (skipped := skip_row(scenario, stack, grid, problem)) is not None:
                    rows.append(skipped.as_json())
                continue
            console.print(f"[bold]{scenario.name}[/] on {stack.label} …")
            result = run_scenario(
                scenario, stack, grid, directory / "logs" / f"{scenario.name}-{stack.stack}-{stack.profile}"
            )
            rows.append(result.as_json())
            verdict = f"skipped: {result.skipped}" if result.skipped else "pass" if result.passed else "FAIL"
            console.print(
                f"  {verdict}: lost {result.lost}, wrong {result.wrong}, doubled {result.doubled}, "
                f"redeliveries {result.redeliveries}, recovery {result.recovery_s} s"
            )
    doc = {
        "schema": 1,
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "grid": str(grid),
        "tasks": grid.size,
        "machine": machine_doc,
        "chaos": rows,
    }
    (directory / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
    descriptions = {s.name: s.description for s, _ in runs}
    (directory / "report.md").write_text(chaos_report.markdown(doc, descriptions))
    (root / "latest-chaos.json").write_text(json.dumps(doc, indent=1) + "\n")
    click.echo(chaos_report.markdown(doc, descriptions))
    if any(r["required"] and not r["passed"] for r in rows):
        sys.exit(1)


def _table_command(name: str, results_file: str, renderer: str, what: str) -> None:
    """``name``: print the README table that ``benchmarks.<renderer>.readme_table`` renders from a
    results file (``make chaos``'s, ``make failover``'s)."""

    @main.command(name, help=f"Print the README's {what} table from a {results_file} results file.")
    @click.option(
        "--results",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        default=output.RESULTS / results_file,
        show_default=True,
    )
    def command(results: Path) -> None:
        module = importlib.import_module(f"benchmarks.{renderer}")
        click.echo(module.readme_table(json.loads(results.read_text())), nl=False)


_table_command("chaos-table", "latest-chaos.json", "chaos_report", "reliability")
_table_command("failover-table", "latest-failover.json", "failover_report", "failover")


README = Path(__file__).parent.parent / "README.md"


@main.command("update-readme")
@click.option("--readme", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=README)
def update_readme(readme: Path) -> None:
    """Replace the tables between the README's ``<!-- bench-table -->`` / ``<!-- chaos-table -->`` /
    ``<!-- failover-table -->`` markers with ones rendered from latest.json / latest-chaos.json /
    latest-failover.json (the tables are never hand-edited)."""
    from benchmarks import chaos_report, failover_report

    text = readme.read_text()
    sources = {
        "bench-table": (output.RESULTS / "latest.json", lambda doc: report.readme_table(doc)),
        "chaos-table": (output.RESULTS / "latest-chaos.json", chaos_report.readme_table),
        "targets-table": (output.RESULTS / "latest.json", report.readme_targets),
        "failover-table": (output.RESULTS / "latest-failover.json", failover_report.readme_table),
    }
    for tag, (path, render) in sources.items():
        if not path.exists() or f"<!-- /{tag} -->" not in text:
            continue
        start = text.index("-->", text.index(f"<!-- {tag}:")) + 3
        end = text.index(f"<!-- /{tag} -->")
        text = text[:start] + "\n" + render(json.loads(path.read_text())).strip() + "\n" + text[end:]
    readme.write_text(text)
    click.echo(f"updated {readme}")
