"""Stock against ours: the per-file table, the differences, and what the expected file says of them.

A *difference* is a test whose outcome on our side differs from stock (passed on one, failed or
skipped on the other). ``expected_differences.toml`` lists each known one with its reason, per
suite, in three tables:

- ``differences``: node id -> why it differs on ours (short, for a user);
- ``not_run_on_ours``: node id -> why it cannot run on our side at all (deselected there);
- ``flaky``: node id -> why its outcome varies from run to run (left out of the comparison).

The run fails on a difference the file does not list, on a listed one that no longer differs (or
no longer exists), on a test whose outcome changed between our side's runs without being listed
as flaky, and on a side whose test process died.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.compat.outcomes import DIED, FAILED, MISSING, PASSED, SKIPPED, Run, file_of, files_of

TABLES = ("differences", "not_run_on_ours", "flaky")


@dataclass(frozen=True)
class Expected:
    """One suite's part of the expected-differences file."""

    differences: Mapping[str, str] = field(default_factory=dict)
    not_run_on_ours: Mapping[str, str] = field(default_factory=dict)
    flaky: Mapping[str, str] = field(default_factory=dict)


def load_expected(path: Path) -> dict[str, Expected]:
    """suite name -> its expected differences (a missing file lists none)."""
    data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    found: dict[str, Expected] = {}
    for suite, tables in data.items():
        unknown = set(tables) - set(TABLES)
        if unknown:
            raise ValueError(f"{path}: [{suite}] has unknown tables {sorted(unknown)}; known: {TABLES}")
        found[suite] = Expected(**{name: dict(tables.get(name, {})) for name in TABLES})
    return found


@dataclass(frozen=True)
class Difference:
    nodeid: str
    stock: str
    ours: str
    #: The expected file's reason, or None for a difference it does not list.
    reason: str | None
    #: The first failure line on whichever side failed.
    message: str


@dataclass
class SuiteReport:
    suite: str
    version: str
    stock: Run
    ours: Sequence[Run]
    expected: Expected
    differences: list[Difference] = field(default_factory=list)
    #: Problems that fail the run, one line each.
    problems: list[str] = field(default_factory=list)
    #: Listed flaky tests and the outcomes they had this time.
    flaky_seen: dict[str, list[str]] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """Per file: stock and ours (first run) counts, tests not run on ours, differences."""
        stock_counts, ours_counts = self.stock.by_file(), self.ours[0].by_file()
        not_run = [file_of(nodeid) for nodeid in self.expected.not_run_on_ours]
        rows = []
        for path in files_of([self.stock, *self.ours]):
            stock, ours = stock_counts.get(path, {}), ours_counts.get(path, {})
            rows.append(
                {
                    "suite": self.suite,
                    "file": path,
                    "stock": {k: stock.get(k, 0) for k in (PASSED, FAILED, SKIPPED)},
                    "ours": {k: ours.get(k, 0) for k in (PASSED, FAILED, SKIPPED)},
                    "not_run_on_ours": not_run.count(path),
                    "differences": sum(1 for d in self.differences if file_of(d.nodeid) == path),
                }
            )
        return rows


def compare(suite: str, version: str, stock: Run, ours: Sequence[Run], expected: Expected) -> SuiteReport:
    """Stock against each of our runs, checked against ``expected``."""
    report = SuiteReport(suite, version, stock, ours, expected)
    runs = [("stock", stock), *(("ours", run) for run in ours)]
    for side, run in runs:
        if run.died_in is not None:
            report.problems.append(f"{suite} {side}: the test process died during {run.died_in}")
        if not run.outcomes:
            report.problems.append(f"{suite} {side}: no test ran (see its log in .compat/runs/)")
    died = any(run.died_in is not None for _, run in runs)
    unreached = 0
    nodeids = set().union(*(run.outcomes for _, run in runs)) - set(expected.not_run_on_ours)
    for nodeid in sorted(nodeids):
        outcomes = [run.outcomes.get(nodeid, MISSING) for _, run in runs]
        if DIED in outcomes:
            continue  # "died during" says so
        if died and MISSING in outcomes:
            unreached += 1  # one problem line says so, not one per test
        elif nodeid in expected.flaky:
            report.flaky_seen[nodeid] = outcomes
        elif len(set(outcomes[1:])) > 1:
            report.problems.append(f"{suite}: {nodeid} changed outcome between our runs {outcomes[1:]}")
        elif outcomes[0] != outcomes[1]:
            _difference(report, nodeid, outcomes[0], outcomes[1])
    if unreached:
        report.problems.append(f"{suite}: {unreached} test(s) not reached after a test process died")
    _stale(report)
    return report


def _difference(report: SuiteReport, nodeid: str, stock: str, ours: str) -> None:
    message = report.ours[0].messages.get(nodeid) or report.stock.messages.get(nodeid, "")
    reason = report.expected.differences.get(nodeid)
    report.differences.append(Difference(nodeid, stock, ours, reason, message))
    # Ours passing where stock did not loses no feature (stock's own flake under load, seen once
    # in RQ's test_stop_execution_command): listed in the text, not a problem.
    if reason is None and ours != "passed":
        report.problems.append(f"{report.suite}: unexpected difference {nodeid} (stock {stock}, ours {ours})")


def _stale(report: SuiteReport) -> None:
    """Entries of the expected file that no longer hold: the file stays short and true."""
    differing = {d.nodeid for d in report.differences}
    for nodeid in report.expected.differences:
        if nodeid not in differing:
            outcome = report.stock.outcomes.get(nodeid, MISSING)
            report.problems.append(
                f"{report.suite}: listed difference no longer differs ({outcome}): {nodeid}"
            )
    for nodeid in [*report.expected.not_run_on_ours, *report.expected.flaky]:
        if nodeid not in report.stock.outcomes:
            report.problems.append(f"{report.suite}: listed test is not in the suite any more: {nodeid}")


COLUMNS = (
    *("suite", "file", "stock pass", "stock fail", "stock skip", "ours pass", "ours fail", "ours skip"),
    *("not run on ours", "differences"),
)


def table(reports: Sequence[SuiteReport]) -> str:
    """The per-file table (markdown), with a total per suite."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    counted = (PASSED, FAILED, SKIPPED)
    for report in reports:
        rows = report.rows()
        total: dict[str, Any] = {
            "suite": report.suite,
            "file": f"**total** ({report.suite} {report.version})",
            "stock": {k: sum(r["stock"][k] for r in rows) for k in counted},
            "ours": {k: sum(r["ours"][k] for r in rows) for k in counted},
            "not_run_on_ours": sum(r["not_run_on_ours"] for r in rows),
            "differences": sum(r["differences"] for r in rows),
        }
        for row in [*rows, total]:
            cells = [row["suite"], row["file"], *(row["stock"][k] for k in counted)]
            cells += [*(row["ours"][k] for k in counted), row["not_run_on_ours"], row["differences"]]
            lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def differences_text(reports: Sequence[SuiteReport]) -> str:
    """Each difference with its outcomes and reason (or the failure line, for an unexpected one)."""
    lines = []
    for report in reports:
        for d in report.differences:
            why = d.reason or (
                "ours passed where stock did not: no feature lost (not counted)"
                if d.ours == "passed"
                else f"UNEXPECTED: {d.message}"
            )
            lines.append(f"- {report.suite} {d.nodeid}: stock {d.stock}, ours {d.ours}: {why}")
        for nodeid, reason in report.expected.not_run_on_ours.items():
            lines.append(f"- {report.suite} {nodeid}: not run on ours: {reason}")
        for nodeid, seen in report.flaky_seen.items():
            reason = report.expected.flaky[nodeid]
            lines.append(f"- {report.suite} {nodeid}: flaky ({reason}); this time stock, ours: {seen}")
    return "\n".join(lines)


def as_json(reports: Sequence[SuiteReport], seconds: float) -> dict[str, Any]:
    return {
        "seconds": round(seconds, 1),
        "suites": {
            report.suite: {
                "version": report.version,
                "files": report.rows(),
                "differences": [d.__dict__ for d in report.differences],
                "not_run_on_ours": dict(report.expected.not_run_on_ours),
                "flaky_seen": report.flaky_seen,
                "problems": report.problems,
            }
            for report in reports
        },
    }
