"""AUTH and TLS end to end: workers started with the stock CLIs reach a password-protected and a
TLS-only Redis through REDIS_URL alone, and the password never shows in output or logs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.backend import load_backend
from shared.embedded import private_redis
from shared.runner import run_grid
from shared.settings import Settings
from shared.tasks import Grid

pytestmark = pytest.mark.slow

PASSWORD = "s3cret-Pa55"
CLI = str(Path(sys.executable).parent / "redis-pipeline")


def _run_both(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    for name in ("dramatiq", "rq"):
        result = run_grid(
            load_backend(name, Settings(url)), Grid(3, 4), compute_workers=1, log_dir=tmp_path / name
        )
        assert result.ok, result.summary()
        assert PASSWORD not in result.summary()
    for log in tmp_path.rglob("*.log"):
        assert PASSWORD not in log.read_text(errors="replace"), log


def test_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with private_redis(password=PASSWORD) as server:
        _run_both(server.url, tmp_path, monkeypatch)
        env = {**os.environ, "REDIS_URL": server.url}
        done = subprocess.run(
            [CLI, "run", "--grid", "2x2"], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert PASSWORD not in done.stdout + done.stderr
        wrong = server.url.replace(PASSWORD, "not-the-password")
        done = subprocess.run([CLI, "run"], env={**env, "REDIS_URL": wrong}, capture_output=True, text=True)
        assert done.returncode == 2
        assert done.stderr.startswith("error: cannot reach Redis at redis://:***@127.0.0.1:")
        assert "not-the-password" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")
def test_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        server_cm = private_redis(password=PASSWORD, tls=True)
        server = server_cm.__enter__()
    except RuntimeError as exc:
        pytest.skip(f"this redis-server cannot serve TLS: {exc}")
    try:
        assert server.url.startswith("rediss://")
        _run_both(server.url, tmp_path, monkeypatch)
    finally:
        server_cm.__exit__(None, None, None)
