"""The worked example of docs/examples runs as its README says: both backends, results in PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.postgres import PostgresServer

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples"
CLI = str(Path(sys.executable).parent / "redis-pipeline")


def test_the_worked_example_as_written(settings: Settings, postgres_server: PostgresServer) -> None:
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "PIPELINE_RESULTS_URL": postgres_server.url,
        "PIPELINE_CELERYCONFIG": "celeryconfig",
    }
    env.pop("PIPELINE_BACKEND", None)
    command = [CLI, "run", "--task", "montecarlo:estimate_pi", "--args", "calls.jsonl"]
    command += ["--check", "montecarlo:close_to_pi"]
    lines = []
    for backend in ("dramatiq", "rq"):
        done = subprocess.run(
            [*command, "--backend", backend, "--replace"],
            cwd=EXAMPLE,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        lines.append(done.stdout.strip())
    assert lines[0].startswith("dramatiq: montecarlo.estimate_pi: 200/200 calls stored once in ")
    assert lines[1].startswith("rq: montecarlo.estimate_pi: 200/200 calls stored once in ")
    again = subprocess.run(command, cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "already holds 200 result(s) of montecarlo.estimate_pi" in again.stderr
    assert "pass --replace" in again.stderr and "***" not in again.stderr.split("holds")[1]
