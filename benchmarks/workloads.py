"""What each profile measures: workloads, worker counts, repetitions."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from benchmarks import idle
from shared.tasks import Grid

#: A stack slower than this in its warm-up runs ``SLICE`` instead of each grid (the report says so).
SLOW_RATE = 100.0
#: An open-loop (latency) case runs only on stacks whose warm-up went at least this many times
#: its rate (``harness.too_slow``); the others' rows say why.
KEEPS_UP = 2.0
SLICE = Grid(6, 6)
WARMUP = Grid(6, 6)
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
    #: Stack labels (``"rq chunked"``) this case runs on; None: every stack.
    only: tuple[str, ...] | None = None
    #: Stack labels this case does not run on (after ``only``).
    skip: tuple[str, ...] = ()
    #: Profiles (``tuned``) of any stack this case does not run on.
    skip_profiles: tuple[str, ...] = ()
    #: Seconds between kept RSS samples (the memory curve of a soak); None: peak RSS only.
    rss_every: float | None = None
    #: Seconds without a new result before the run is given up (and fails verification).
    stall_timeout: float = 20.0
    #: Why the case runs where it runs, for the report's method text.
    note: str = ""
    #: "run": workers process the grid. "submit": no workers, only the producer's submit of the
    #: grid is timed (bulk submit). "idle": workers with nothing to do; Redis commands are counted.
    mode: Literal["run", "submit", "idle"] = "run"
    #: Idle cases: seconds over which the commands are counted.
    idle_window: float = idle.WINDOW_S

    @property
    def closed(self) -> bool:
        return self.rate is None

    def runs_on(self, label: str) -> bool:
        named = (self.only is None or label in self.only) and label not in self.skip
        return named and label.rpartition(" ")[2] not in self.skip_profiles

    def sliced(self) -> Case:
        """A slow stack's closed-loop runs use ``SLICE``; submit-only and idle runs are never sliced."""
        if not self.closed or self.mode != "run" or self.grid.size <= SLICE.size:
            return self
        return replace(self, grid=SLICE)

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
    #: What each stack's warm-up run sends (a user's task takes its own calls, not points).
    warmup_grid: Grid = WARMUP
    #: Repetitions of each case on a sliced (slow) stack; None: as many as any stack.
    sliced_repeats: int | None = None
    #: Repetitions of each case on a peer's ``tuned`` profile; None: as many as any stack.
    tuned_repeats: int | None = None

    def narrowed(self, workloads: Iterable[str] | None = None, repeats: int | None = None) -> Profile:
        """This profile with only the cases of ``workloads`` (None: all) and, if given, ``repeats``
        per case: for measuring one thing again without the whole matrix."""
        cases = self.cases
        if workloads is not None:
            wanted = set(workloads)
            known = {c.workload for c in cases}
            if unknown := sorted(wanted - known):
                raise ValueError(f"profile {self.name!r} has no workload {unknown}; it has {sorted(known)}")
            cases = tuple(c for c in cases if c.workload in wanted)
        if repeats is not None:
            cases = tuple(replace(c, repeats=repeats) for c in cases)
        return replace(self, cases=cases, repeats=repeats or self.repeats)


def latency(rate: float, seconds: int, repeats: int | None = None) -> Case:
    """Open loop: ``rate`` tasks/s for ``seconds`` (the grid is only the set of distinct points)."""
    return Case("latency", Grid(seconds, int(rate)), rate=rate, repeats=repeats)


#: The declared-task stacks (``benchmarks.task_stacks``): is the result store the bottleneck?
TASK_STACKS = tuple(
    f"{path} task-{store}"
    for path in ("dramatiq", "rq")
    for store in ("redis", "sqlite", "postgres", "postgres-chunked")
)
QUICK_TASK_NOTE = (
    "The declared-task stacks (`task-*`: `@task` with results in Redis, SQLite or PostgreSQL) run the "
    "grid 3 times in the quick profile (the last `grid` case: the SQL-store ratio is paired by "
    "repetition; `task-postgres-chunked` runs 25,000 tasks once instead), but no latency: latency runs of 8 "
    "more stacks would take `make bench` well past 10 minutes on 2 cores. `make bench-full` runs "
    "25,000 tasks 3 times."
)
#: The SQL store's chunked target is on 25,000 calls: the quick profile runs it once.
CHUNKED_SQL_STACKS = ("dramatiq task-postgres-chunked", "rq task-postgres-chunked")
FULL_TASK_NOTE = (
    "The declared-task stacks run the 2-worker grid, the 25,000-task grid and latency (Redis store "
    "only); worker scaling, CPU cost and idle workers do not depend on where results are stored."
)
#: Per message, a SQL store commits a transaction per result: 25,000 take them a minute or more.
PER_MESSAGE_SQL = tuple(label for label in TASK_STACKS if label.endswith(("task-sqlite", "task-postgres")))
LARGE_SQL_NOTE = (
    "Per message, a SQL store commits one transaction per result: 25,000 take a minute or more per "
    "run; the 50x50 grid compares the stores per message, and `task-postgres-chunked` runs 25,000."
)


#: The soak's stacks: the project's own per-message paths (250,000 tasks take them minutes).
SOAK_STACKS = ("dramatiq ours", "rq ours")
SOAK_NOTE = (
    "The stock profiles, the Celery baselines and the Redis limit probe are comparisons, not the "
    "pipeline whose memory is in question."
)
#: Chunked stacks soak on four times as many points: 250,000 of them take a fast host ~3 s, mostly
#: warm-up (imports, pools, first batches), and growth is measured after warm-up.
CHUNKED_SOAK_STACKS = ("dramatiq chunked", "rq chunked")
CHUNKED_SOAK_NOTE = (
    "Chunked stacks run 1,000,000 points (4,000 messages of 250 each way): 250,000 points take them "
    "a few seconds, too short for the RSS curve to settle after warm-up."
)


def soak(
    grid: Grid,
    stacks: tuple[str, ...] = SOAK_STACKS,
    rss_every: float = 0.25,
    workload: str = "soak",
    note: str = SOAK_NOTE,
) -> Case:
    """One long closed-loop run per stack whose worker RSS is kept as a curve, to show it stays flat.
    Samples every 0.25 s: the growth figure needs ``memory.MIN_SAMPLES``, and the slowest stack's
    minutes make a few hundred samples. Its stall timeout is longer than the default: behind a
    backlog of hundreds of thousands of messages a pause of some seconds is slowness, not a hang,
    and a false stall would throw away the longest run."""
    return Case(workload, grid, repeats=1, only=stacks, rss_every=rss_every, stall_timeout=60.0, note=note)


#: The producer alone: the grid-large points, submitted with no worker running (pipelined). Only
#: on stacks whose producer differs: a stock or tuned profile changes the workers, not the submit.
SUBMIT_NOTE = "Runs only where the producer differs: stock and tuned profiles change the workers, not it."
BULK_SUBMIT = Case(
    "submit",
    Grid(250, 100),
    mode="submit",
    only=(
        "dramatiq ours",
        "dramatiq chunked",
        "rq ours",
        "rq chunked",
        "redis-limit probe",
        "redis-limit chunked",
    ),
    note=SUBMIT_NOTE,
)
#: Celery's producer sends 25,000 tasks in about 28 s: once is enough to place it.
CELERY_SUBMIT = replace(
    BULK_SUBMIT,
    only=("celery-rabbitmq seed-defaults", "celery-redis seed-defaults"),
    repeats=1,
    note=SUBMIT_NOTE + " Celery's producers run once (about 28 s each).",
)
#: In the quick profile Celery's producers send 5,000 tasks: a rate, not a duration, is wanted.
QUICK_CELERY_SUBMIT = replace(
    CELERY_SUBMIT,
    grid=Grid(100, 50),
    note=SUBMIT_NOTE + " Celery's producers run once, on 5,000 tasks in the quick profile (about 6 s each).",
)
#: The quick profile's latency: not on the task stacks (QUICK_TASK_NOTE), nor on tuned or chunked
#: profiles.
QUICK_LATENCY_NOTE = (
    "Latency at 20 tasks/s is the producer's and one hop's, which tuning the workers' concurrency "
    "barely moves, and a chunked stack's latency run sends chunks of one point (its per-message "
    "path): the quick profile times the seed-defaults, ours and stock profiles (the full profile "
    "every stack)."
)
#: The quick profile's per-message grid on the task stacks: the chunked SQL store runs 25,000.
QUICK_TASK_GRID = tuple(label for label in TASK_STACKS if label not in CHUNKED_SQL_STACKS)
QUICK_TUNED_NOTE = "A peer's `tuned` profile runs each grid once in the quick profile (3 times in the full)."
#: Three workers (2 compute + 1 result) idle for ``idle.WINDOW_S``: commands per second per worker.
IDLE = Case("idle", Grid(1, 1), repeats=1, mode="idle", skip=TASK_STACKS, note=FULL_TASK_NOTE)

PROFILES: dict[str, Profile] = {
    # Latency runs once per stack here: its percentiles already pool 200 samples.
    "quick": Profile(
        "quick",
        (
            Case("grid", Grid(50, 50), skip=TASK_STACKS, note=f"{QUICK_TASK_NOTE} {QUICK_TUNED_NOTE}"),
            replace(
                latency(20, 10, repeats=1),
                skip=TASK_STACKS,
                skip_profiles=("tuned", "chunked"),
                note=QUICK_LATENCY_NOTE,
            ),
            BULK_SUBMIT,
            QUICK_CELERY_SUBMIT,
            Case("grid", Grid(50, 50), only=QUICK_TASK_GRID),
            Case("grid-large", Grid(250, 100), repeats=1, only=CHUNKED_SQL_STACKS),
        ),
        repeats=3,
        sliced_repeats=1,
        tuned_repeats=1,
    ),
    "full": Profile(
        "full",
        (
            Case("grid", Grid(50, 50)),
            Case("grid", Grid(50, 50), compute_workers=1, skip=TASK_STACKS, note=FULL_TASK_NOTE),
            Case("grid", Grid(50, 50), compute_workers=4, skip=TASK_STACKS, note=FULL_TASK_NOTE),
            Case("grid-large", Grid(250, 100), skip=PER_MESSAGE_SQL, note=LARGE_SQL_NOTE),
            Case("cpu", Grid(40, 25), cpu_cost_ms=5.0, skip=TASK_STACKS, note=FULL_TASK_NOTE),
            latency(20, 30, repeats=1),
            BULK_SUBMIT,
            CELERY_SUBMIT,
            IDLE,
            soak(Grid(500, 500)),
            soak(Grid(1000, 1000), CHUNKED_SOAK_STACKS, workload="soak-chunked", note=CHUNKED_SOAK_NOTE),
        ),
        repeats=3,
    ),
    # For the test suite: every stack once, as small as it gets.
    "smoke": Profile("smoke", (Case("grid", Grid(4, 4)), latency(10, 1)), repeats=1, warmup=False),
}
