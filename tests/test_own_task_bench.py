"""``python -m benchmarks run --task MODULE:FUNCTION --args FILE``: a user's task through the
harness on our four stacks, verified call by call, its report beside the grid's (latest.json
untouched), and a wrong value a FAILED run, never a throughput."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import user_tasks

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def never_right(value: float, seed: int, scale: float) -> bool:
    """A ``--check`` that refuses every value: the run must fail verification."""
    return False


def right(value: float, seed: int, scale: float) -> bool:
    return value == user_tasks.simulate(seed, scale)


def bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict | None]:
    calls = tmp_path / "calls.jsonl"
    calls.write_text("".join(f"[{i}, 0.5]\n" for i in range(40)) + '{"seed": 3, "scale": 0.5}\n')
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # a private redis-server
    command = [sys.executable, "-m", "benchmarks", "run", "--profile", "smoke", "--out", str(tmp_path)]
    command += ["--task", "tests.user_tasks:simulate", "--args", str(calls), *args]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    runs = sorted(tmp_path.glob("*-task/results.json"))
    return done, json.loads(runs[-1].read_text()) if runs else None


def test_a_users_task_runs_on_our_four_stacks_verified(tmp_path: Path) -> None:
    done, doc = bench(tmp_path, "--check", "tests.test_own_task_bench:right")
    assert done.returncode == 0, done.stderr[-3000:]
    assert doc is not None and not (tmp_path / "latest.json").exists()
    ran = {(r["stack"], r["profile"]) for r in doc["runs"] if r["workload"] == "task"}
    assert ran == {(p, m) for p in ("dramatiq", "rq") for m in ("own-task", "own-task-chunked")}
    for run in doc["runs"]:
        # 41 lines, 40 distinct calls: {"seed": 3, ...} is [3, 0.5] again, stored once
        assert run["tasks"] == 40 and run["verified"] and run["status"] == "ok", run


def test_a_wrong_value_fails_the_run(tmp_path: Path) -> None:
    done, doc = bench(tmp_path, "--check", "tests.test_own_task_bench:never_right", "--stack", "rq own-task")
    assert done.returncode == 1, done.stderr[-3000:]
    assert doc is not None
    (row,) = [r for r in doc["summary"] if r["workload"] == "task"]
    assert row["status"].startswith("FAILED"), row


def test_a_bad_task_is_one_line(tmp_path: Path) -> None:
    done, _ = bench(tmp_path, "--task", "tests.user_tasks:nothing_here")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "nothing_here" in done.stderr
