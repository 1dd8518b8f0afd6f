"""make compat's bookkeeping (tests/compat): outcomes read from compat_record's lines, and the
comparison of stock with ours against the expected-differences file. No suite runs here: make
compat itself runs Dramatiq's and RQ's suites (minutes, and a download)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.compat.outcomes import DIED, FAILED, PASSED, SKIPPED, Run, read_run
from tests.compat.report import Expected, compare, differences_text, load_expected, table
from tests.compat.suites import SUITES

A, B, C = "tests/test_a.py::test_a", "tests/test_a.py::test_b", "tests/test_b.py::TestX::test_c"


def lines(*records: dict[str, Any]) -> list[str]:
    return [json.dumps(record) for record in records]


def phases(nodeid: str, call: str = "passed", message: str = "") -> list[dict[str, Any]]:
    """A test's records as compat_record writes them: start, setup, call, teardown."""
    return [
        {"nodeid": nodeid, "when": "start"},
        {"nodeid": nodeid, "when": "setup", "outcome": "passed", "message": ""},
        {"nodeid": nodeid, "when": "call", "outcome": call, "message": message},
        {"nodeid": nodeid, "when": "teardown", "outcome": "passed", "message": ""},
    ]


def run_of(**outcomes: str) -> Run:
    """A run where each keyword (A, B or C's name) has that outcome."""
    ids = {"a": A, "b": B, "c": C}
    records = [r for key, outcome in outcomes.items() for r in phases(ids[key], outcome, f"{key} {outcome}")]
    return read_run(lines(*records))


def test_outcomes_of_each_phase() -> None:
    errored = [
        {"nodeid": C, "when": "start"},
        {"nodeid": C, "when": "setup", "outcome": "failed", "message": "fixture broke"},
        {"nodeid": C, "when": "teardown", "outcome": "passed", "message": ""},
    ]
    run = read_run(lines(*phases(A), *phases(B, "skipped", "Slow tests disabled"), *errored))
    assert run.outcomes == {A: PASSED, B: SKIPPED, C: FAILED}
    assert run.messages[C] == "setup: fixture broke"
    assert run.died_in is None


def test_a_subtest_failure_fails_its_test() -> None:
    subtest = {"nodeid": A, "when": "call", "outcome": "failed", "message": "subtest 2"}
    records = phases(A)
    run = read_run(lines(*records[:3], subtest, records[3]))
    assert run.outcomes[A] == FAILED


def test_a_test_that_never_finished_died_with_its_process() -> None:
    started = [{"nodeid": B, "when": "start"}, {"nodeid": B, "when": "setup", "outcome": "passed"}]
    run = read_run(lines(*phases(A), *started))
    assert run.outcomes == {A: PASSED, B: DIED}
    assert run.died_in == B


def test_a_file_that_fails_to_import_counts_as_failed() -> None:
    broken = {"nodeid": "tests/test_b.py", "when": "collect", "outcome": "failed", "message": "ImportError"}
    run = read_run(lines(*phases(A), broken))
    assert run.outcomes == {A: PASSED, "tests/test_b.py": FAILED}
    assert run.died_in is None


def test_listed_differences_pass_and_unlisted_ones_fail() -> None:
    expected = Expected(differences={B: "ours acks differently"})
    report = compare("x", "1.0", run_of(a="passed", b="passed"), [run_of(a="passed", b="failed")], expected)
    assert [(d.nodeid, d.stock, d.ours, d.reason) for d in report.differences] == [
        (B, PASSED, FAILED, "ours acks differently")
    ]
    assert report.problems == []

    report = compare("x", "1.0", run_of(a="passed", b="passed"), [run_of(a="failed", b="failed")], expected)
    assert report.problems == [f"x: unexpected difference {A} (stock passed, ours failed)"]
    # Ours passing where stock failed (a stock flake) is listed, not a problem.
    better = compare("x", "1.0", run_of(a="failed", b="passed"), [run_of(a="passed", b="failed")], expected)
    assert better.problems == [] and [d.nodeid for d in better.differences] == [A, B]
    assert "no feature lost" in differences_text([better])


def test_a_listed_difference_that_no_longer_differs_fails() -> None:
    expected = Expected(differences={B: "fixed since"}, not_run_on_ours={C: "kills the run"})
    stock = run_of(a="passed", b="passed")
    report = compare("x", "1.0", stock, [run_of(a="passed", b="passed")], expected)
    assert report.problems == [
        f"x: listed difference no longer differs (passed): {B}",
        f"x: listed test is not in the suite any more: {C}",
    ]


def test_flaky_tests_are_left_out_and_unstable_ones_fail() -> None:
    stock = run_of(a="passed", b="passed")
    ours = [run_of(a="passed", b="failed"), run_of(a="failed", b="passed")]
    report = compare("x", "1.0", stock, ours, Expected(flaky={B: "races its patch"}))
    assert report.flaky_seen == {B: [PASSED, FAILED, PASSED]}
    assert report.problems == [f"x: {A} changed outcome between our runs ['passed', 'failed']"]


def test_a_death_is_one_problem_not_one_per_unreached_test() -> None:
    stock = run_of(a="passed", b="passed", c="passed")
    dead = read_run(lines(*phases(A), {"nodeid": B, "when": "start"}))
    report = compare("x", "1.0", stock, [dead], Expected())
    assert report.problems == [
        f"x ours: the test process died during {B}",
        "x: 1 test(s) not reached after a test process died",
    ]


def test_table_counts_per_file_with_a_total() -> None:
    expected = Expected(differences={B: "why"}, not_run_on_ours={C: "why not"})
    stock = run_of(a="passed", b="passed", c="passed")
    ours = read_run(lines(*phases(A), *phases(B, "failed"), {"nodeid": C, "when": "deselected"}))
    rows = table([compare("x", "1.0", stock, [ours], expected)]).splitlines()
    assert rows[2] == "| x | tests/test_a.py | 2 | 0 | 0 | 1 | 1 | 0 | 0 | 1 |"
    assert rows[3] == "| x | tests/test_b.py | 1 | 0 | 0 | 0 | 0 | 1 | 1 | 0 |"
    assert rows[4] == "| x | **total** (x 1.0) | 3 | 0 | 0 | 1 | 1 | 1 | 1 | 1 |"


def test_the_checked_in_expected_file_reads_and_names_known_suites(tmp_path: Path) -> None:
    expected = load_expected(Path(__file__).parent / "compat" / "expected_differences.toml")
    assert set(expected) <= set(SUITES)
    for part in expected.values():
        for reason in [*part.differences.values(), *part.not_run_on_ours.values(), *part.flaky.values()]:
            assert reason.strip()
    typo = tmp_path / "expected.toml"
    typo.write_text('[rq.differnces]\n"t" = "r"\n')
    with pytest.raises(ValueError, match="unknown tables"):
        load_expected(typo)
