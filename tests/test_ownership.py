"""``redis-pipeline run`` (what ``make demo`` runs) on a Redis that another application uses.

The other application's keys (an RQ app's jobs on ``default`` / ``compute`` / ``result``,
Dramatiq messages on the same names, dead letters, unrelated strings and hashes with and without
TTLs) are written to a private redis-server, and compared byte for byte (``DUMP``) and by TTL
presence after each run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from shared.embedded import RedisServer, private_redis

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).parent / "redis-pipeline")
#: Foreign RQ jobs per queue, as the refusal must report them.
RQ_JOBS = {"default": 3, "compute": 2, "result": 1}
DRAMATIQ_MESSAGES = {"default": 2, "compute": 1, "result": 4}
UNRELATED = ["otherapp:session:42", "otherapp:cache", "otherapp:counter", "otherapp:members"]

Snapshot = dict[bytes, tuple[bytes | None, bool]]


@pytest.fixture
def foreign() -> Iterator[tuple[RedisServer, redis.Redis]]:
    """A private redis-server holding another application's keys only."""
    with private_redis() as server:
        client = redis.Redis.from_url(server.url)
        fill_foreign(client)
        yield server, client
        client.close()


def fill_foreign(client: redis.Redis) -> None:
    for name, count in RQ_JOBS.items():
        q = Queue(name, connection=client, serializer=JSONSerializer)
        for i in range(count):
            q.enqueue_call("otherapp.jobs.send_mail", args=(f"user{i}@example.com",))
    client.zadd("rq:failed:default", {"otherapp-failed-job": time.time() + 86_400})
    for name, count in DRAMATIQ_MESSAGES.items():
        for i in range(count):
            body = json.dumps({"queue_name": name, "actor_name": "otherapp_task", "args": [i]})
            client.hset(f"dramatiq:{name}.msgs", f"{name}-{i}", body)
            client.rpush(f"dramatiq:{name}", f"{name}-{i}")
    client.zadd("dramatiq:default.XQ", {"otherapp-dead": time.time() * 1000})
    client.hset("dramatiq:default.XQ.msgs", "otherapp-dead", "{}")
    client.set("otherapp:session:42", "token", ex=3600)
    client.hset("otherapp:cache", mapping={"a": "1", "b": "2"})
    client.expire("otherapp:cache", 7200)
    client.set("otherapp:counter", 17)
    client.sadd("otherapp:members", "x", "y")


def snapshot(client: redis.Redis) -> Snapshot:
    """Every key: its serialized value (``DUMP``: type and content) and whether it has a TTL."""
    return {k: (client.dump(k), client.pttl(k) >= 0) for k in client.scan_iter(count=1000)}  # type: ignore[misc]


def run(*args: str, url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    if url is not None:
        env["REDIS_URL"] = url
    command = [CLI, "run", "--backend", "both", "--grid", "3x4", "--compute-workers", "1", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)


def test_a_shared_redis_with_foreign_queues_is_refused_and_left_as_it_was(
    foreign: tuple[RedisServer, redis.Redis],
) -> None:
    server, client = foreign
    before = snapshot(client)
    done = run(url=server.url)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0] == f"Redis: {server.url} (shared, from REDIS_URL)"
    expected = [f"dramatiq queue {q!r} holds {n} message(s)" for q, n in DRAMATIQ_MESSAGES.items()]
    expected += [f"rq queue {q!r} holds {n} job(s)" for q, n in RQ_JOBS.items()]
    assert [line.removeprefix("error: ") for line in lines[1:]] == [
        f"refusing to run: {f} (not this run's); pass --purge to empty them first" for f in expected
    ]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert snapshot(client) == before


def test_without_redis_url_the_run_uses_a_private_server_and_touches_no_other(
    foreign: tuple[RedisServer, redis.Redis],
) -> None:
    server, client = foreign
    before = snapshot(client)
    done = run(url=None)
    assert done.returncode == 0, done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith("Redis: private redis-server at redis://127.0.0.1:"), first
    assert first.endswith(" (started for this run, removed after)")
    port = int(first.split("127.0.0.1:")[1].split("/")[0])
    assert port not in (6379, server.port)
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == ["dramatiq", "rq"]
    assert snapshot(client) == before


def test_purge_empties_only_the_queues_it_reports(foreign: tuple[RedisServer, redis.Redis]) -> None:
    server, client = foreign
    before = snapshot(client)
    done = run("--purge", url=server.url)
    assert done.returncode == 0, done.stderr
    assert " 12/12 results verified in " in done.stdout
    for name in RQ_JOBS:
        assert client.llen(f"rq:queue:{name}") == 0
    for name in DRAMATIQ_MESSAGES:
        assert client.llen(f"dramatiq:{name}") == 0
        assert client.hlen(f"dramatiq:{name}.msgs") == 0
    after = snapshot(client)
    untouched = [k.encode() for k in UNRELATED] + [
        b"rq:failed:default",
        b"dramatiq:default.XQ",
        b"dramatiq:default.XQ.msgs",
        b"rq:queues",
    ]
    for key in untouched:
        assert after[key] == before[key], key
    assert not [k for k in after if k.startswith(b"pipeline:")]  # the run's own results: removed


@pytest.mark.parametrize("keep", [False, True], ids=["default", "keep"])
def test_a_run_leaves_no_key_of_its_own_without_a_ttl(keep: bool) -> None:
    with private_redis() as server:
        client = redis.Redis.from_url(server.url)
        done = run(*(["--keep"] if keep else []), url=server.url)
        assert done.returncode == 0, done.stderr
        left = snapshot(client)
        results = {b"pipeline:dramatiq:results", b"pipeline:rq:results"}
        lasting = {k for k, (_, has_ttl) in left.items() if not has_ttl}
        if keep:
            assert results <= lasting
            assert all(client.hlen(k) == 12 for k in results)
            lasting -= results | {b"pipeline:dramatiq:deliveries", b"pipeline:rq:deliveries"}
        assert lasting == set()
        again = run(url=server.url)  # nothing of the first run stands in the way of the next
        assert (again.returncode == 0) != keep, again.stderr
        client.close()


def test_the_suite_given_a_shared_redis_url_runs_on_a_server_of_its_own(
    foreign: tuple[RedisServer, redis.Redis],
) -> None:
    """``make test`` run by a developer whose ``REDIS_URL`` names a shared Redis: the suite's own
    ``conftest`` replaces it with a private server before any module binds a client, so tests that
    start real workers of both backends, run the CLI and purge and requeue through it leave that
    Redis as it was."""
    server, client = foreign
    before = snapshot(client)
    sample = ["tests/test_cli.py", "tests/test_dead.py"]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *sample]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "REDIS_URL": server.url}
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout.splitlines()[-1]
    assert snapshot(client) == before
