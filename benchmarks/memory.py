"""Worker memory over a run: peak RSS per role, the RSS curve of a soak, and whether it grows.

The performance issue asks for peak RSS per worker process and "no growth over a 250,000-task run
(report the curve)". A worker's RSS rises while it warms up (imports, connection pools, the first
batches), so growth compares the settled part of the run (10-20 % of its samples) with its end
(the last 10 %), each by its median so one sample caught mid-allocation does not decide it.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MB = 1024 * 1024
#: Fractions of the samples: the settled window after warm-up, and where the final window starts.
EARLY = (0.1, 0.2)
LATE = 0.9
#: Fewer samples than this and the windows hold one or two points each: no growth figure.
MIN_SAMPLES = 10
#: |growth| below this (percent) is "flat": allocator noise and GC timing move RSS by a few percent.
FLAT_PCT = 5.0


def _round(value: float) -> float:
    return round(value, 2)


@dataclass
class RssSeries:
    """RSS of each worker tree (MB), sampled every ``every`` s from the start of the measurement."""

    roles: list[str]
    every: float
    seconds: list[float] = field(default_factory=list)
    mb: list[list[float]] = field(default_factory=list)

    def add(self, at: float, rss_bytes: Sequence[int]) -> None:
        self.seconds.append(round(at, 2))
        self.mb.append([_round(b / MB) for b in rss_bytes])

    def as_json(self) -> dict[str, Any]:
        return {"every_s": self.every, "roles": self.roles, "seconds": self.seconds, "mb": self.mb}


def by_role(series: Mapping[str, Any]) -> dict[str, list[float]]:
    """Per role, per sample, the largest worker of that role (one line per role on the chart)."""
    roles: list[str] = series["roles"]
    curves: dict[str, list[float]] = {role: [] for role in dict.fromkeys(roles)}
    for sample in series["mb"]:
        for role, curve in curves.items():
            curve.append(max(mb for r, mb in zip(roles, sample, strict=True) if r == role))
    return curves


def growth(values: Sequence[float]) -> dict[str, float] | None:
    """Median of the last 10 % of ``values`` against the median of 10-20 %, as percent; None if too
    few samples to tell."""
    n = len(values)
    if n < MIN_SAMPLES:
        return None
    start = int(n * EARLY[0])
    early = statistics.median(values[start : max(int(n * EARLY[1]), start + 1)])
    late = statistics.median(values[int(n * LATE) :])
    pct = (late - early) / early * 100 if early else 0.0
    return {"early_mb": _round(early), "late_mb": _round(late), "growth_pct": _round(pct)}


def growth_by_role(series: Mapping[str, Any]) -> dict[str, dict[str, float]] | None:
    """``growth`` of each role's curve; None when the run was too short for any."""
    found = {role: g for role, curve in by_role(series).items() if (g := growth(curve))}
    return found or None


def peak_by_role(roles: Sequence[str], peaks: Sequence[int]) -> dict[str, float]:
    """Peak RSS (MB) of the largest worker tree of each role."""
    out: dict[str, float] = {}
    for role, peak in zip(roles, peaks, strict=True):
        out[role] = max(out.get(role, 0.0), _round(peak / MB))
    return out


def verdict(growth_by: Mapping[str, Mapping[str, float]] | None) -> str:
    """ "flat" when every role's |growth| is under ``FLAT_PCT``, else "grows"; "-" without a figure."""
    if not growth_by:
        return "-"
    return "flat" if all(abs(g["growth_pct"]) < FLAT_PCT for g in growth_by.values()) else "grows"
