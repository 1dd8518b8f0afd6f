"""What each profile measures: workloads, worker counts, repetitions."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from shared.tasks import Grid

#: A stack slower than this in its warm-up runs ``SLICE`` instead of each grid (the report says so).
SLOW_RATE = 100.0
SLICE = Grid(10, 10)
WARMUP = Grid(10, 10)
DEFAULT_WORKERS = 2


@dataclass(frozen=True)
class Case:
    """One measured configuration; ``rate`` set means open loop (latency), else submit all at once."""

    workload: str
    grid: Grid
    compute_workers: int = DEFAULT_WORKERS
    cpu_cost_ms: float = 0.0
    rate: float | None = None
    #: Repetitions of this case, if not the profile's.
    repeats: int | None = None

    @property
    def closed(self) -> bool:
        return self.rate is None

    def sliced(self) -> Case:
        return self if not self.closed or self.grid.size <= SLICE.size else replace(self, grid=SLICE)

    def ideal_throughput(self) -> float | None:
        """cores / cost: what the machine allows when every core only burns the task's CPU."""
        if not self.cpu_cost_ms:
            return None
        return (os.cpu_count() or 1) / (self.cpu_cost_ms / 1000)


@dataclass(frozen=True)
class Profile:
    name: str
    cases: tuple[Case, ...]
    repeats: int
    warmup: bool = True


def latency(rate: float, seconds: int, repeats: int | None = None) -> Case:
    """Open loop: ``rate`` tasks/s for ``seconds`` (the grid is only the set of distinct points)."""
    return Case("latency", Grid(seconds, int(rate)), rate=rate, repeats=repeats)


PROFILES: dict[str, Profile] = {
    # Latency runs once per stack here: its percentiles already pool 200 samples.
    "quick": Profile("quick", (Case("grid", Grid(50, 50)), latency(20, 10, repeats=1)), repeats=3),
    "full": Profile(
        "full",
        (
            Case("grid", Grid(50, 50)),
            Case("grid", Grid(50, 50), compute_workers=1),
            Case("grid", Grid(50, 50), compute_workers=4),
            Case("grid-large", Grid(250, 100)),
            Case("cpu", Grid(40, 25), cpu_cost_ms=5.0),
            latency(20, 30),
        ),
        repeats=3,
    ),
    # For the test suite: every stack once, as small as it gets.
    "smoke": Profile("smoke", (Case("grid", Grid(4, 4)), latency(10, 1)), repeats=1, warmup=False),
}
