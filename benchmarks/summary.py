"""From runs to the ``summary`` rows: one per stack x profile x workload x worker count.

Only verified runs count. Ratios are paired by repetition (each stack's run against the baseline's
and the limit's run of the same repetition), then the median is taken. A row's limit is the probe of
its own mode (``Stack.limit``: per message, or chunked), never the other one: a chunked row over the
per-message probe would read as a fraction above 1 that says nothing about either.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from benchmarks import stats
from benchmarks.measure import RunRecord
from benchmarks.stacks import BASELINE, limit_of
from benchmarks.workloads import SLICE

Key = tuple[str, str, str, int]


def _key(run: RunRecord) -> Key:
    return run.stack, run.profile, run.workload, run.compute_workers


def _by_repeat(runs: Iterable[RunRecord]) -> dict[int, float]:
    return {r.repeat: r.throughput for r in runs if r.status == "ok"}


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _max(values: Sequence[float | None]) -> float | None:
    return max((v for v in values if v is not None), default=None)


def _latency(ok: Sequence[RunRecord]) -> dict[str, float] | None:
    rows = [r.latency_ms for r in ok if r.latency_ms]
    if not rows:
        return None
    merged = {name: statistics.median(row[name] for row in rows) for name in rows[0] if name != "max"}
    merged["max"] = max(row["max"] for row in rows)
    return merged


def _status(runs: int, failed: int) -> str:
    if not failed:
        return "ok"
    return "FAILED" if failed == runs else f"FAILED {failed} of {runs}"


def summarize(
    runs: Sequence[RunRecord],
    skipped: dict[tuple[str, str], str],
    workloads: Sequence[tuple[str, int]],
    ideal: dict[str, float | None],
    sliced: set[tuple[str, str]],
    only: Mapping[tuple[str, int], Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """Summary rows in run order; skipped stacks get a row per workload with their reason, except
    for workloads that name their stacks (``only``: stack labels) and would not have run there."""
    groups: dict[Key, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(_key(run), []).append(run)
    rows = []
    for key, group in groups.items():
        stack, profile, workload, workers = key
        ok = [r for r in group if r.status == "ok"]
        closed = group[0].rate_per_s is None
        spread = stats.spread([r.throughput for r in ok])
        mine = _by_repeat(ok)
        ratio = fraction = None
        probe = limit_of((stack, profile))
        if closed:
            baseline = _by_repeat(groups.get((*BASELINE, workload, workers), []))
            limit = _by_repeat(groups.get((*probe, workload, workers), []))
            ratio = stats.paired_ratio_median(mine, baseline)
            fraction = stats.paired_ratio_median(mine, limit)
        best = ideal.get(workload)
        failed = len(group) - len(ok)
        rows.append(
            {
                "stack": stack,
                "profile": profile,
                "workload": workload,
                "compute_workers": workers,
                "tasks": group[0].tasks,
                # Submit-only and idle runs are never sliced (``Case.sliced``), whatever their stack.
                "sliced": (stack, profile) in sliced and closed and group[0].tasks == SLICE.size,
                "runs": len(group),
                "runs_failed": failed,
                "status": _status(len(group), failed),
                "problems": sorted({r.problems for r in group if r.problems}),
                "throughput_median": spread.median if spread else None,
                "throughput_min": spread.low if spread else None,
                "throughput_max": spread.high if spread else None,
                "ratio_vs_celery_median": ratio,
                "fraction_of_limit": fraction,
                # The probe ``fraction_of_limit`` is against ("redis-limit chunked" for a chunked row).
                "limit": " ".join(probe),
                "fraction_of_ideal": spread.median / best if spread and best else None,
                "submit_rate_median": _median([r.submit_rate for r in ok]),
                "latency_ms": _latency(ok),
                "cpu_s_per_1k_median": _median([r.cpu_s_per_1k for r in ok]),
                "peak_rss_mb_max": _max([r.peak_rss_mb for r in ok]),
                "peak_rss_compute_mb_max": _max([r.peak_rss_compute_mb for r in ok]),
                "peak_rss_result_mb_max": _max([r.peak_rss_result_mb for r in ok]),
                "redis_mem_delta_mb_median": _median([r.redis_mem_delta_mb for r in ok]),
                "idle_commands_per_s": _median([r.idle_commands_per_s for r in ok]),
            }
        )
    only = only or {}
    for (stack, profile), reason in skipped.items():
        for workload, workers in workloads:
            if (labels := only.get((workload, workers))) is not None and f"{stack} {profile}" not in labels:
                continue
            rows.append(_skipped_row(stack, profile, workload, workers, reason))
    return rows


def _skipped_row(stack: str, profile: str, workload: str, workers: int, reason: str) -> dict[str, Any]:
    empty = dict.fromkeys(
        [
            "throughput_median",
            "throughput_min",
            "throughput_max",
            "ratio_vs_celery_median",
            "fraction_of_limit",
            "fraction_of_ideal",
            "submit_rate_median",
            "latency_ms",
            "cpu_s_per_1k_median",
            "peak_rss_mb_max",
            "peak_rss_compute_mb_max",
            "peak_rss_result_mb_max",
            "redis_mem_delta_mb_median",
        ]
    )
    return {
        "stack": stack,
        "profile": profile,
        "workload": workload,
        "compute_workers": workers,
        "tasks": 0,
        "sliced": False,
        "runs": 0,
        "runs_failed": 0,
        "status": f"skipped: {reason}",
        "problems": [],
        **empty,
    }


def not_measured_row(stack: str, profile: str, workload: str, workers: int, reason: str) -> dict[str, Any]:
    """The row of a workload a stack that ran cannot be measured on (latency with results in SQL)."""
    return {**_skipped_row(stack, profile, workload, workers, reason), "status": f"not measured: {reason}"}


def run_rows(runs: Iterable[RunRecord]) -> list[dict[str, Any]]:
    return [asdict(r) for r in runs]
