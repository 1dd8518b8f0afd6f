"""A whole profile: every stack, every case, interleaved (A B C A B C …), into one results document."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks import machine
from benchmarks.measure import BeforeVerify, RunRecord, run_case
from benchmarks.result_stores import STORES
from benchmarks.schema import SCHEMA_VERSION
from benchmarks.stacks import BASELINE, LIMIT, Stack
from benchmarks.summary import not_measured_row, run_rows, summarize
from benchmarks.workloads import KEEPS_UP, SLICE, SLOW_RATE, Case, Profile
from shared.backend import Backend
from shared.settings import Settings


@dataclass
class StackState:
    stack: Stack
    backend: Backend | None = None
    status: str = "ran"
    sliced: bool = False
    warmup_throughput: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack.stack,
            "profile": self.stack.profile,
            "status": self.status,
            "sliced": self.sliced,
            "warmup_throughput": self.warmup_throughput,
        }


def runs_on(case: Case, stack: Stack) -> bool:
    """Whether ``case`` runs on ``stack``: the case names it (``Case.runs_on``), and an open-loop
    (latency) case only where latency can be timed (``Stack.latency_unmeasurable``)."""
    return case.runs_on(stack.label) and (case.closed or not stack.latency_unmeasurable)


def too_slow(case: Case, state: StackState) -> str:
    """Why an open-loop case is not run on a stack whose warm-up was slower than twice its rate
    ("": it runs): a backlog would build, and the run would time the queue, not the stack, for
    minutes (stock rq's 10-second latency run took 45 s)."""
    if case.closed or case.rate is None or state.warmup_throughput is None:
        return ""
    if state.warmup_throughput >= KEEPS_UP * case.rate:
        return ""
    return f"slower than the rate (warm-up {state.warmup_throughput:,.0f}/s < {KEEPS_UP:g} x {case.rate:g}/s)"


def _prepare(stacks: list[Stack], settings: Settings) -> list[StackState]:
    states = []
    for stack in stacks:
        state = StackState(stack)
        if problem := stack.problem(settings):
            state.status = f"skipped: {problem}"
        else:
            state.backend = stack.make(settings)
        states.append(state)
    return states


class Harness:
    def __init__(
        self,
        profile: Profile,
        stacks: list[Stack],
        settings: Settings,
        out_dir: Path,
        console: Console | None = None,
        before_verify: BeforeVerify | None = None,
        postgres_url: str | None = None,
    ) -> None:
        """``postgres_url``: the task stacks' PostgreSQL (default: a private one for the run)."""
        self.profile = profile
        self.stacks = stacks
        self.settings = settings
        self.out_dir = out_dir
        self.console = console or Console(stderr=True)
        self.before_verify = before_verify
        self.postgres_url = postgres_url
        self.runs: list[RunRecord] = []

    def _repeats(self, case: Case) -> int:
        return case.repeats or self.profile.repeats

    def planned(self, states: list[StackState]) -> int:
        """Runs the progress bar counts: a warm-up per stack, then each case's repetitions on each
        stack it runs on (``Case.only``)."""
        return len(states) * int(self.profile.warmup) + self._case_runs(states)

    def _case_runs(self, states: list[StackState]) -> int:
        cases = self.profile.cases
        return sum(
            sum(self._runs(c, s, r) for s in states) for c in cases for r in range(1, self._repeats(c) + 1)
        )

    def _one(self, bar: Progress, state: StackState, case: Case, repeat: int, overall: Any) -> RunRecord:
        assert state.backend is not None
        label = f"{state.stack.label} · {case.workload} (w{case.compute_workers})"
        step = "warm-up" if repeat == 0 else f"rep {repeat}/{self._repeats(case)}"
        current = bar.add_task(f"{label} · {step}", total=case.grid.size)
        record = RunRecord(
            stack=state.stack.stack,
            profile=state.stack.profile,
            workload=case.workload,
            tasks=case.grid.size,
            compute_workers=case.compute_workers,
            repeat=repeat,
            grid=str(case.grid),
            cpu_cost_ms=case.cpu_cost_ms,
            rate_per_s=case.rate,
        )
        logs = self.out_dir / "logs" / f"{state.stack.stack}-{state.stack.profile}"
        run_case(
            state.backend,
            record,
            case,
            logs / f"{case.workload}-w{case.compute_workers}-r{repeat}",
            progress=lambda done, total: bar.update(current, completed=done),
            before_verify=self.before_verify,
        )
        bar.remove_task(current)
        bar.advance(overall)
        mark = "[green]ok[/]" if record.status == "ok" else f"[red]FAILED[/] {record.problems}"
        bar.console.print(f"{label} {step}: {record.throughput:,.0f} tasks/s {mark}", highlight=False)
        return record

    def _runs(self, case: Case, state: StackState, repeat: int) -> bool:
        """Whether repetition ``repeat`` of ``case`` runs on the stack: a sliced stack runs only
        the profile's ``sliced_repeats`` of each case (its runs take the longest and say least), a
        peer's tuned profile its ``tuned_repeats``."""
        if not runs_on(case, state.stack) or too_slow(case, state):
            return False
        limit = self.profile.sliced_repeats
        if state.sliced and limit is not None and repeat > limit:
            return False
        tuned = self.profile.tuned_repeats
        return not (state.stack.profile == "tuned" and tuned is not None and repeat > tuned)

    def _warm_up(self, bar: Progress, states: list[StackState], overall: Any) -> None:
        """One small run per stack: catches a broken stack early and finds the slow ones to slice."""
        for state in states:
            record = self._one(bar, state, Case("warm-up", self.profile.warmup_grid), 0, overall)
            state.warmup_throughput = record.throughput
            if record.status != "ok":
                state.status, state.backend = f"skipped: warm-up run failed: {record.problems}", None
            elif record.throughput < SLOW_RATE and state.stack.sliceable:
                state.sliced = True

    def run(self) -> dict[str, Any]:
        """Every case on every stack it runs on; the task stacks' stores (a SQLite file, a private
        PostgreSQL) live for this run only."""
        with STORES.session(self.postgres_url):
            return self._run()

    def _run(self) -> dict[str, Any]:
        states = _prepare(self.stacks, self.settings)
        active = [s for s in states if s.backend is not None]
        cases = list(self.profile.cases)
        total = self.planned(active)
        started = time.monotonic()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.console) as bar:
            overall = bar.add_task("all runs", total=total)
            if self.profile.warmup:
                self._warm_up(bar, active, overall)
                live = [s for s in active if s.backend is not None]  # fewer where slices and rates cut runs
                bar.update(overall, total=len(active) + self._case_runs(live))
            for case in cases:
                for repeat in range(1, self._repeats(case) + 1):
                    for state in [s for s in active if s.backend and self._runs(case, s, repeat)]:
                        run_case_for = case.sliced() if state.sliced else case
                        self.runs.append(self._one(bar, state, run_case_for, repeat, overall))
        return self.document(states, cases, time.monotonic() - started)

    def document(self, states: list[StackState], cases: list[Case], seconds: float) -> dict[str, Any]:
        skipped = {s.stack.key: s.status.removeprefix("skipped: ") for s in states if s.backend is None}
        sliced = {s.stack.key for s in states if s.sliced}
        ideal = {c.workload: c.ideal_throughput() for c in cases}
        workloads = list(dict.fromkeys((c.workload, c.compute_workers) for c in cases))
        # Per workload, the stacks some case of it runs on (a skipped stack gets a row only there).
        only: dict[tuple[str, int], list[str]] = {key: [] for key in workloads}
        for c in cases:
            only[(c.workload, c.compute_workers)] += [s.stack.label for s in states if runs_on(c, s.stack)]
        summary = summarize(self.runs, skipped, workloads, ideal, sliced, only)
        for c in cases:
            for s in states:
                if s.backend is None or not c.runs_on(s.stack.label):
                    continue
                if reason := s.stack.latency_unmeasurable if not runs_on(c, s.stack) else too_slow(c, s):
                    summary.append(not_measured_row(*s.stack.key, c.workload, c.compute_workers, reason))
        return {
            "schema": SCHEMA_VERSION,
            "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "profile": self.profile.name,
            "wall_seconds": round(seconds, 1),
            "machine": machine.describe(self.settings),
            "method": {
                "repeats": self.profile.repeats,
                "warmup": self.profile.warmup,
                "slow_rate": SLOW_RATE,
                "slice_grid": str(SLICE),
                "sliced_repeats": self.profile.sliced_repeats,
                "tuned_repeats": self.profile.tuned_repeats,
                "keeps_up": KEEPS_UP,
                "baseline": " ".join(BASELINE),
                "limit": " ".join(LIMIT),
                "cases": [
                    {
                        "workload": c.workload,
                        "grid": str(c.grid),
                        "tasks": c.grid.size,
                        "compute_workers": c.compute_workers,
                        "cpu_cost_ms": c.cpu_cost_ms,
                        "rate_per_s": c.rate,
                        "repeats": self._repeats(c),
                        "only": list(c.only) if c.only is not None else None,
                        "skip": list(c.skip),
                        "skip_profiles": list(c.skip_profiles),
                        "rss_every_s": c.rss_every,
                        "stall_timeout_s": c.stall_timeout,
                        "note": c.note,
                    }
                    for c in cases
                ],
            },
            "settings": {"redis_url": self.settings.redacted_url},
            "stacks": [s.as_json() for s in states],
            "runs": run_rows(self.runs),
            "summary": summary,
        }
