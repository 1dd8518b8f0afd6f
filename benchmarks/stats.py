"""The few statistics the report uses, on the standard library's ``statistics`` module."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: The latency percentiles every report shows.
PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class Spread:
    """Median with min and max: what a table cell shows for a few repetitions."""

    median: float
    low: float
    high: float


def spread(values: Sequence[float]) -> Spread | None:
    if not values:
        return None
    return Spread(statistics.median(values), min(values), max(values))


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile, interpolated between closest ranks (numpy's default, "linear")."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {p}")
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * p / 100
    below = int(rank)
    above = min(below + 1, len(ordered) - 1)
    return float(ordered[below] + (ordered[above] - ordered[below]) * (rank - below))


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float] | None:
    """p50/p90/p99/max of ``samples_ms``, or None when there are none."""
    if not samples_ms:
        return None
    summary = {f"p{p}": percentile(samples_ms, p) for p in PERCENTILES}
    summary["max"] = float(max(samples_ms))
    return summary


def paired_ratio_median(values: Mapping[int, float], bases: Mapping[int, float]) -> float | None:
    """Median over repetitions of ``values[rep] / bases[rep]``, on the repetitions both have.

    Pairing by repetition cancels drift between repetitions (both ran back to back).
    """
    ratios = [values[r] / bases[r] for r in values.keys() & bases.keys() if bases[r] > 0]
    return statistics.median(ratios) if ratios else None


def cdf(samples: Sequence[float]) -> tuple[list[float], list[float]]:
    """Sorted samples and the fraction of samples at or below each one (for a CDF plot)."""
    ordered = sorted(samples)
    n = len(ordered)
    return ordered, [(i + 1) / n for i in range(n)]
