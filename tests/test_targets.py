"""The performance targets table, and the two cases that feed it beyond the grid: bulk submit
(the producer alone) and idle workers (Redis commands counted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from benchmarks import output, schema, targets
from benchmarks.harness import Harness
from benchmarks.stacks import select
from benchmarks.workloads import Case, Profile
from shared.settings import Settings
from shared.tasks import Grid


def _summary(stack: str, profile: str, workload: str, **figures: Any) -> dict[str, Any]:
    row = {"stack": stack, "profile": profile, "workload": workload, "compute_workers": 2, "status": "ok"}
    base = dict.fromkeys(["ratio_vs_celery_median", "fraction_of_limit", "fraction_of_ideal"])
    return {
        **row,
        **base,
        "throughput_median": None,
        "submit_rate_median": None,
        "latency_ms": None,
        **figures,
    }


def _grid_run(stack: str, profile: str, repeat: int, throughput: float) -> dict[str, Any]:
    return {
        "stack": stack,
        "profile": profile,
        "workload": "grid",
        "compute_workers": 2,
        "repeat": repeat,
        "status": "ok",
        "throughput": throughput,
    }


def test_targets_are_met_missed_or_not_measured_from_the_document() -> None:
    doc = {
        "summary": [
            _summary("dramatiq", "ours", "grid", ratio_vs_celery_median=5.5),
            _summary("rq", "ours", "grid", ratio_vs_celery_median=0.9),
            _summary("rq", "chunked", "grid-large", throughput_median=12_000.0, fraction_of_limit=0.25),
            _summary("dramatiq", "ours", "latency", latency_ms={"p50": 2.5, "p99": 9.0}),
            _summary("rq", "ours", "latency", latency_ms={"p50": 2.5, "p99": 11.0}),
            _summary("rq", "ours", "idle", idle_commands_per_s=9.0),
            _summary("dramatiq", "ours", "submit", submit_rate_median=25_000.0),
        ],
        "runs": [
            _grid_run("dramatiq", "ours", 1, 2_000.0),
            _grid_run("dramatiq", "stock", 1, 1_000.0),
            _grid_run("dramatiq", "ours", 2, 1_900.0),
            _grid_run("dramatiq", "stock", 2, 1_000.0),
            {
                **_grid_run("dramatiq", "soak-stack", 1, 1.0),
                "rss_series": {"x": 1},
                "tasks": 250_000,
                "rss_growth": {"compute": {"growth_pct": 1.0}, "result": {"growth_pct": 7.0}},
            },
        ],
    }
    got = {(c.target, c.stack): (c.measured, c.met) for c in targets.evaluate(doc)}
    assert got[("per message: >= 2x stock Dramatiq", "dramatiq ours")] == ("1.95x", False)
    assert got[("per message: >= 5x celery seed-defaults", "dramatiq ours")] == ("5.50x", True)
    assert got[("per message: >= 1x celery seed-defaults", "rq ours")] == ("0.90x", False)
    assert got[("per message: >= 10x stock rq worker", "rq ours")] == ("-", None)
    assert got[("chunked: >= 10,000 tasks/s on 25,000 tasks", "rq chunked")] == ("12,000/s", True)
    assert got[("chunked: >= 30% of redis-limit chunked (25,000 tasks)", "rq chunked")] == ("25%", False)
    assert got[("chunked: >= 10,000 tasks/s on 25,000 tasks", "dramatiq chunked")] == ("-", None)
    assert got[("latency at 20/s: p50 <= 3 ms, p99 <= 10 ms", "dramatiq ours")][1] is True
    assert got[("latency at 20/s: p50 <= 3 ms, p99 <= 10 ms", "rq ours")][1] is False
    assert got[("idle worker: <= 20 Redis commands/s", "rq ours")] == ("9.0/s", True)
    assert got[("bulk submit: >= 20,000 tasks/s", "dramatiq ours")] == ("25,000/s", True)
    assert got[("RSS flat over 250,000 tasks", "dramatiq soak-stack")] == (
        "compute +1.0 %, result +7.0 %",
        False,
    )
    assert len(got) == len(targets.evaluate(doc))  # one row per target and stack, none twice
    assert "| **not met** |" in "\n".join(targets.table(doc))


@pytest.mark.slow
def test_bulk_submit_and_idle_cases_on_real_workers(settings: Settings, tmp_path: Path) -> None:
    submit = Case("submit", Grid(20, 20), mode="submit")
    idle = Case("idle", Grid(1, 1), mode="idle", idle_window=1.0)
    profile = Profile("targets-test", (submit, idle), repeats=1, warmup=False)
    stacks = select(["dramatiq ours", "rq chunked"])
    doc = Harness(profile, stacks, settings, tmp_path, Console(quiet=True)).run()
    output.write(doc, tmp_path, root=None)

    assert schema.problems(doc) == []
    runs = {(r["stack"], r["profile"], r["workload"]): r for r in doc["runs"]}
    assert len(runs) == 4
    for stack in (("dramatiq", "ours"), ("rq", "chunked")):
        sub = runs[(*stack, "submit")]
        assert sub["status"] == "ok" and sub["verified"], sub
        assert sub["submit_rate"] > 0 and sub["submit_rate"] == sub["throughput"]
        quiet = runs[(*stack, "idle")]
        assert quiet["status"] == "ok", quiet
        # A waiting worker still heartbeats and polls: zero would mean nothing was counted.
        assert quiet["idle_commands_per_s"] is not None and quiet["idle_commands_per_s"] > 0
    markdown = (tmp_path / "report.md").read_text()
    assert "Redis commands/s per idle worker" in markdown
    assert "## The performance issue's targets" in markdown
    assert "| bulk submit: >= 20,000 tasks/s | dramatiq ours |" in markdown


def test_cpu_target_is_absolute_for_chunked_and_relative_to_the_best_peer_per_message() -> None:
    doc = {
        "summary": [
            _summary("dramatiq", "chunked", "cpu", fraction_of_ideal=0.93, throughput_median=372.0),
            _summary("rq", "chunked", "cpu", fraction_of_ideal=0.85, throughput_median=340.0),
            _summary("dramatiq", "ours", "cpu", throughput_median=330.0, fraction_of_limit=0.97),
            _summary("rq", "ours", "cpu", throughput_median=290.0),
            _summary("dramatiq", "stock", "cpu", throughput_median=300.0),
            _summary("celery-rabbitmq", "tuned", "cpu", throughput_median=310.0),
            _summary("redis-limit", "probe", "cpu", throughput_median=340.0),  # a probe, not a peer
            {**_summary("huey", "tuned", "cpu", throughput_median=900.0), "status": "FAILED"},
        ],
        "runs": [],
    }
    got = {(c.target, c.stack): (c.measured, c.met) for c in targets.evaluate(doc)}
    assert got[(targets.CPU_CHUNKED, "dramatiq chunked")] == ("93%", True)
    assert got[(targets.CPU_CHUNKED, "rq chunked")] == ("85%", False)
    per_message = targets.CPU_PER_MESSAGE
    assert got[(per_message, "dramatiq ours")] == (
        "1.06x celery-rabbitmq tuned (best peer), 97% of the probe",
        True,
    )
    assert got[(per_message, "rq ours")] == ("0.94x celery-rabbitmq tuned (best peer)", False)
