"""Every configuration error is one line naming the problem, password redacted, exit 2: through the
real ``redis-pipeline`` console script, and where our modules start them, the stock worker CLIs."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shared.embedded import RedisServer, free_port

BIN = Path(sys.executable).parent
CLI = str(BIN / "redis-pipeline")
ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cret"
TASK = ["run", "--task", "tests.user_tasks:simulate", "--args"]


@dataclass(frozen=True)
class Bad:
    """One bad configuration: environment, arguments (``{args}``: a good arguments file, ``{tmp}``:
    a directory), and what the one line must say."""

    env: dict[str, str]
    args: list[str]
    says: list[str] = field(default_factory=list)


BAD = {
    "url-scheme": Bad({"REDIS_URL": f"http://:{SECRET}@x/0"}, ["status"], ["REDIS_URL=", "scheme"]),
    "url-scheme-run": Bad({"REDIS_URL": "http://x"}, ["run", "--grid", "2x2"], ["REDIS_URL=http://x"]),
    "port-range": Bad(
        {"REDIS_URL": f"redis://:{SECRET}@127.0.0.1:99999/0"},
        ["run", "--grid", "2x2"],
        ["REDIS_URL=redis://:***@127.0.0.1:99999/0", "Port out of range"],
    ),
    "port-not-a-number": Bad(
        {"REDIS_URL": f"redis://:{SECRET}@127.0.0.1:abc/0"}, ["status"], ["REDIS_URL=", "'abc'"]
    ),
    "database-not-a-number": Bad(
        {"REDIS_URL": f"redis://:{SECRET}@127.0.0.1:6379/zero"}, ["status"], ["database 'zero'"]
    ),
    "unreachable": Bad({"REDIS_URL": "redis://:{secret}@127.0.0.1:{port}/0"}, ["status"], ["cannot reach"]),
    "celeryconfig-module": Bad(
        {"PIPELINE_CELERYCONFIG": "no_such_celeryconfig"},
        ["run", "--grid", "2x2"],
        ["PIPELINE_CELERYCONFIG", "no_such_celeryconfig"],
    ),
    "celeryconfig-path": Bad(
        {"PIPELINE_CELERYCONFIG": "/nonexistent/celeryconfig.py"}, ["status"], ["no celeryconfig file"]
    ),
    "celeryconfig-raises": Bad(
        {"PIPELINE_CELERYCONFIG": "{tmp}/broken_celeryconfig.py"}, [*TASK, "{args}"], ["ZeroDivisionError"]
    ),
    "backend-option": Bad(
        {}, ["run", "--backend", "nope"], ["'--backend'", "'nope'", "redis-pipeline run --help"]
    ),
    "unknown-command": Bad({}, ["runn"], ["No such command 'runn'"]),
    "backend-env": Bad({"PIPELINE_BACKEND": "bogus"}, [*TASK, "{args}"], ["PIPELINE_BACKEND='bogus'"]),
    "backend-env-grid": Bad({"PIPELINE_BACKEND": "celery"}, ["status"], ["PIPELINE_BACKEND='celery'"]),
    "args-file-missing": Bad({}, [*TASK, "/nonexistent/calls.jsonl"], ["/nonexistent/calls.jsonl"]),
    "args-file-a-directory": Bad({}, [*TASK, "{tmp}"], ["cannot read arguments file", "directory"]),
    "args-file-not-json": Bad({}, [*TASK, "{tmp}/not_json.jsonl"], ["not_json.jsonl:1: not JSON"]),
    "results-url-scheme": Bad(
        {"PIPELINE_RESULTS_URL": f"foo://:{SECRET}@x/y"},
        [*TASK, "{args}"],
        ["PIPELINE_RESULTS_URL=foo://:***@"],
    ),
    "results-url-port": Bad(
        {"PIPELINE_RESULTS_URL": f"redis://:{SECRET}@x:abc/0"}, [*TASK, "{args}"], ["redis://:***@x:abc/0"]
    ),
    "retry-budget": Bad(
        {"PIPELINE_REDIS_RETRY_SECONDS": "soon"}, ["status"], ["PIPELINE_REDIS_RETRY_SECONDS"]
    ),
    "min-replicas": Bad({"PIPELINE_MIN_REPLICAS": "all"}, ["status"], ["PIPELINE_MIN_REPLICAS='all'"]),
    "purge": Bad(
        {"REDIS_URL": f"rediss://:{SECRET}@h:-1/0"}, ["purge", "--backend", "rq", "--yes"], ["Port"]
    ),
    "sentinel-no-service": Bad(
        {"REDIS_URL": f"redis+sentinel://:{SECRET}@127.0.0.1:26379,127.0.0.1:26380/"},
        ["run", "--grid", "2x2"],
        ["REDIS_URL=redis+sentinel://:***@127.0.0.1:26379,127.0.0.1:26380/: no service name"],
    ),
    "sentinel-port": Bad(
        {"REDIS_URL": f"redis+sentinel://:{SECRET}@s1:26379,s2:99999/mymaster/0"},
        ["status"],
        ["REDIS_URL=redis+sentinel://:***@s1:26379,s2:99999/mymaster/0", "sentinel s2: port '99999'"],
    ),
    "sentinel-database": Bad(
        {"REDIS_URL": f"rediss+sentinel://:{SECRET}@s1/mymaster/zero"}, ["status"], ["database 'zero'"]
    ),
    "sentinel-unreachable": Bad(
        {"REDIS_URL": "redis+sentinel://:{secret}@127.0.0.1:{port}/mymaster/0?sentinel_password={secret}"},
        ["status"],
        [
            "cannot reach Redis at redis+sentinel://:***@127.0.0.1:{port}/mymaster/0?sentinel_password=***: "
            "no sentinel answered (127.0.0.1:{port}: Connection refused)"
        ],
    ),
    "sentinel-results-url": Bad(
        {"PIPELINE_RESULTS_URL": f"redis+sentinel://:{SECRET}@s1/"}, [*TASK, "{args}"], ["no service name"]
    ),
}


def _fill(text: str, tmp: Path, args: Path, port: int) -> str:
    return text.format(tmp=tmp, args=args, port=port, secret=SECRET)


@pytest.mark.parametrize("case", BAD.values(), ids=list(BAD))
def test_a_bad_configuration_is_one_line_and_exit_2(
    case: Bad, redis_server: RedisServer, tmp_path: Path
) -> None:
    args_file = tmp_path / "calls.jsonl"
    args_file.write_text("[1, 2.0]\n")
    (tmp_path / "not_json.jsonl").write_text("[1, 2.0\n")
    (tmp_path / "broken_celeryconfig.py").write_text("CELERY_DEFAULT_QUEUE = 1 / 0\n")
    port = free_port()
    # A good Redis unless the case says otherwise: a check that failed to fire runs on ours, not a shared one.
    env = {**os.environ, "REDIS_URL": redis_server.url, "PYTHONPATH": str(ROOT)}
    env.update({k: _fill(v, tmp_path, args_file, port) for k, v in case.env.items()})
    argv = [_fill(a, tmp_path, args_file, port) for a in case.args]
    done = subprocess.run([CLI, *argv], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stderr + done.stdout
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for words in case.says:
        assert _fill(words, tmp_path, args_file, port) in lines[0], lines[0]


def test_help_works_whatever_the_settings() -> None:
    env = {**os.environ, "REDIS_URL": "http://x", "PIPELINE_CELERYCONFIG": "no_such_celeryconfig"}
    done = subprocess.run([CLI, "run", "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--task" in done.stdout, done.stderr


RQ_WORKER = [
    str(BIN / "rq"),
    "worker",
    "--serializer",
    "json",
    "--worker-class",
    "rq_impl.worker.PipelineWorker",
    "--connection-class",
    "shared.connection.ResilientRedis",
    "compute",
]
DRAMATIQ_WORKER = [str(BIN / "dramatiq"), "dramatiq_impl.tasks", "--processes", "1", "--threads", "1"]
WORKER_CASES = {
    "dramatiq-url": (
        DRAMATIQ_WORKER,
        {"REDIS_URL": f"http://:{SECRET}@x/0"},
        "error: REDIS_URL=http://:***@x/0",
    ),
    "dramatiq-celeryconfig": (
        DRAMATIQ_WORKER,
        {"PIPELINE_CELERYCONFIG": "nope_cc"},
        "error: PIPELINE_CELERYCONFIG",
    ),
    "rq-url": (
        RQ_WORKER,
        {"REDIS_URL": f"redis://:{SECRET}@h:abc/0"},
        "error: REDIS_URL=redis://:***@h:abc/0",
    ),
    "rq-url-option": (
        [*RQ_WORKER[:-1], "--url", f"redis://:{SECRET}@h:99999/0", "compute"],
        {},
        "error: bad Redis URL redis://:***@h:99999/0",
    ),
    "rq-celeryconfig": (RQ_WORKER, {"PIPELINE_CELERYCONFIG": "nope_cc"}, "error: PIPELINE_CELERYCONFIG"),
    "rq-url-option-sentinel": (
        [*RQ_WORKER[:-1], "--url", f"redis+sentinel://:{SECRET}@s1/", "compute"],
        {},
        "error: bad Redis URL redis+sentinel://:***@s1/: no service name",
    ),
    "dramatiq-sentinel-url": (
        DRAMATIQ_WORKER,
        {"REDIS_URL": f"redis+sentinel://:{SECRET}@s1:26379/"},
        "error: REDIS_URL=redis+sentinel://:***@s1:26379/: no service name",
    ),
    "rq-sentinel-url": (
        RQ_WORKER,
        {"REDIS_URL": f"redis+sentinel://:{SECRET}@s1:0/mymaster"},
        "error: REDIS_URL=redis+sentinel://:***@s1:0/mymaster: sentinel s1: port '0'",
    ),
    # A result worker opens its store at start (shared.pipeline.prepare_worker).
    "dramatiq-results-url": (
        [*DRAMATIQ_WORKER, "--queues", "result"],
        {"PIPELINE_RESULTS_URL": f"foo://:{SECRET}@x/y"},
        "error: PIPELINE_RESULTS_URL=foo://:***@x/y: unsupported scheme 'foo'",
    ),
    "rq-results-url": (
        [*RQ_WORKER[:-1], "result"],
        {"PIPELINE_RESULTS_URL": f"foo://:{SECRET}@x/y"},
        "error: PIPELINE_RESULTS_URL=foo://:***@x/y: unsupported scheme 'foo'",
    ),
    "dramatiq-min-replicas": (
        DRAMATIQ_WORKER,
        {"PIPELINE_MIN_REPLICAS": "-1"},
        "error: PIPELINE_MIN_REPLICAS='-1': expected a whole number of replicas >= 0",
    ),
    "rq-min-replicas": (RQ_WORKER, {"PIPELINE_MIN_REPLICAS": "one"}, "error: PIPELINE_MIN_REPLICAS='one'"),
    "rq-backend": (
        RQ_WORKER,
        {"PIPELINE_BACKEND": "bogus", "PIPELINE_TASKS": "tests.user_tasks"},
        "error: PIPELINE_BACKEND='bogus'",
    ),
}


@pytest.mark.parametrize("case", WORKER_CASES.values(), ids=list(WORKER_CASES))
def test_a_stock_worker_cli_says_it_in_one_line_too(
    case: tuple[list[str], dict[str, str], str], redis_server: RedisServer
) -> None:
    """Our modules print the line and exit 2; Dramatiq's parent process adds its own two log lines
    (booting up; worker exited with code 2) around it, which are not ours to change."""
    command, extra, line = case
    env = {**os.environ, "REDIS_URL": redis_server.url, "PYTHONPATH": str(ROOT), **extra}
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and SECRET not in done.stderr + done.stdout
    ours = [text for text in done.stderr.splitlines() if "[dramatiq.MainProcess]" not in text]
    assert len(ours) == 1 and ours[0].startswith(line), done.stderr
