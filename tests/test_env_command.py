"""``redis-pipeline env``: its output as a shell and a systemd EnvironmentFile read it, and the plain
worker commands (``rq worker compute result``, ``dramatiq dramatiq_impl.tasks``) running our path
under it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from shared.backend import load_backend
from shared.commands import stock_cli
from shared.settings import Settings
from shared.tasks import Grid
from shared.workers import WorkerGroup
from tests.helpers import wait_until

CLI = str(Path(sys.executable).parent / "redis-pipeline")
#: A password with every character a shell or systemd would otherwise read: printed as it is.
AWKWARD_URL = "redis://:p'a$s`w\"d\\1@127.0.0.1:6390/0"
GRID = Grid(4, 5)


def printed(backend: str, form: str = "shell", **settings: str) -> str:
    """What ``redis-pipeline env`` prints, with ``settings`` as its only settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "RQ_", "REDIS_URL"))}
    done = subprocess.run(
        [CLI, "env", "--backend", backend, "--format", form],
        env={**env, **settings},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def bash_env(script: str, text: str, cwd: Path | None = None) -> dict[str, str]:
    """The environment bash has after ``script`` (given the output as ``$1``), without ours."""
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    done = subprocess.run(
        ["bash", "-c", f"{script} && env -0", "_", text], env=base, capture_output=True, cwd=cwd, check=True
    )
    pairs = (item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)
    return {k: v for k, v in pairs if k not in ("PWD", "SHLVL", "_", "OLDPWD")}


def systemd_values(text: str) -> dict[str, str]:
    """An EnvironmentFile read by systemd.exec(5)'s rules for what ``env`` writes: comment lines;
    ``NAME='verbatim'``; ``NAME="..."`` where a backslash keeps the next of ``\\ " $ ``` as is."""
    values = {}
    for line in text.splitlines():
        if not line or line.startswith(("#", ";")):
            continue
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=('([^']*)'|\"((?:[^\"\\]|\\.)*)\")", line)
        assert match, f"not a quoted NAME=value line: {line!r}"
        name, _, single, double = match.groups()
        if single is None:
            assert re.fullmatch(r"(?:[^\"\\]|\\[\"\\$`])*", double), line  # only escapes systemd reads back
            single = re.sub(r"\\(.)", r"\1", double)
        values[name] = single
    return values


def test_shell_output_evaluates_to_the_settings_and_rq_classes() -> None:
    text = printed("rq", REDIS_URL=AWKWARD_URL, PIPELINE_TASKS="myproj.tasks")
    env = bash_env('eval "$1"', text)
    assert env["REDIS_URL"] == AWKWARD_URL
    assert env["PIPELINE_TASKS"] == "myproj.tasks"
    assert env["PIPELINE_BACKEND"] == "rq"
    assert env["RQ_WORKER_CLASS"] == "rq_impl.worker.PipelineWorker"
    assert env["RQ_CONNECTION_CLASS"] == "shared.connection.ResilientRedis"
    # Unset settings are not invented; REDIS_URL is always there (its default when unset).
    plain = bash_env('eval "$1"', printed("dramatiq"))
    assert plain["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert plain["PIPELINE_BACKEND"] == "dramatiq"
    assert not {"PIPELINE_TASKS", "RQ_WORKER_CLASS", "RQ_CONNECTION_CLASS"} & plain.keys()


@pytest.mark.parametrize("backend", ["rq", "dramatiq"])
def test_systemd_output_is_an_environment_file(backend: str, tmp_path: Path) -> None:
    shell = bash_env('eval "$1"', printed(backend, REDIS_URL=AWKWARD_URL, PIPELINE_REDIS_RETRY_SECONDS="5"))
    text = printed(backend, "systemd", REDIS_URL=AWKWARD_URL, PIPELINE_REDIS_RETRY_SECONDS="5")
    assert "export" not in text
    values = systemd_values(text)
    assert values["REDIS_URL"] == AWKWARD_URL
    assert values == {k: v for k, v in shell.items() if k in values}  # the same settings as for a shell
    assert set(values) == set(shell) - {"PATH", "HOME"}
    # The same file also sources in a POSIX shell (set -a exports what it assigns).
    env_file = tmp_path / "pipeline.env"
    env_file.write_text(text)
    assert bash_env(f"set -a && . {env_file}", "") == shell


def worker_env(backend: str, settings: Settings, tmp_path: Path) -> dict[str, str]:
    """A shell's environment after ``eval "$(redis-pipeline env --backend ...)"``."""
    return bash_env('eval "$1"', printed(backend, REDIS_URL=settings.redis_url), cwd=tmp_path)


def stored_grid(
    backend_name: str, settings: Settings, command: list[str], env: dict[str, str], logs: Path
) -> str:
    """Start ``command`` (a plain stock CLI) under ``env``, submit ``GRID``, check every point is
    stored once; returns the worker's log."""
    backend = load_backend(backend_name, settings)
    since = time.time() - 1
    with WorkerGroup(env, logs) as group:
        worker = group.start(backend_name, command)
        live = wait_until(lambda: backend.live_workers(since) >= 1 or bool(group.dead()), timeout=60)
        assert live and not group.dead(), worker.tail()
        assert backend.submit_many(GRID.points()) == GRID.size
        done = wait_until(lambda: backend.store.count() >= GRID.size or bool(group.dead()), timeout=120)
        assert done and not group.dead(), worker.tail()
        report = backend.store.verify(GRID)
        assert report.ok and not report.redelivered, report.problems()
    return worker.log.read_text(errors="replace")


@pytest.mark.slow
@pytest.mark.parametrize("flags", [[], ["--serializer", "pickle"]], ids=["plain", "serializer-pickle"])
def test_plain_rq_worker_under_env_stores_the_grid(
    flags: list[str], settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    env = worker_env("rq", settings, tmp_path)
    command = [stock_cli("rq"), "worker", *flags, "compute", "result"]
    log = stored_grid("rq", settings, command, env, tmp_path / "logs")
    ignored = "runs JSON jobs only; serializer pickle ignored"
    assert (ignored in log) == bool(flags), log
    assert "DeserializationError" not in log


@pytest.mark.slow
def test_the_plain_rq_worker_under_env_is_ours(
    settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    """Our worker class runs only the pipeline's functions: a JSON job naming ``os.getpid`` (which
    RQ's own worker would run) fails with ``FunctionNotAllowed``."""
    env = worker_env("rq", settings, tmp_path)
    with WorkerGroup(env, tmp_path / "logs") as group:
        worker = group.start("rq", [stock_cli("rq"), "worker", "compute"])
        job = Queue("compute", connection=client, serializer=JSONSerializer).enqueue("os.getpid")
        fetch = lambda: Job.fetch(job.id, connection=client, serializer=JSONSerializer)  # noqa: E731
        failed = wait_until(
            lambda: fetch().get_status() == JobStatus.FAILED or bool(group.dead()), timeout=60
        )
        assert failed and not group.dead(), worker.tail()
    result = fetch().latest_result()
    assert result is not None and "FunctionNotAllowed" in (result.exc_string or "")


@pytest.mark.slow
def test_plain_rq_worker_without_env_cannot_run_our_jobs(
    settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    """Before ``redis-pipeline env``: RQ's own worker reads our JSON jobs as pickles."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "RQ_"))}
    env["REDIS_URL"] = settings.redis_url
    backend = load_backend("rq", settings)
    with WorkerGroup(env, tmp_path / "logs") as group:
        worker = group.start("rq", [stock_cli("rq"), "worker", "compute"])
        backend.submit(6, 7)
        failed = Queue("compute", connection=client).failed_job_registry
        assert wait_until(lambda: failed.count == 1 or bool(group.dead()), timeout=60), worker.tail()
    assert backend.store.count() == 0
    assert "DeserializationError" in worker.log.read_text(errors="replace")


@pytest.mark.slow
def test_plain_dramatiq_under_env_stores_the_grid(
    settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    env = worker_env("dramatiq", settings, tmp_path)
    stored_grid("dramatiq", settings, [stock_cli("dramatiq"), "dramatiq_impl.tasks"], env, tmp_path / "logs")
