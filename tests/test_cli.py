"""The ``redis-pipeline`` command as a user runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from shared.embedded import free_port
from shared.settings import Settings

CLI = str(Path(sys.executable).parent / "redis-pipeline")


def run_cli(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_unreachable_redis_is_one_line_naming_the_redacted_url() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    done = run_cli("run", "--grid", "2x2", env={**os.environ, "REDIS_URL": url})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: cannot reach Redis at ")
    assert url.replace("hunter2", "***") in lines[0]
    assert "hunter2" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_bad_grid_is_refused() -> None:
    done = run_cli("run", "--grid", "fifty", env=dict(os.environ))
    assert done.returncode == 2
    assert "grid must look like 50x50" in done.stderr


def test_bad_chunk_size_is_refused() -> None:
    done = run_cli("run", "--chunk-size", "0", env=dict(os.environ))
    assert done.returncode == 2
    assert "--chunk-size" in done.stderr and "0 is not in the range" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode", [[], ["--chunked"], ["--chunk-size", "5"]], ids=["per-point", "chunked", "k5"]
)
def test_run_both_backends_prints_one_line_each(
    mode: list[str], settings: Settings, client: redis.Redis
) -> None:
    env = {**os.environ, "REDIS_URL": settings.redis_url}  # flushed by ``client``: ours alone
    done = run_cli("run", "--backend", "both", "--grid", "3x4", *mode, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["dramatiq", "rq"]
    for line in lines:
        assert " 12/12 results verified in " in line and line.endswith(" tasks/s)")


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare(1)")
def test_embedded_redis_when_nothing_answers() -> None:
    """Without REDIS_URL the CLI starts its own Redis (here in a fresh network namespace, where
    nothing answers on 127.0.0.1:6379 either)."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    script = f"ip link set lo up && exec {CLI} run --backend dramatiq --grid 3x3 --compute-workers 1"
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", script], env=env, capture_output=True, text=True, timeout=180
    )
    if "unshare failed" in done.stderr or "Operation not permitted" in done.stderr:
        pytest.skip(f"cannot create a network namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("Redis: private redis-server at redis://127.0.0.1:")
    assert done.stdout.startswith("dramatiq: 9/9 results verified in ")
