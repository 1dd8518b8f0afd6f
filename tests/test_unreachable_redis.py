"""A producer against a Redis that does not answer: one warning naming the URL and the retry budget
at the first failed attempt, then RedisUnavailable (a redis.ConnectionError) when the budget ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from shared.connection import RETRY_SECONDS_ENV
from shared.embedded import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cret"

#: What a user's program does: import a task, send one call.
SUBMIT = {
    "dramatiq-send": ("dramatiq", "from dramatiq_impl.tasks import compute; compute.send(6, 7)"),
    "rq-delay": ("rq", "from rq_impl.tasks import compute; compute.delay(6, 7)"),
    "task-submit-dramatiq": ("dramatiq", "from tests.user_tasks import simulate; simulate.submit(1, 2.0)"),
    "task-submit-rq": ("rq", "from tests.user_tasks import simulate; simulate.submit(1, 2.0)"),
}

PROGRAM = """
import sys
import redis
from shared.connection import RedisUnavailable
try:
    {submit}
except RedisUnavailable as exc:
    assert isinstance(exc, redis.ConnectionError)
    print(f"gave up: {{exc}}")
else:
    sys.exit("sent to a Redis that does not listen")
"""


def submit_in_subprocess(submit: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``PROGRAM`` around ``submit``; the timeout only stops a hang (no speed is measured)."""
    return subprocess.run(
        [sys.executable, "-c", PROGRAM.format(submit=submit)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("case", SUBMIT.values(), ids=list(SUBMIT))
def test_a_producer_warns_once_then_gives_up_clearly(case: tuple[str, str]) -> None:
    backend, submit = case
    port = free_port()  # nothing listens there
    env = {
        **os.environ,
        "REDIS_URL": f"redis://:{SECRET}@127.0.0.1:{port}/0",
        "PIPELINE_BACKEND": backend,
        RETRY_SECONDS_ENV: "2",
        "PYTHONPATH": str(ROOT),
    }
    done = submit_in_subprocess(submit, env)
    url = f"redis://:***@127.0.0.1:{port}/0"
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"gave up: Redis {url} unreachable for 2 s: Connection refused"
    warnings = [line for line in done.stderr.splitlines() if "unreachable" in line]
    assert warnings == [f"Redis {url} unreachable (Connection refused); retrying for up to 2 s"], done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_a_zero_budget_fails_at_the_first_refusal_without_a_warning() -> None:
    port = free_port()
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{port}/0", RETRY_SECONDS_ENV: "0"}
    submit = "from rq_impl.tasks import compute; compute.delay(6, 7)"
    done = submit_in_subprocess(submit, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"gave up: Redis redis://127.0.0.1:{port}/0 unreachable: Connection refused"
    assert "retrying" not in done.stderr


def test_a_producer_waits_for_a_redis_that_starts_within_the_budget(tmp_path: Path) -> None:
    """The warning is the cue: Redis starts after it, and the call goes through, queued once."""
    server = RedisServer(tmp_path)  # its port is free until start()
    env = {**os.environ, "REDIS_URL": server.url, RETRY_SECONDS_ENV: "120", "PYTHONPATH": str(ROOT)}
    submit = "from dramatiq_impl.tasks import compute; compute.send(6, 7); print('sent')"
    with subprocess.Popen(
        [sys.executable, "-c", submit],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as producer:
        assert producer.stderr is not None
        first = producer.stderr.readline()
        assert "unreachable (Connection refused); retrying for up to 120 s" in first, first
        server.start()
        try:
            out, err = producer.communicate(timeout=120)
            assert producer.returncode == 0 and out.strip() == "sent", err
            assert "unreachable" not in err  # one warning for the outage, no give-up
            client = redis.Redis.from_url(server.url)
            assert client.llen("dramatiq:compute") == 1
            client.close()
        finally:
            server.stop()
