"""The benchmark harness: its statistics, its results document, and every stack end to end (tiny)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from benchmarks import output, report, schema, stats
from benchmarks.cli import main as bench_cli
from benchmarks.harness import Harness
from benchmarks.measure import RunRecord
from benchmarks.stacks import STACKS, Stack, select
from benchmarks.summary import summarize
from benchmarks.workloads import PROFILES
from shared.backend import Backend
from shared.embedded import free_port
from shared.routing import SEED_TABLE, load_celeryconfig
from shared.settings import Settings

QUIET = Console(quiet=True)


# --- statistics on known inputs -------------------------------------------------------------------


def test_spread_is_median_min_max() -> None:
    assert stats.spread([3.0, 1.0, 2.0, 10.0]) == stats.Spread(2.5, 1.0, 10.0)
    assert stats.spread([]) is None


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([1, 2, 3, 4], 50, 2.5),
        (list(range(1, 11)), 90, 9.1),
        (list(range(1, 101)), 99, 99.01),
        ([7], 99, 7.0),
        ([5, 1], 0, 1.0),
        ([5, 1], 100, 5.0),
    ],
)
def test_percentile_interpolates_between_ranks(values: list[float], p: float, expected: float) -> None:
    assert stats.percentile(values, p) == pytest.approx(expected)


def test_percentile_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        stats.percentile([], 50)
    with pytest.raises(ValueError):
        stats.percentile([1], 101)


def test_latency_summary() -> None:
    summary = stats.latency_summary([float(v) for v in range(1, 101)])
    assert summary == pytest.approx({"p50": 50.5, "p90": 90.1, "p99": 99.01, "max": 100.0})
    assert stats.latency_summary([]) is None


def test_ratios_are_paired_by_repetition_then_median() -> None:
    values = {1: 10.0, 2: 30.0, 3: 20.0, 4: 99.0}  # repetition 4 has no baseline: ignored
    bases = {1: 5.0, 2: 10.0, 3: 20.0}
    assert stats.paired_ratio_median(values, bases) == 2.0  # ratios 2, 3, 1
    assert stats.paired_ratio_median(values, {}) is None


def _run(stack: str, profile: str, repeat: int, throughput: float, status: str = "ok") -> RunRecord:
    return RunRecord(
        stack=stack,
        profile=profile,
        workload="grid",
        tasks=100,
        compute_workers=2,
        repeat=repeat,
        grid="10x10",
        cpu_cost_ms=0.0,
        rate_per_s=None,
        status=status,
        verified=status == "ok",
        problems="" if status == "ok" else "1 missing ((0, 0))",
        throughput=throughput,
    )


def test_summary_excludes_failed_runs_and_pairs_ratios() -> None:
    runs = [
        _run("celery-rabbitmq", "seed-defaults", 1, 100.0),
        _run("celery-rabbitmq", "seed-defaults", 2, 200.0),
        _run("redis-limit", "probe", 1, 1000.0),
        _run("redis-limit", "probe", 2, 1000.0),
        _run("dramatiq", "ours", 1, 300.0),
        _run("dramatiq", "ours", 2, 9999.0, status="FAILED"),
    ]
    rows = {(r["stack"], r["profile"]): r for r in summarize(runs, {}, [("grid", 2)], {}, set())}
    ours = rows[("dramatiq", "ours")]
    assert ours["status"] == "FAILED 1 of 2"
    assert (ours["throughput_median"], ours["throughput_min"], ours["throughput_max"]) == (300, 300, 300)
    assert ours["ratio_vs_celery_median"] == 3.0  # only repetition 1 is verified
    assert ours["fraction_of_limit"] == 0.3
    assert rows[("celery-rabbitmq", "seed-defaults")]["ratio_vs_celery_median"] == 1.0


# --- the baseline's configuration -----------------------------------------------------------------


def test_celery_baseline_routes_exactly_as_the_seed() -> None:
    assert load_celeryconfig("benchmarks.celeryconfig") == SEED_TABLE


def test_stack_selection() -> None:
    assert [s.label for s in select(["rq"])] == ["rq ours", "rq stock", "rq chunked"]
    assert [s.label for s in select(["dramatiq stock"])] == ["dramatiq stock"]
    with pytest.raises(ValueError, match="unknown stack"):
        select(["kafka"])


# --- end to end, real workers ---------------------------------------------------------------------


def _harness(stacks: list[Stack], settings: Settings, out: Path, **kwargs: Any) -> dict[str, Any]:
    return Harness(PROFILES["smoke"], stacks, settings, out, QUIET, **kwargs).run()


@pytest.mark.slow
def test_smoke_run_of_every_stack_writes_a_valid_verified_report(settings: Settings, tmp_path: Path) -> None:
    doc = _harness(list(STACKS), settings, tmp_path)
    results = output.write(doc, tmp_path, root=tmp_path)

    written = json.loads(results.read_text())
    assert schema.problems(written) == []
    assert {(s["stack"], s["profile"], s["status"]) for s in written["stacks"]} == {
        (s.stack, s.profile, "ran") for s in STACKS
    }
    grid_runs = [r for r in written["runs"] if r["workload"] == "grid"]
    assert len(grid_runs) == len(STACKS)
    for run in written["runs"]:
        assert run["status"] == "ok", run
        assert run["verified"] is True
    for run in grid_runs:
        assert run["tasks"] == 16
        assert run["throughput"] > 0
        assert run["cpu_s_per_1k"] is not None and run["peak_rss_mb"] > 0
    latency = [r for r in written["runs"] if r["workload"] == "latency"]
    assert all(set(r["latency_ms"]) == {"p50", "p90", "p99", "max"} for r in latency)

    limit = next(r for r in written["summary"] if r["stack"] == "redis-limit" and r["workload"] == "grid")
    assert limit["fraction_of_limit"] == 1.0
    baseline = next(
        r for r in written["summary"] if r["profile"] == "seed-defaults" and r["workload"] == "grid"
    )
    assert baseline["ratio_vs_celery_median"] == 1.0

    assert (tmp_path / "latest.json").read_text() == results.read_text()
    assert (tmp_path / "throughput.png").stat().st_size > 0
    assert (tmp_path / "latency_cdf.png").stat().st_size > 0
    markdown = (tmp_path / "report.md").read_text()
    for stack in STACKS:
        assert f"| {stack.stack} | {stack.profile} | grid |" in markdown

    table = CliRunner().invoke(bench_cli, ["readme-table", "--results", str(tmp_path / "latest.json")])
    assert table.exit_code == 0, table.output
    assert table.output == report.readme_table(written)
    assert "| redis-limit | probe |" in table.output


def _lose_one_result(backend: Backend) -> None:
    backend.store.client.hdel(backend.store.results_key, "0,0")


@pytest.mark.slow
def test_lost_result_is_failed_and_unreachable_broker_is_skipped(settings: Settings, tmp_path: Path) -> None:
    from benchmarks.celery_backend import broker_problem

    dead_broker = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    celery = next(s for s in STACKS if s.key == ("celery-rabbitmq", "seed-defaults"))
    unreachable = Stack(celery.stack, celery.profile, celery.make, lambda _: broker_problem(dead_broker, 1.0))
    limit = next(s for s in STACKS if s.stack == "redis-limit")

    doc = _harness([unreachable, limit], settings, tmp_path, before_verify=_lose_one_result)

    assert schema.problems(doc) == []
    rows = {(r["stack"], r["workload"]): r for r in doc["summary"]}
    lost = rows[("redis-limit", "grid")]
    assert lost["status"] == "FAILED"
    assert lost["throughput_median"] is None  # excluded from the figures
    assert lost["problems"] == ["1 missing ((0, 0))"]
    assert all(r["verified"] is False for r in doc["runs"])
    skipped = rows[("celery-rabbitmq", "grid")]
    assert skipped["status"].startswith("skipped: cannot reach the AMQP broker")
    markdown = report.markdown(doc, [])
    assert "| redis-limit | probe | grid | 2 | - |" in markdown
    assert "FAILED" in markdown and "skipped: cannot reach the AMQP broker" in markdown
