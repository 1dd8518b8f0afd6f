"""One pytest run's outcome per test, read from the lines ``compat_record`` wrote.

Each test is ``passed``, ``failed`` (its call or its setup/teardown failed), ``skipped``
(skipped, xfail, deselected), or ``died``: it started and never finished, because the test
process was killed during it. Subtests report under their test's id: one failure fails the test.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PASSED, FAILED, SKIPPED, DIED = "passed", "failed", "skipped", "died"
OUTCOMES = (PASSED, FAILED, SKIPPED, DIED)
#: A test one run has and another has not (it failed to collect there, or the process died first).
MISSING = "missing"


@dataclass
class Run:
    """What one run of a suite on one side left: each test's outcome and first failure line."""

    outcomes: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    #: The test running when the process died, if it did.
    died_in: str | None = None

    def by_file(self) -> dict[str, dict[str, int]]:
        """file -> outcome -> count."""
        counts: dict[str, dict[str, int]] = {}
        for nodeid, outcome in self.outcomes.items():
            per_file = counts.setdefault(file_of(nodeid), dict.fromkeys(OUTCOMES, 0))
            per_file[outcome] += 1
        return counts


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def read_run(lines: Iterable[str]) -> Run:
    """A run from ``compat_record``'s JSON lines (later phases of a test refine its outcome)."""
    run = Run()
    finished: set[str] = set()
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        nodeid, when = record["nodeid"], record["when"]
        if when == "start":
            run.outcomes.setdefault(nodeid, DIED)
            continue
        if when == "deselected":
            run.outcomes[nodeid] = SKIPPED
            finished.add(nodeid)
            continue
        if when in ("teardown", "collect"):  # collect: a file that failed to import
            finished.add(nodeid)
        outcome = record["outcome"]
        current = run.outcomes.get(nodeid, DIED)
        if outcome == "failed":
            run.outcomes[nodeid] = FAILED
            run.messages.setdefault(nodeid, f"{when}: {record['message']}")
        elif outcome == "skipped" and current != FAILED:
            run.outcomes[nodeid] = SKIPPED
            if record["message"]:
                run.messages.setdefault(nodeid, record["message"])
        elif outcome == "passed" and current == DIED and when != "setup":
            run.outcomes[nodeid] = PASSED
    for nodeid, outcome in run.outcomes.items():
        if nodeid not in finished and outcome != SKIPPED:
            run.outcomes[nodeid] = DIED
            run.died_in = nodeid
    return run


def load_run(path: Path) -> Run:
    return read_run(path.read_text(encoding="utf-8").splitlines() if path.exists() else [])


def files_of(runs: Iterable[Run]) -> list[str]:
    """Every test file any of ``runs`` saw, sorted."""
    return sorted({file_of(nodeid) for run in runs for nodeid in run.outcomes})
