"""pytest plugin (``-p compat_record``): the options every compat run takes, and each test's
outcome written as it happens.

The harness (``tests.compat.run``) starts their suite with ``--compat-side``, ``--compat-redis-url``
and ``--compat-record FILE``; the suite's own plugin (``compat_dramatiq``, ``compat_rq``) reads
the first two. Outcomes go to FILE one JSON line per test phase, flushed at once, rather than in
a report written at the end: a test that kills the test process (RQ's tests SIGKILL a work
horse's pid, which is the test process itself for an in-process worker) still leaves every
outcome before it, and the harness names the test that was running.
"""

from __future__ import annotations

import json
from typing import IO, Any

import pytest

SIDES = ("stock", "ours")
_out: dict[str, IO[str]] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("compat", "their suite against our broker or worker (tests/compat)")
    group.addoption("--compat-side", choices=SIDES, default="stock", help="whose broker/worker the tests get")
    group.addoption("--compat-redis-url", default=None, help="the run's private redis-server")
    group.addoption("--compat-record", default=None, help="write each test phase's outcome here (JSON lines)")


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--compat-record")
    if path:
        _out["file"] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole session


def pytest_unconfigure(config: pytest.Config) -> None:
    if (file := _out.pop("file", None)) is not None:
        file.close()


def _write(record: dict[str, Any]) -> None:
    if (file := _out.get("file")) is not None:
        file.write(json.dumps(record) + "\n")
        file.flush()


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _write({"nodeid": nodeid, "when": "start"})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    message = ""
    if report.failed or report.skipped:
        crash = getattr(report.longrepr, "reprcrash", None)
        if crash is not None:
            message = str(crash.message)
        elif isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
            message = str(report.longrepr[-1])
        else:
            message = str(report.longrepr)
    _write(
        {
            "nodeid": report.nodeid,
            "when": report.when,
            "outcome": report.outcome,
            "xfail": hasattr(report, "wasxfail"),
            "message": message.strip().splitlines()[0][:300] if message.strip() else "",
            "duration": round(report.duration, 3),
        }
    )


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """A file that fails to import: recorded under the file's id, so its tests count as failed."""
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        message = str(crash.message if crash is not None else report.longrepr).strip()
        line = message.splitlines()[-1][:300] if message else ""
        _write({"nodeid": report.nodeid, "when": "collect", "outcome": "failed", "message": line})


def pytest_deselected(items: list[pytest.Item]) -> None:
    for item in items:
        _write({"nodeid": item.nodeid, "when": "deselected"})
