"""The five lines ``report.md`` opens with: which stack to pick for what, and what it costs.

Every name and figure is computed from the results document (and the latest chaos results, for
"safest under kill -9"); none is typed in. The probes (``Stack.limit``) are yardsticks without acks,
so they are never an answer. A question the run did not measure says so instead of guessing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from benchmarks.faults import SCENARIOS
from benchmarks.stacks import CHUNKED_LIMIT, LIMIT, STACKS, limit_of
from benchmarks.workloads import DEFAULT_WORKERS
from shared.chunks import DEFAULT_CHUNK_SIZE

Row = dict[str, Any]

#: Every probe's label: never an answer.
PROBES = {" ".join(s.limit) for s in STACKS} | {" ".join(LIMIT), " ".join(CHUNKED_LIMIT)}
#: The chaos scenarios whose fault is a SIGKILL (of a worker, or of redis-server).
KILL_SCENARIOS = tuple(s.name for s in SCENARIOS if "SIGKILL" in s.description)
#: A fault that lands after this fraction of the results was stored is not counted (``_landed``).
LATE = 0.9


def label(row: Row) -> str:
    return f"{row['stack']} {row['profile']}"


def _mode(row: Row) -> str:
    """The row's mode, by the probe it is measured against."""
    probe = row.get("limit") or " ".join(limit_of((row["stack"], row["profile"])))
    return "chunked" if probe == " ".join(CHUNKED_LIMIT) else "per message"


def _candidates(doc: dict[str, Any], workload: str, workers: int | None = DEFAULT_WORKERS) -> list[Row]:
    """Verified rows of ``workload`` (at ``workers``), probes and slices left out."""
    return [
        r
        for r in doc["summary"]
        if r["workload"] == workload
        and (workers is None or r["compute_workers"] == workers)
        and r["status"] == "ok"
        and not r.get("sliced")
        and label(r) not in PROBES
    ]


def _best(rows: Iterable[Row], key: Callable[[Row], Any]) -> Row | None:
    ranked = sorted((r for r in rows if key(r) is not None), key=key)
    return ranked[0] if ranked else None


def _fastest(rows: Iterable[Row]) -> Row | None:
    return _best(rows, lambda r: -r["throughput_median"] if r["throughput_median"] else None)


def _rate(row: Row) -> str:
    return f"{row['throughput_median']:,.0f} tasks/s"


def _grid_of(doc: dict[str, Any], workload: str) -> str:
    case = next((c for c in doc["method"]["cases"] if c["workload"] == workload), None)
    return f"the {case['grid']} grid" if case else f"`{workload}`"


def fastest_per_message(doc: dict[str, Any]) -> tuple[str, list[Row]]:
    rows = _candidates(doc, "grid")
    one, chunk = (_fastest(r for r in rows if _mode(r) == mode) for mode in ("per message", "chunked"))
    if one is None:
        return "**Fastest per message:** not measured in this run.", []
    text = f"**Fastest per message:** {label(one)}, {_rate(one)} on {_grid_of(doc, 'grid')} "
    text += f"({DEFAULT_WORKERS} compute workers"
    if one.get("ratio_vs_celery_median"):
        text += f", {one['ratio_vs_celery_median']:.1f}x {doc['method']['baseline']}"
    text += ")"
    if chunk is not None:
        text += f"; in chunks of {DEFAULT_CHUNK_SIZE} points a message: {label(chunk)}, {_rate(chunk)}"
    return text + ".", [r for r in (one, chunk) if r is not None]


def fastest_cpu_bound(doc: dict[str, Any]) -> tuple[str, list[Row]]:
    best = _fastest(_candidates(doc, "cpu"))
    if best is None:
        return "**Fastest CPU-bound:** not measured in this run (the `cpu` case is in `make bench-full`).", []
    case = next(c for c in doc["method"]["cases"] if c["workload"] == "cpu")
    ideal = f", {best['fraction_of_ideal']:.0%} of the cores' ideal" if best.get("fraction_of_ideal") else ""
    cost = f"{case['cpu_cost_ms']:g} ms of CPU a task"
    return f"**Fastest CPU-bound:** {label(best)}, {_rate(best)} at {cost}{ideal}.", [best]


def lowest_latency(doc: dict[str, Any]) -> tuple[str, list[Row]]:
    rows = [r for r in _candidates(doc, "latency", None) if r.get("latency_ms")]
    best = _best(rows, lambda r: (r["latency_ms"]["p50"], r["latency_ms"]["p99"]))
    if best is None:
        return "**Lowest latency:** not measured in this run.", []
    lat = best["latency_ms"]
    rate = next((c["rate_per_s"] for c in doc["method"]["cases"] if c["workload"] == "latency"), None)
    at = f" at {rate:g} tasks/s" if rate else ""
    figures = f"p50 {lat['p50']:.1f} ms / p99 {lat['p99']:.1f} ms{at}"
    return f"**Lowest latency:** {label(best)}, {figures} (submit → stored).", [best]


def _landed(row: Row) -> bool:
    """Whether the fault hit mid-run: one that lands after ``LATE`` of the results were stored
    finds almost nothing in flight, and proves little either way."""
    stored = row.get("stored_at_fault")
    return stored is None or stored < LATE * row["tasks"]


def _harm(rows: list[Row]) -> int:
    return sum(r["lost"] + r["wrong"] + (r.get("doubled") or 0) for r in rows)


def _safety(rows: list[Row]) -> tuple[int, int, float]:
    """Sort key: kill scenarios whose fault landed mid-run (more first), results lost, wrong or
    doubled, then the slowest recovery."""
    slowest = max((r["recovery_s"] or 0.0 for r in rows), default=0.0)
    return -sum(map(_landed, rows)), _harm(rows), slowest


def safest(chaos: dict[str, Any] | None) -> tuple[str, str | None]:
    """The stack with no result lost, wrong or doubled across the kill -9 scenarios (the most of
    them landing mid-run, then the fastest recovery), from a ``make chaos`` results document."""
    if not chaos:
        return "**Safest under kill -9:** no chaos results (`make chaos` writes them).", None
    runs: dict[str, list[Row]] = {}
    for r in chaos["chaos"]:
        if r["scenario"] in KILL_SCENARIOS and not r.get("skipped"):
            runs.setdefault(f"{r['stack']} {r['profile']}", []).append(r)
    if not runs:
        return "**Safest under kill -9:** the chaos results hold no kill -9 scenario.", None
    ranked = sorted(runs, key=lambda name: _safety(runs[name]))
    best = ranked[0]
    landed, harm, slowest = _safety(runs[best])
    scenarios = ", ".join(sorted({r["scenario"] for r in runs[best] if _landed(r)}))
    verdict = "nothing lost, wrong or doubled" if harm == 0 else f"{harm} result(s) lost, wrong or doubled"
    text = (
        f"**Safest under kill -9:** {best}, {verdict} over {scenarios}, every recovery within {slowest:.1f} s"
    )
    if harm == 0 and (clean := [n for n in ranked[1:] if _safety(runs[n])[:2] == (landed, 0)]):
        text += f"; as clean: {', '.join(clean)}"
    if harmed := [f"{n} ({_harm(runs[n])})" for n in ranked if _harm(runs[n])]:
        text += f"; lost, wrong or doubled: {', '.join(harmed)}"
    if late := [n for n in ranked if not all(map(_landed, runs[n]))]:
        text += f"; a fault landed after {LATE:.0%} was stored (not counted) on {', '.join(late)}"
    return text + f" (`make chaos`, {chaos['created_utc'][:10]}).", best


def cpu_costs(doc: dict[str, Any], named: list[Row], safest_label: str | None) -> str:
    """Worker CPU seconds per 1,000 tasks on the grid of every stack named above (the workload it
    was named for where the grid has no figure)."""
    grid = {label(r): r for r in _candidates(doc, "grid")}
    baseline = [doc["method"]["baseline"]] if doc["method"].get("baseline") in grid else []
    labels = list(
        dict.fromkeys([label(r) for r in named] + ([safest_label] if safest_label else []) + baseline)
    )
    cells = []
    for name in labels:
        row = grid.get(name) or next((r for r in named if label(r) == name), None)
        if row is None or row.get("cpu_s_per_1k_median") is None:
            cells.append(f"{name} not measured in this run")
            continue
        where = "" if row["workload"] == "grid" else f" ({row['workload']})"
        cells.append(f"{name} {row['cpu_s_per_1k_median']:.2f} s{where}")
    if not cells:
        return "**What each costs in CPU:** not measured in this run."
    return "**What each costs in CPU** (worker CPU seconds per 1,000 tasks, grid): " + "; ".join(cells) + "."


def lines(doc: dict[str, Any], chaos: dict[str, Any] | None = None) -> list[str]:
    """The five lines, as markdown list items."""
    per_message, a = fastest_per_message(doc)
    cpu_bound, b = fastest_cpu_bound(doc)
    latency, c = lowest_latency(doc)
    safety, safe = safest(chaos)
    return [
        f"- {line}" for line in (per_message, cpu_bound, latency, safety, cpu_costs(doc, a + b + c, safe))
    ]
