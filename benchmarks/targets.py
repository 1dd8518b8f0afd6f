"""The performance issue's targets, checked against one results document.

Every figure comes from the same run (``make bench-full``), so the ratios compare stacks measured
side by side. A target whose figures the document lacks (a quick run has no 25,000-task case) is
"not measured", never "met".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks import memory, stats

Row = dict[str, Any]

OURS = ("ours", "chunked")
#: The seed's grid: the SQL store target compares the stores on the whole of it.
GRID_50X50 = 2_500
PATHS = ("dramatiq", "rq")


@dataclass(frozen=True)
class Check:
    target: str
    stack: str
    measured: str
    met: bool | None  # None: the document has no figure for it

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**not met**", None: "not measured"}[self.met]


def _row(doc: dict[str, Any], stack: str, profile: str, workload: str, workers: int = 2) -> Row | None:
    for row in doc["summary"]:
        key = (row["stack"], row["profile"], row["workload"], row["compute_workers"])
        if key == (stack, profile, workload, workers) and row["status"] == "ok":
            return row
    return None


def _paired(
    doc: dict[str, Any], a: tuple[str, str], b: tuple[str, str], tasks: int | None = None
) -> float | None:
    """Median over repetitions of a's grid throughput over b's, as every ratio in the report;
    with ``tasks``, only runs of that many tasks (a sliced run is not that grid)."""

    def by_repeat(stack: str, profile: str) -> dict[int, float]:
        return {
            r["repeat"]: r["throughput"]
            for r in doc["runs"]
            if (r["stack"], r["profile"], r["workload"], r["compute_workers"]) == (stack, profile, "grid", 2)
            and r["status"] == "ok"
            and r["repeat"] > 0
            and tasks in (None, r.get("tasks"))
        }

    return stats.paired_ratio_median(by_repeat(*a), by_repeat(*b))


def _at_least(target: str, stack: str, value: float | None, bound: float, fmt: str) -> Check:
    if value is None:
        return Check(target, stack, "-", None)
    return Check(target, stack, fmt.format(value), value >= bound)


def _per_message(doc: dict[str, Any]) -> list[Check]:
    def vs_celery(stack: str) -> float | None:
        row = _row(doc, stack, "ours", "grid")
        return row["ratio_vs_celery_median"] if row else None

    return [
        _at_least(
            "per message: >= 2x stock Dramatiq",
            "dramatiq ours",
            _paired(doc, ("dramatiq", "ours"), ("dramatiq", "stock")),
            2.0,
            "{:.2f}x",
        ),
        _at_least(
            "per message: >= 5x celery seed-defaults", "dramatiq ours", vs_celery("dramatiq"), 5.0, "{:.2f}x"
        ),
        _at_least(
            "per message: >= 10x stock rq worker",
            "rq ours",
            _paired(doc, ("rq", "ours"), ("rq", "stock")),
            10.0,
            "{:.1f}x",
        ),
        _at_least("per message: >= 1x celery seed-defaults", "rq ours", vs_celery("rq"), 1.0, "{:.2f}x"),
    ]


def _chunked(doc: dict[str, Any]) -> list[Check]:
    checks = []
    for path in PATHS:
        row = _row(doc, path, "chunked", "grid-large")
        label = f"{path} chunked"
        rate = row["throughput_median"] if row else None
        fraction = row["fraction_of_limit"] if row else None
        checks.append(
            _at_least("chunked: >= 10,000 tasks/s on 25,000 tasks", label, rate, 10_000, "{:,.0f}/s")
        )
        checks.append(
            _at_least(
                "chunked: >= 30% of redis-limit chunked (25,000 tasks)", label, fraction, 0.30, "{:.0%}"
            )
        )
    return checks


def _sql_store(doc: dict[str, Any]) -> list[Check]:
    """The declared task's grid with results in PostgreSQL against the same task with results in
    Redis (paired by repetition), and chunked into PostgreSQL on 25,000 calls."""
    checks = []
    for path in PATHS:
        ratio = _paired(doc, (path, "task-postgres"), (path, "task-redis"), tasks=GRID_50X50)
        checks.append(
            _at_least(
                "SQL store: postgres >= 80% of the Redis store (declared task, 50x50 per message)",
                f"{path} task-postgres",
                ratio,
                0.80,
                "{:.0%}",
            )
        )
    for path in PATHS:
        row = _row(doc, path, "task-postgres-chunked", "grid-large")
        rate = row["throughput_median"] if row else None
        label = f"{path} task-postgres-chunked"
        target = "SQL store chunked: >= 10,000 calls/s on 25,000 calls"
        checks.append(_at_least(target, label, rate, 10_000, "{:,.0f}/s"))
    return checks


def _latency(doc: dict[str, Any]) -> list[Check]:
    checks = []
    for path in PATHS:
        row = _row(doc, path, "ours", "latency")
        lat = row["latency_ms"] if row else None
        label = f"{path} ours"
        if not lat:
            checks.append(Check("latency at 20/s: p50 <= 3 ms, p99 <= 10 ms", label, "-", None))
            continue
        met = lat["p50"] <= 3.0 and lat["p99"] <= 10.0
        measured = f"p50 {lat['p50']:.1f} / p99 {lat['p99']:.1f} ms"
        checks.append(Check("latency at 20/s: p50 <= 3 ms, p99 <= 10 ms", label, measured, met))
    return checks


def _per_stack(
    doc: dict[str, Any],
    target: str,
    workload: str,
    value: Callable[[Row], float | None],
    ok: Callable[[float], bool],
    fmt: str,
) -> list[Check]:
    checks = []
    for path in PATHS:
        for profile in OURS:
            row = _row(doc, path, profile, workload)
            figure = value(row) if row else None
            label = f"{path} {profile}"
            checks.append(
                Check(target, label, "-", None)
                if figure is None
                else Check(target, label, fmt.format(figure), ok(figure))
            )
    return checks


#: Per message, every framework's bookkeeping shares the two cores with the work: on 5 ms tasks
#: even the raw-Redis probe reaches only 91-93 % of ideal. Chunked mode is the answer for CPU-bound
#: work, and is held to the absolute bar; per message the bar is relative: ahead of every peer.
CPU_CHUNKED = "cpu workload (5 ms/task), chunked: >= 90% of ideal"
CPU_PER_MESSAGE = "cpu workload (5 ms/task), per message: ahead of every peer stack"


def _peers(doc: dict[str, Any], workload: str) -> list[Row]:
    """The rows of ``workload`` from stacks a user would pick instead: not ours, not a probe."""
    return [
        row
        for row in doc["summary"]
        if row["workload"] == workload
        and row["status"] == "ok"
        and row["compute_workers"] == 2
        and not (row["stack"] in PATHS and row["profile"] in OURS)
        and row["stack"] != "redis-limit"
        and row.get("throughput_median")
    ]


def _cpu(doc: dict[str, Any]) -> list[Check]:
    checks = []
    for path in PATHS:
        row = _row(doc, path, "chunked", "cpu")
        fraction = row["fraction_of_ideal"] if row else None
        checks.append(_at_least(CPU_CHUNKED, f"{path} chunked", fraction, 0.90, "{:.0%}"))
    peers = _peers(doc, "cpu")
    best = max(peers, key=lambda r: r["throughput_median"]) if peers else None
    for path in PATHS:
        row = _row(doc, path, "ours", "cpu")
        label = f"{path} ours"
        if row is None or best is None:
            checks.append(Check(CPU_PER_MESSAGE, label, "-", None))
            continue
        ahead = row["throughput_median"] / best["throughput_median"]
        of_probe = row.get("fraction_of_limit")
        measured = f"{ahead:.2f}x {best['stack']} {best['profile']} (best peer)"
        if of_probe is not None:
            measured += f", {of_probe:.0%} of the probe"
        checks.append(Check(CPU_PER_MESSAGE, label, measured, ahead >= 1.0))
    return checks


def _memory(doc: dict[str, Any]) -> list[Check]:
    """Each soak run: worker RSS flat from 10-20 % of the run to its end (``benchmarks.memory``)."""
    checks = []
    for run in doc["runs"]:
        if not run.get("rss_series"):
            continue
        growth = run.get("rss_growth") or {}
        verdict = memory.verdict(growth)
        measured = ", ".join(f"{role} {g['growth_pct']:+.1f} %" for role, g in growth.items()) or "too short"
        label = f"{run['stack']} {run['profile']}"
        met = None if verdict == "-" or run["status"] != "ok" else verdict == "flat"
        checks.append(Check(f"RSS flat over {run['tasks']:,} tasks", label, measured, met))
    return checks or [Check("RSS flat over 250,000 tasks", "-", "-", None)]


def evaluate(doc: dict[str, Any]) -> list[Check]:
    """Every target of the performance issue, on the stacks it names."""
    return [
        *_per_message(doc),
        *_chunked(doc),
        *_sql_store(doc),
        *_latency(doc),
        *_per_stack(
            doc,
            "idle worker: <= 20 Redis commands/s",
            "idle",
            lambda r: r.get("idle_commands_per_s"),
            lambda v: v <= 20.0,
            "{:.1f}/s",
        ),
        *_cpu(doc),
        *_per_stack(
            doc,
            "bulk submit: >= 20,000 tasks/s",
            "submit",
            lambda r: r["submit_rate_median"],
            lambda v: v >= 20_000,
            "{:,.0f}/s",
        ),
        *_memory(doc),
    ]


def table(doc: dict[str, Any]) -> list[str]:
    """Markdown lines: one row per target and stack."""
    lines = ["| target | stack | measured | verdict |", "|---|---|---|---|"]
    lines += [f"| {c.target} | {c.stack} | {c.measured} | {c.verdict} |" for c in evaluate(doc)]
    return lines
