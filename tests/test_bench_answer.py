"""Each row's "of limit" against the probe of its own mode, and the report's five-line answer."""

from __future__ import annotations

from typing import Any

from benchmarks import answer, report
from benchmarks.measure import RunRecord
from benchmarks.stacks import CHUNKED_LIMIT, LIMIT, STACKS, limit_of
from benchmarks.summary import summarize

CHUNKED = {"dramatiq chunked", "rq chunked", "dramatiq task-postgres-chunked", "rq task-postgres-chunked"}


def _run(stack: str, profile: str, throughput: float, workload: str = "grid", repeat: int = 1) -> RunRecord:
    return RunRecord(
        stack=stack,
        profile=profile,
        workload=workload,
        tasks=2500,
        compute_workers=2,
        repeat=repeat,
        grid="50x50",
        cpu_cost_ms=0.0,
        rate_per_s=None,
        verified=True,
        throughput=throughput,
        submit_rate=throughput,
    )


# --- of limit: each mode against its own probe -----------------------------------------------------


def test_every_chunked_stack_is_read_against_the_chunked_probe_and_the_rest_per_message() -> None:
    for stack in STACKS:
        expected = CHUNKED_LIMIT if stack.label in CHUNKED or stack.key == CHUNKED_LIMIT else LIMIT
        assert stack.limit == expected, stack.label
        assert limit_of(stack.key) == expected
    assert limit_of(("not", "registered")) == LIMIT


def test_fraction_of_limit_uses_the_probe_of_the_rows_own_mode_grid_and_bulk_submit() -> None:
    runs = []
    for workload in ("grid", "submit"):
        for repeat in (1, 2):
            runs += [
                _run(*LIMIT, 10_000.0, workload, repeat),
                _run(*CHUNKED_LIMIT, 100_000.0, workload, repeat),
                _run("rq", "ours", 2_000.0, workload, repeat),
                _run("rq", "chunked", 50_000.0, workload, repeat),
                _run("taskiq", "seed-defaults", 500.0, workload, repeat),
            ]
    rows = {(r["stack"], r["profile"], r["workload"]): r for r in summarize(runs, {}, [], {}, set())}

    for workload in ("grid", "submit"):
        chunked = rows[("rq", "chunked", workload)]
        assert chunked["limit"] == "redis-limit chunked"
        assert chunked["fraction_of_limit"] == 0.5  # 50,000 of the chunked probe's 100,000, not 500 %
        assert rows[("rq", "ours", workload)]["fraction_of_limit"] == 0.2
        assert rows[("rq", "ours", workload)]["limit"] == "redis-limit probe"
        assert rows[("taskiq", "seed-defaults", workload)]["fraction_of_limit"] == 0.05
        assert rows[(*LIMIT, workload)]["fraction_of_limit"] == 1.0
        assert rows[(*CHUNKED_LIMIT, workload)]["fraction_of_limit"] == 1.0

    table = "\n".join(report.throughput_table({"summary": list(rows.values())}))
    assert "| rq | chunked | grid | 2 | 50,000 [50,000-50,000] | - | 50% (chunked) |" in table
    assert "| rq | ours | grid | 2 | 2,000 [2,000-2,000] | - | 20% (probe) |" in table


def test_a_chunked_row_without_its_probe_has_no_fraction_rather_than_the_other_probes() -> None:
    runs = [_run(*LIMIT, 10_000.0), _run("rq", "chunked", 50_000.0)]
    (limit, chunked) = summarize(runs, {}, [], {}, set())
    assert limit["fraction_of_limit"] == 1.0
    assert chunked["fraction_of_limit"] is None
    assert chunked["limit"] == "redis-limit chunked"


def test_a_row_over_its_own_probe_is_listed_as_a_problem_not_printed_as_a_result() -> None:
    runs = [_run(*CHUNKED_LIMIT, 40_000.0), _run("rq", "chunked", 50_000.0)]
    doc = {"summary": summarize(runs, {}, [], {}, set())}
    (probe, over) = (line.split(" | ")[6] for line in report.throughput_table(doc)[2:])
    assert (probe, over) == ("100% (chunked)", "over its probe: see Problems (chunked)")
    assert report._problems(doc) == [
        "- rq chunked grid (2 workers): 125% of redis-limit chunked: that probe was not this mode's "
        "ceiling in this run"
    ]


# --- the five-line answer ------------------------------------------------------------------------


def _row(stack: str, profile: str, workload: str, rate: float | None, **extra: Any) -> dict[str, Any]:
    chunked = profile == "chunked"
    return {
        "stack": stack,
        "profile": profile,
        "workload": workload,
        "compute_workers": 2,
        "tasks": 2500,
        "status": "ok",
        "sliced": False,
        "throughput_median": rate,
        "throughput_min": rate,
        "throughput_max": rate,
        "problems": [],
        "ratio_vs_celery_median": None,
        "fraction_of_limit": None,
        "fraction_of_ideal": None,
        "latency_ms": None,
        "cpu_s_per_1k_median": None,
        "limit": " ".join(CHUNKED_LIMIT if chunked else LIMIT),
        **extra,
    }


def _doc() -> dict[str, Any]:
    latency = {"p50": 3.0, "p90": 4.0, "p99": 5.0, "max": 6.0}
    return {
        "method": {
            "baseline": "celery-rabbitmq seed-defaults",
            "cases": [
                {"workload": "grid", "grid": "50x50", "tasks": 2500, "rate_per_s": None, "cpu_cost_ms": 0.0},
                {"workload": "cpu", "grid": "40x25", "tasks": 1000, "rate_per_s": None, "cpu_cost_ms": 5.0},
                {"workload": "latency", "grid": "10x20", "tasks": 200, "rate_per_s": 20, "cpu_cost_ms": 0.0},
            ],
        },
        "summary": [
            _row("celery-rabbitmq", "seed-defaults", "grid", 400.0, cpu_s_per_1k_median=2.5),
            _row("alpha", "ours", "grid", 6000.0, ratio_vs_celery_median=15.0, cpu_s_per_1k_median=0.2),
            _row("beta", "stock", "grid", 7000.0, cpu_s_per_1k_median=0.9, sliced=True),  # a slice: no
            _row("beta", "chunked", "grid", 70000.0, cpu_s_per_1k_median=0.01),
            _row(*LIMIT, "grid", 90000.0),  # a probe is never the answer
            _row(*CHUNKED_LIMIT, "grid", 200000.0),
            _row("gamma", "tuned", "grid", 5000.0, status="FAILED 1 of 3", cpu_s_per_1k_median=0.1),
            _row("alpha", "ours", "cpu", 360.0, fraction_of_ideal=0.9, cpu_s_per_1k_median=5.3),
            _row("beta", "chunked", "cpu", 390.0, fraction_of_ideal=0.95, cpu_s_per_1k_median=5.1),
            _row("alpha", "ours", "latency", None, latency_ms={**latency, "p50": 3.5}),
            _row("beta", "chunked", "latency", None, latency_ms={**latency, "p50": 2.5}),
            _row(*LIMIT, "latency", None, latency_ms={**latency, "p50": 1.0}),
        ],
    }


def _chaos(
    stack: str, profile: str, scenario: str, lost: int = 0, recovery: float = 1.0, **extra: Any
) -> Any:
    return {
        "scenario": scenario,
        "stack": stack,
        "profile": profile,
        "tasks": 2500,
        "lost": lost,
        "wrong": 0,
        "doubled": 0,
        "recovery_s": recovery,
        "stored_at_fault": 800,
        "skipped": "",
        **extra,
    }


def test_the_five_lines_are_computed_from_the_run_and_the_chaos_results() -> None:
    kills = answer.KILL_SCENARIOS
    assert set(kills) == {"kill-compute", "kill-result", "redis-restart"}
    chaos = {
        "created_utc": "2026-12-01T10:00:00Z",
        "chaos": [
            *(_chaos("alpha", "ours", s, recovery=9.0) for s in kills),
            *(_chaos("beta", "chunked", s, recovery=2.0) for s in kills),
            _chaos("celery-rabbitmq", "seed-defaults", kills[0], lost=3),
            *(_chaos("delta", "tuned", s, recovery=0.1, stored_at_fault=2499) for s in kills),  # too late
            _chaos("beta", "chunked", "poison", lost=99),  # not a kill -9 scenario
        ],
    }
    lines = answer.lines(_doc(), chaos)

    assert len(lines) == 5
    assert lines[0] == (
        "- **Fastest per message:** alpha ours, 6,000 tasks/s on the 50x50 grid (2 compute workers, "
        "15.0x celery-rabbitmq seed-defaults); in chunks of 250 points a message: beta chunked, "
        "70,000 tasks/s."
    )
    assert lines[1] == (
        "- **Fastest CPU-bound:** beta chunked, 390 tasks/s at 5 ms of CPU a task, 95% of the cores' ideal."
    )
    assert (
        lines[2]
        == "- **Lowest latency:** beta chunked, p50 2.5 ms / p99 5.0 ms at 20 tasks/s (submit → stored)."
    )
    assert lines[3].startswith(
        "- **Safest under kill -9:** beta chunked, nothing lost, wrong or doubled over kill-compute, "
        "kill-result, redis-restart, every recovery within 2.0 s; as clean: alpha ours; "
        "lost, wrong or doubled: celery-rabbitmq seed-defaults (3); a fault landed after 90% was stored "
        "(not counted) on delta tuned"
    )
    assert lines[3].endswith("(`make chaos`, 2026-12-01).")
    assert lines[4] == (
        "- **What each costs in CPU** (worker CPU seconds per 1,000 tasks, grid): alpha ours 0.20 s; "
        "beta chunked 0.01 s; celery-rabbitmq seed-defaults 2.50 s."
    )


def test_what_a_run_did_not_measure_is_said_not_guessed() -> None:
    doc = _doc()
    doc["summary"] = [r for r in doc["summary"] if r["workload"] == "grid"]
    lines = answer.lines(doc, None)
    assert (
        lines[1]
        == "- **Fastest CPU-bound:** not measured in this run (the `cpu` case is in `make bench-full`)."
    )
    assert lines[2] == "- **Lowest latency:** not measured in this run."
    assert lines[3] == "- **Safest under kill -9:** no chaos results (`make chaos` writes them)."
    markdown = report.markdown({**doc, **_document_frame()}, [])
    assert markdown.splitlines()[2:7] == lines


def _document_frame() -> dict[str, Any]:
    """What ``report.markdown`` needs besides the summary."""
    machine = {
        "cores": 2,
        "cpu_model": "test",
        "memory_gb": 1,
        "platform": "test",
        "python": "3.11",
        "redis_server": "7",
        "rabbitmq": None,
        "libraries": {},
    }
    method = {**_doc()["method"], "repeats": 1, "slow_rate": 100.0, "slice_grid": "10x10", "limit": "x"}
    return {
        "profile": "test",
        "created_utc": "2026-12-02T00:00:00Z",
        "machine": machine,
        "method": method,
        "runs": [],
    }
