"""The benchmark harness: its statistics, its results document, and every stack end to end (tiny)."""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from rich.console import Console

from benchmarks import memory, output, report, schema, stats, targets
from benchmarks.cli import main as bench_cli
from benchmarks.harness import Harness, StackState, runs_on, too_slow
from benchmarks.measure import RunRecord, Sampler
from benchmarks.postgres_server import PostgresServer
from benchmarks.stacks import STACKS, Stack, select
from benchmarks.summary import summarize
from benchmarks.workloads import (
    CHUNKED_SOAK_STACKS,
    CHUNKED_SQL_STACKS,
    PROFILES,
    SOAK_STACKS,
    TASK_STACKS,
    Case,
    Profile,
    latency,
    soak,
)
from shared.backend import BACKEND_ENV, Backend
from shared.embedded import free_port
from shared.results import RESULTS_URL_ENV
from shared.routing import SEED_TABLE, load_celeryconfig
from shared.settings import Settings
from shared.sql_store import SqlStore
from shared.tasks import Grid
from tests.helpers import wait_until

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


def test_latency_table_sets_each_p50_against_the_probes() -> None:
    def row(stack: str, profile: str, p50: float | None) -> dict[str, Any]:
        latency = None if p50 is None else {"p50": p50, "p90": p50, "p99": p50, "max": p50}
        return {
            "stack": stack,
            "profile": profile,
            "workload": "latency",
            "latency_ms": latency,
            "status": "ok",
        }

    rows = [row("rq", "ours", 5.0), row("redis-limit", "probe", 2.0), row("dramatiq", "ours", None)]
    table = report.latency_table({"summary": rows})
    assert table[2].split(" | ")[6] == "2.50x"
    assert table[3].split(" | ")[6] == "1.00x"
    assert table[4].split(" | ")[6] == "-"
    without_probe = report.latency_table({"summary": rows[:1]})
    assert without_probe[2].split(" | ")[6] == "-"


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


# --- memory: growth on known curves, the soak's stacks, the schema of the new fields --------------


def test_flat_series_does_not_grow() -> None:
    warm_up = [50.0, 80.0]  # the first 10 % of 20 samples: outside both windows
    series = warm_up + [100.0, 102.0, 98.0, 101.0, 99.0, 100.0] * 3
    growth = memory.growth(series)
    # samples 2-3 (100, 102) against samples 18-19 (99, 100)
    assert growth == {"early_mb": 101.0, "late_mb": 99.5, "growth_pct": -1.49}
    assert memory.verdict({"compute": growth}) == "flat"


def test_growing_series_grows_by_late_over_early_median() -> None:
    series = [100.0 + i for i in range(100)]  # +1 MB per sample
    growth = memory.growth(series)
    # samples 10..19 (median 114.5) against samples 90..99 (median 194.5)
    assert growth == {"early_mb": 114.5, "late_mb": 194.5, "growth_pct": pytest.approx(69.87, abs=0.01)}
    assert memory.verdict({"compute": {"growth_pct": 0.0}, "result": growth}) == "grows"


def test_too_short_a_series_has_no_growth_figure() -> None:
    assert memory.growth([1.0] * (memory.MIN_SAMPLES - 1)) is None
    assert memory.verdict(None) == "-"


def test_rss_series_per_role_and_peaks() -> None:
    series = memory.RssSeries(["compute", "compute", "result"], every=1.0)
    for t in range(12):
        series.add(t, [10 * memory.MB, (20 + t) * memory.MB, 5 * memory.MB])
    doc = series.as_json()
    assert memory.by_role(doc)["compute"][:3] == [20.0, 21.0, 22.0]  # the larger compute worker
    assert memory.by_role(doc)["result"] == [5.0] * 12
    assert set(memory.growth_by_role(doc) or {}) == {"compute", "result"}
    peaks = memory.peak_by_role(["compute", "compute", "result"], [3 * memory.MB, 7 * memory.MB, memory.MB])
    assert peaks == {"compute": 7.0, "result": 1.0}


def test_sampler_keeps_rss_on_schedule(client: redis.Redis) -> None:
    """This process as the 'worker': samples every 0.05 s, none bunched after a late one.

    No speed is under test: the test waits for samples rather than sleeping a fixed time (a loaded
    machine samples late), and the count is bounded by the time the test actually took."""
    series = memory.RssSeries(["compute"], every=0.05)
    started = time.perf_counter()
    with Sampler([os.getpid()], client, series=series):
        assert wait_until(lambda: len(series.seconds) >= 6, timeout=60), series.seconds
    took = time.perf_counter() - started
    steps = [b - a for a, b in itertools.pairwise(series.seconds[:-1])]  # the last one is kept at exit
    assert series.seconds[0] < 1.0  # the first at start (generous: only "not after a wait")
    # At most one kept sample per step of the time taken, plus the first and the one at exit.
    assert 7 <= len(series.seconds) <= took / 0.05 + 2, (series.seconds, took)
    assert all(step >= 0.025 for step in steps), steps
    assert all(sample[0] > 1 for sample in series.mb)  # MB, not bytes or zero


def test_a_case_runs_only_on_the_stacks_it_names() -> None:
    case = soak(Grid(10, 10), stacks=("rq chunked",))
    assert case.runs_on("rq chunked") and not case.runs_on("rq ours")
    assert Case("grid", Grid(2, 2)).runs_on("rq ours")
    full = [c for c in PROFILES["full"].cases if c.rss_every]
    assert [(c.workload, c.grid.size, c.repeats, c.only) for c in full] == [
        ("soak", 250_000, 1, SOAK_STACKS),
        ("soak-chunked", 1_000_000, 1, CHUNKED_SOAK_STACKS),
    ]
    assert set(SOAK_STACKS + CHUNKED_SOAK_STACKS) <= {s.label for s in STACKS}


def test_progress_total_counts_a_named_case_only_on_its_stacks(settings: Settings) -> None:
    profile = Profile("t", (Case("grid", Grid(2, 2), repeats=3), soak(Grid(2, 2), ("rq ours",))), repeats=1)
    states = [StackState(s) for s in select(["rq ours", "rq stock", "rq chunked"])]
    assert Harness(profile, [], settings, Path(), QUIET).planned(states) == 3 + 3 * 3 + 1


def test_slow_stacks_run_each_case_once_and_no_latency_they_cannot_keep_up_with(settings: Settings) -> None:
    grid, lat = Case("grid", Grid(2, 2), repeats=3), latency(20, 1)
    profile = Profile("t", (grid, lat), repeats=1, sliced_repeats=1)
    by_label = {s.label: StackState(s) for s in select(["rq ours", "rq stock", "dramatiq stock"])}
    fast, slow, cold = by_label["rq ours"], by_label["rq stock"], by_label["dramatiq stock"]
    fast.warmup_throughput, slow.warmup_throughput = 2_000.0, 5.0
    fast.backend, slow.backend = fast.stack.make(settings), slow.stack.make(settings)
    slow.sliced = True
    harness = Harness(profile, [], settings, Path(), QUIET)
    assert [harness._runs(grid, slow, r) for r in (1, 2, 3)] == [True, False, False]
    assert [harness._runs(grid, fast, r) for r in (1, 2, 3)] == [True, True, True]
    assert harness._runs(lat, fast, 1) and not harness._runs(lat, slow, 1)
    assert too_slow(lat, slow) == "slower than the rate (warm-up 5/s < 2 x 20/s)"
    assert too_slow(grid, slow) == "" and too_slow(lat, cold) == ""  # not warmed up: runs
    assert harness.planned([fast, slow]) == 2 + (3 + 1) + (1 + 0)  # warm-ups, grid, latency
    assert not replace(lat, skip_profiles=("stock",)).runs_on("rq stock")
    doc = harness.document([fast, slow], [grid, lat], 1.0)
    (row,) = [r for r in doc["summary"] if r["workload"] == "latency" and r["profile"] == "stock"]
    assert row["status"] == "not measured: slower than the rate (warm-up 5/s < 2 x 20/s)"


def test_a_tuned_peer_runs_each_case_as_often_as_the_profile_says(settings: Settings) -> None:
    grid = Case("grid", Grid(2, 2), repeats=3)
    harness = Harness(Profile("t", (grid,), repeats=3, tuned_repeats=1), [], settings, Path(), QUIET)
    by_label = {s.label: StackState(s) for s in select(["huey tuned", "huey seed-defaults"])}
    tuned, seed = by_label["huey tuned"], by_label["huey seed-defaults"]
    assert [harness._runs(grid, tuned, r) for r in (1, 2, 3)] == [True, False, False]
    assert [harness._runs(grid, seed, r) for r in (1, 2, 3)] == [True, True, True]
    assert harness.planned([tuned, seed]) == 2 + 1 + 3


def test_summary_skips_a_named_case_on_a_stack_it_never_names() -> None:
    skipped = {("rq", "ours"): "down", ("rq", "chunked"): "down"}
    only = {("soak", 2): ("rq chunked",)}
    rows = summarize([], skipped, [("grid", 2), ("soak", 2)], {}, set(), only)
    assert sorted((r["profile"], r["workload"]) for r in rows) == [
        ("chunked", "grid"),
        ("chunked", "soak"),
        ("ours", "grid"),
    ]


def _doc_with(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": schema.SCHEMA_VERSION,
        "created_utc": "2025-01-01T00:00:00Z",
        "profile": "t",
        "machine": {},
        "method": {},
        "stacks": [],
        "runs": [run],
        "summary": [],
    }


def test_schema_checks_the_rss_fields_when_present() -> None:
    record = RunRecord("dramatiq", "ours", "soak", 4, 2, 1, "2x2", 0.0, None, peak_rss_compute_mb=40.0)
    series = memory.RssSeries(["compute", "result"], every=1.0)
    for t in range(10):
        series.add(t, [40 * memory.MB, 30 * memory.MB])
    record.rss_series = series.as_json()
    record.rss_growth = memory.growth_by_role(record.rss_series)
    run = asdict(record)
    assert schema.problems(_doc_with(run)) == []
    old = {k: v for k, v in run.items() if k not in schema.RUN_LATER}  # results from before the soak
    assert schema.problems(_doc_with(old)) == []
    broken = {**run, "rss_series": {**run["rss_series"], "mb": run["rss_series"]["mb"][:-1]}}
    assert schema.problems(_doc_with(broken)) == ["runs[0].rss_series: 10 times, 9 samples of 2 workers"]
    assert schema.problems(_doc_with({**run, "rss_growth": {"compute": {"growth_pct": 1.0}}}))
    assert schema.problems(_doc_with({**run, "peak_rss_result_mb": "40"}))


# --- the baseline's configuration -----------------------------------------------------------------


def test_celery_baseline_routes_exactly_as_the_seed() -> None:
    assert load_celeryconfig("benchmarks.celeryconfig") == SEED_TABLE


def test_stack_selection() -> None:
    assert [s.label for s in select(["rq"])] == [
        "rq ours",
        "rq stock",
        "rq chunked",
        "rq task-redis",
        "rq task-sqlite",
        "rq task-postgres",
        "rq task-postgres-chunked",
    ]
    assert [s.label for s in select(["dramatiq stock"])] == ["dramatiq stock"]
    with pytest.raises(ValueError, match="unknown stack"):
        select(["kafka"])


def test_profile_narrowed_to_workloads_and_repeats() -> None:
    full = PROFILES["full"]
    cpu = full.narrowed(["cpu"], repeats=5)
    assert [c.workload for c in cpu.cases] == ["cpu"]
    assert cpu.repeats == 5 and all(c.repeats == 5 for c in cpu.cases)
    assert [c.workload for c in full.narrowed(["grid"]).cases] == ["grid", "grid", "grid"]
    assert full.narrowed() == full
    with pytest.raises(ValueError, match="no workload"):
        full.narrowed(["nope"])


# --- end to end, real workers ---------------------------------------------------------------------


def _harness(stacks: list[Stack], settings: Settings, out: Path, **kwargs: Any) -> dict[str, Any]:
    return Harness(PROFILES["smoke"], stacks, settings, out, QUIET, **kwargs).run()


#: Every stack but the declared-task ones (their own smoke test needs a PostgreSQL).
SEED_STACKS = [s for s in STACKS if s.label not in TASK_STACKS]


@pytest.mark.slow
def test_smoke_run_of_every_stack_writes_a_valid_verified_report(settings: Settings, tmp_path: Path) -> None:
    doc = _harness(SEED_STACKS, settings, tmp_path)
    results = output.write(doc, tmp_path, root=tmp_path)

    written = json.loads(results.read_text())
    assert schema.problems(written) == []
    assert {(s["stack"], s["profile"], s["status"]) for s in written["stacks"]} == {
        (s.stack, s.profile, "ran") for s in SEED_STACKS
    }
    grid_runs = [r for r in written["runs"] if r["workload"] == "grid"]
    assert len(grid_runs) == len(SEED_STACKS)
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
    for stack in SEED_STACKS:
        assert f"| {stack.stack} | {stack.profile} | grid |" in markdown

    table = CliRunner().invoke(bench_cli, ["readme-table", "--results", str(tmp_path / "latest.json")])
    assert table.exit_code == 0, table.output
    assert table.output == report.readme_table(written)
    assert "| redis-limit | probe |" in table.output


@pytest.mark.slow
def test_soak_case_keeps_an_rss_curve_on_its_stack_only(settings: Settings, tmp_path: Path) -> None:
    """A 4,000-task soak on one stack, RSS kept every 0.02 s, and a grid case on the other stack only."""
    tiny = soak(Grid(80, 50), stacks=("dramatiq ours",), rss_every=0.02)
    grid = Case("grid", Grid(4, 4), only=("redis-limit probe",))
    profile = Profile("soak-test", (grid, tiny), repeats=1, warmup=False)
    stacks = select(["dramatiq ours", "redis-limit"])
    doc = Harness(profile, stacks, settings, tmp_path, QUIET).run()
    output.write(doc, tmp_path, root=None)

    assert schema.problems(doc) == []
    assert sorted((r["stack"], r["workload"]) for r in doc["runs"]) == [
        ("dramatiq", "soak"),
        ("redis-limit", "grid"),
    ]
    (run,) = [r for r in doc["runs"] if r["workload"] == "soak"]
    assert run["status"] == "ok" and run["verified"] is True, run
    series = run["rss_series"]
    assert series["roles"] == ["compute", "compute", "result"]
    assert len(series["seconds"]) >= memory.MIN_SAMPLES
    # Sampling starts with the run; the bound is generous on purpose: timing is not under test here.
    assert series["seconds"] == sorted(series["seconds"]) and series["seconds"][0] < 1.0
    assert all(mb > 0 for sample in series["mb"] for mb in sample)
    assert set(run["rss_growth"]) == {"compute", "result"}
    assert run["peak_rss_compute_mb"] > 0 and run["peak_rss_result_mb"] > 0
    (other,) = [r for r in doc["runs"] if r["workload"] == "grid"]
    assert other["rss_series"] is None and other["peak_rss_result_mb"] > 0

    markdown = (tmp_path / "report.md").read_text()
    assert "## Memory over long runs" in markdown
    assert "| dramatiq | ours | 4,000 |" in markdown
    assert "runs only on `dramatiq ours`" in markdown
    assert (tmp_path / "rss_soak.png").stat().st_size > 0


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


# --- the declared-task stacks: results in Redis, SQLite, PostgreSQL ---------------------------------


def test_task_stacks_run_the_grid_or_chunked_sql_25k_in_quick_and_no_latency_on_sql() -> None:
    labels = {s.label: s for s in STACKS}
    assert set(TASK_STACKS) <= set(labels)
    assert not any(labels[label].sliceable for label in TASK_STACKS)  # always the whole grid
    quick = PROFILES["quick"]
    for label, stack in labels.items():
        ran = [(c.workload, c.repeats) for c in quick.cases if runs_on(c, stack)]
        if label in CHUNKED_SQL_STACKS:
            assert ran == [("grid-large", 1)], label  # its target is on 25,000 calls
        elif label in TASK_STACKS:
            assert ran == [("grid", None)], label  # 3 repetitions: the SQL ratio is paired by them
        else:
            assert ("grid", None) in ran and "grid-large" not in [w for w, _ in ran], label
    latency = next(c for c in PROFILES["full"].cases if c.workload == "latency")
    assert runs_on(latency, labels["rq task-redis"])
    assert not runs_on(latency, labels["rq task-postgres"]) and not runs_on(latency, labels["rq task-sqlite"])
    large = next(c for c in PROFILES["full"].cases if c.workload == "grid-large")
    on_large = {label for label in TASK_STACKS if runs_on(large, labels[label])}
    assert on_large == {
        f"{path} task-{store}" for path in ("dramatiq", "rq") for store in ("redis", "postgres-chunked")
    }


def test_sql_store_targets_from_a_results_record() -> None:
    def run(stack: str, profile: str, repeat: int, throughput: float) -> dict[str, Any]:
        return {**asdict(_run(stack, profile, repeat, throughput)), "tasks": 2_500}

    large = {
        "stack": "dramatiq",
        "profile": "task-postgres-chunked",
        "workload": "grid-large",
        "compute_workers": 2,
        "status": "ok",
        "throughput_median": 12_345.0,
    }
    doc = {
        "summary": [large],
        "runs": [
            run("dramatiq", "task-redis", 1, 1_000.0),
            run("dramatiq", "task-postgres", 1, 900.0),
            run("dramatiq", "task-redis", 2, 1_000.0),
            run("dramatiq", "task-postgres", 2, 700.0),
            run("dramatiq", "task-redis", 3, 1_000.0),
            run("dramatiq", "task-postgres", 3, 850.0),
            run("rq", "task-redis", 1, 1_000.0),
            run("rq", "task-postgres", 1, 790.0),
            run("rq", "task-postgres", 2, 5_000.0),  # no task-redis run of repetition 2: not paired
            {**run("rq", "task-postgres", 3, 9_000.0), "tasks": 100},  # a slice: not the 50x50 grid
            run("rq", "task-redis", 3, 1_000.0),
        ],
    }
    got = {(c.target, c.stack): (c.measured, c.met) for c in targets.evaluate(doc)}
    ratio = "SQL store: postgres >= 80% of the Redis store (declared task, 50x50 per message)"
    chunked = "SQL store chunked: >= 10,000 calls/s on 25,000 calls"
    assert got[(ratio, "dramatiq task-postgres")] == ("85%", True)  # median of 90 %, 70 %, 85 %
    assert got[(ratio, "rq task-postgres")] == ("79%", False)
    assert got[(chunked, "dramatiq task-postgres-chunked")] == ("12,345/s", True)
    assert got[(chunked, "rq task-postgres-chunked")] == ("-", None)  # no 25,000-call run: not measured
    assert len(got) == len(targets.evaluate(doc))  # one row per target and stack, none twice
    slow = {**doc, "summary": [{**large, "throughput_median": 9_999.0}]}
    missed = {(c.target, c.stack): (c.measured, c.met) for c in targets.evaluate(slow)}
    assert missed[(chunked, "dramatiq task-postgres-chunked")] == ("9,999/s", False)
    quick = {"summary": [], "runs": []}
    assert {c.met for c in targets.evaluate(quick) if c.target in (ratio, chunked)} == {None}


def test_postgres_stacks_are_skipped_with_the_reason_when_postgres_cannot_start(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_binaries() -> Path:
        raise RuntimeError("no PostgreSQL server binaries (test)")

    monkeypatch.setattr("benchmarks.postgres_server.find_bindir", no_binaries)
    stacks = select(["dramatiq task-postgres", "rq task-postgres-chunked"])
    doc = _harness(stacks, settings, tmp_path)

    assert schema.problems(doc) == []
    assert doc["runs"] == []
    reason = "skipped: no private PostgreSQL: no PostgreSQL server binaries (test)"
    assert {(s["profile"], s["status"]) for s in doc["stacks"]} == {
        ("task-postgres", reason),
        ("task-postgres-chunked", reason),
    }
    # A skipped row per workload it would have run: the grid, not latency (results in SQL).
    assert sorted((r["profile"], r["workload"], r["status"]) for r in doc["summary"]) == [
        ("task-postgres", "grid", reason),
        ("task-postgres-chunked", "grid", reason),
    ]


@pytest.mark.slow
def test_smoke_run_of_the_task_stacks_stores_in_redis_sqlite_and_postgres(
    settings: Settings, tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """Every declared-task stack on a tiny grid, against the test PostgreSQL; the harness process
    has each stack's backend and results URL in its environment during the run, and not after."""
    seen: dict[tuple[str, str], tuple[str | None, str | None]] = {}

    def environment(backend: Backend) -> None:
        key = (backend.name, getattr(backend, "results_url", ""))
        seen[key] = (os.environ.get(BACKEND_ENV), os.environ.get(RESULTS_URL_ENV))

    before = os.environ.get(RESULTS_URL_ENV)
    stacks = select(list(TASK_STACKS))
    doc = Harness(
        PROFILES["smoke"],
        stacks,
        settings,
        tmp_path,
        QUIET,
        before_verify=environment,
        postgres_url=postgres_server.url,
    ).run()
    output.write(doc, tmp_path, root=None)

    assert os.environ.get(RESULTS_URL_ENV) == before
    assert schema.problems(doc) == []
    assert {(s["stack"], s["profile"], s["status"]) for s in doc["stacks"]} == {
        (s.stack, s.profile, "ran") for s in stacks
    }
    for run in doc["runs"]:
        assert run["status"] == "ok" and run["verified"] is True, run
    grid = {(r["stack"], r["profile"]): r for r in doc["runs"] if r["workload"] == "grid"}
    assert set(grid) == {s.key for s in stacks}
    assert all(r["tasks"] == 16 and r["throughput"] > 0 for r in grid.values())
    assert {(name, url.split(":", 1)[0]) for name, url in seen} == {
        (name, scheme) for name in ("dramatiq", "rq") for scheme in ("redis", "sqlite", "postgresql")
    }
    assert all(seen[key] == key for key in seen)  # this stack's backend and store, in os.environ

    latency = {(r["stack"], r["profile"]): r for r in doc["summary"] if r["workload"] == "latency"}
    for stack in stacks:
        row = latency[stack.key]
        if stack.profile == "task-redis":
            assert row["status"] == "ok" and set(row["latency_ms"]) == {"p50", "p90", "p99", "max"}, row
        else:
            assert row["status"].startswith("not measured: results in SQL"), row
            assert row["latency_ms"] is None
    # The last PostgreSQL stack's results are in PostgreSQL, one per point.
    assert SqlStore(postgres_server.url).count("bench.product") == 16

    markdown = (tmp_path / "report.md").read_text()
    assert "| rq | task-postgres-chunked | grid |" in markdown
    readme = report.readme_table(doc)
    assert "| dramatiq | task-sqlite |" in readme
    sqlite_row = next(line for line in readme.splitlines() if "| dramatiq | task-sqlite |" in line)
    assert sqlite_row.split(" | ")[5] == "-"  # latency: not measured
