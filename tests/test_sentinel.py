"""``REDIS_URL=redis+sentinel://…`` everywhere: the URL's parts, and against a private master, replica
and three sentinels (``tests.sentinel_cluster``) the ops commands, ``run``, and the submitter with
both stock-CLI workers (started under ``redis-pipeline env``) going on through a switchover."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis
from redis.sentinel import SentinelConnectionPool

from shared.backend import load_backend
from shared.commands import stock_cli
from shared.connection import RETRY_SECONDS_ENV, RedisUnavailable, ResilientRedis
from shared.embedded import RedisServer
from shared.sentinel import FailoverConnection, FailoverSSLConnection, parse
from shared.settings import Settings, redact_url
from shared.tasks import Grid
from shared.workers import WorkerGroup
from tests.helpers import wait_until
from tests.sentinel_cluster import SERVICE, SentinelCluster, sentinel_cluster
from tests.test_env_command import worker_env

CLI = str(Path(sys.executable).parent / "redis-pipeline")
ROOT = Path(__file__).resolve().parent.parent


def test_the_url_names_sentinels_service_database_and_passwords() -> None:
    url = "redis+sentinel://u:p%40ss@s1:26380,s2,[::1]:26381/mymaster/3?sentinel_password=sp&socket_timeout=4"
    found = parse(url)
    assert found.sentinels == (("s1", 26380), ("s2", 26379), ("::1", 26381))
    assert found.service == "mymaster"
    assert {k: found.master[k] for k in ("db", "username", "password", "socket_timeout")} == {
        "db": 3,
        "username": "u",
        "password": "p@ss",
        "socket_timeout": 4.0,
    }
    assert found.master["connection_class"] is FailoverConnection
    assert found.sentinel == {"password": "sp"}  # the master's AUTH is not the sentinels'
    assert redact_url(url) == (
        "redis+sentinel://u:***@s1:26380,s2,[::1]:26381/mymaster/3?sentinel_password=***&socket_timeout=4"
    )
    tls = parse("rediss+sentinel://s1/m?ssl_ca_certs=/ca.pem")
    assert (tls.master["db"], tls.master["connection_class"]) == (0, FailoverSSLConnection)
    assert tls.sentinel == {"ssl": True, "ssl_ca_certs": "/ca.pem"}  # TLS to the sentinels too


@pytest.fixture(scope="module")
def cluster() -> Iterator[SentinelCluster]:
    with sentinel_cluster() as found:
        yield found


@pytest.fixture
def settings(cluster: SentinelCluster) -> Settings:
    """The cluster's URL, its data flushed (through the sentinels: on whichever is master now)."""
    client = ResilientRedis.from_url(cluster.url)
    client.flushall()
    client.close()
    return Settings(cluster.url)


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": settings.redis_url, "PYTHONPATH": str(ROOT)}
    return subprocess.run([CLI, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_ops_commands_and_run_through_the_sentinels(settings: Settings, tmp_path: Path) -> None:
    for name in ("dramatiq", "rq"):
        load_backend(name, settings).submit_many([(1, 2), (3, 4), (5, 6)])
    status = cli(settings, "status", "--json")
    assert status.returncode == 0, status.stderr
    depths = {
        name: {q["name"]: q["depth"] for q in s["queues"]} for name, s in json.loads(status.stdout).items()
    }
    assert depths["dramatiq"]["compute"] == depths["rq"]["compute"] == 3
    for name in ("dramatiq", "rq"):
        assert cli(settings, "dead", "--backend", name).returncode == 0
        requeued = cli(settings, "requeue", "--backend", name, "--all")
        assert requeued.stdout.strip() == f"{name}: requeued 0", requeued.stderr
        purged = cli(settings, "purge", "--backend", name, "--yes")
        assert f"{name}: compute: dropped 3" in purged.stdout, purged.stderr
    done = cli(settings, "run", "--grid", "2x3", "--log-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "dramatiq: 6/6 results verified" in done.stdout and "rq: 6/6 results verified" in done.stdout
    assert "(shared, from REDIS_URL)" in done.stderr and f"/{SERVICE}/0" in done.stderr


@pytest.mark.slow
def test_the_plain_rq_cli_takes_the_url_under_env(settings: Settings, tmp_path: Path) -> None:
    """``redis-pipeline env`` names our connection class, which resolves the sentinel URL for RQ's
    own CLI (RQ's ``SENTINEL`` setting needs a settings module; ``REDIS_URL`` is enough here)."""
    env = worker_env("rq", settings, tmp_path)
    assert env["REDIS_URL"] == settings.redis_url
    load_backend("rq", settings).submit(6, 7)
    done = subprocess.run(
        [stock_cli("rq"), "info", "--only-queues", "compute"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "compute" in done.stdout, done.stderr


@pytest.mark.slow
def test_submitter_and_workers_go_on_through_a_switchover(
    cluster: SentinelCluster, settings: Settings, tmp_path: Path
) -> None:
    """One batch before ``SENTINEL FAILOVER``, one after, from the same processes: the submitter's
    backends and the workers (``rq worker compute result``, ``dramatiq dramatiq_impl.tasks``, as
    ``redis-pipeline env`` has them run) reconnect to the new master by themselves. The switch is
    made between the batches: writes the old master takes after it (the sentinels demote it
    seconds later) are lost with it, which no client can prevent (Redis replicates asynchronously)."""
    grid = Grid(4, 6)
    points = list(grid.points())
    first, second = points[: len(points) // 2], points[len(points) // 2 :]
    commands = {
        "rq": [stock_cli("rq"), "worker", "compute", "result"],
        "dramatiq": [stock_cli("dramatiq"), "dramatiq_impl.tasks", "--processes", "1", "--threads", "2"],
    }
    backends = {name: load_backend(name, settings) for name in commands}
    with ExitStack() as stack:
        groups = []
        since = time.time() - 1
        for name, command in commands.items():
            group = stack.enter_context(WorkerGroup(worker_env(name, settings, tmp_path), tmp_path / name))
            group.start(name, command)
            groups.append(group)

        def tails() -> str:
            return "\n".join(w.tail(30) for g in groups for w in g.workers)

        def stored(n: int) -> bool:
            return all(b.store.count() >= n for b in backends.values()) or any(g.dead() for g in groups)

        live = wait_until(lambda: all(b.live_workers(since) >= 1 for b in backends.values()), 60)
        assert live and not any(g.dead() for g in groups), tails()
        for backend in backends.values():
            assert backend.submit_many(first) == len(first)
        assert wait_until(lambda: stored(len(first)), 120) and not any(g.dead() for g in groups), tails()

        old = cluster.master_port()
        new = cluster.switch_over()
        assert new != old

        for backend in backends.values():
            assert backend.submit_many(second) == len(second)
        assert wait_until(lambda: stored(grid.size), 120) and not any(g.dead() for g in groups), tails()
    for name, backend in backends.items():
        report = backend.store.verify(grid)
        assert report.ok, f"{name}: {report.problems()}"
        pool = backend.store.client.connection_pool  # the submitter's own client, on the new master
        assert isinstance(pool, SentinelConnectionPool) and pool.master_address == ("127.0.0.1", new)


@pytest.mark.slow
def test_switchover_loses_no_acknowledged_write(cluster: SentinelCluster, settings: Settings) -> None:
    """``redis-pipeline switchover`` while a client writes with no ``WAIT`` (the knob off): every
    write a master acknowledged is on the new master (a plain ``SENTINEL FAILOVER`` loses those
    the old master took before the sentinels demoted it), and the old master replicates from it."""
    old = cluster.master_port()
    acknowledged: list[int] = []
    stop = threading.Event()

    def write() -> None:
        client = ResilientRedis.from_url(cluster.url)
        while not stop.is_set():
            client.rpush("acknowledged", len(acknowledged))
            acknowledged.append(len(acknowledged))
        client.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert wait_until(lambda: len(acknowledged) > 200, 30)
        done = cli(settings, "switchover")
        before = len(acknowledged)
        assert wait_until(lambda: len(acknowledged) > before + 200, 30)  # and writes go on
    finally:
        stop.set()
        writer.join()
    assert done.returncode == 0, done.stderr
    new = cluster.master_port()
    assert new not in (0, old)
    assert done.stdout.startswith(f"{SERVICE}: master 127.0.0.1:{old} -> 127.0.0.1:{new} (1 replica(s)); "), (
        done.stdout
    )
    with redis.Redis(port=new) as master:
        stored = {int(n) for n in master.lrange("acknowledged", 0, -1)}
    assert set(acknowledged) - stored == set()
    assert wait_until(lambda: cluster.info(old).get("master_link_status") == "up", 30), cluster.info(old)


def test_switchover_needs_a_sentinel_url(redis_server: RedisServer) -> None:
    done = cli(Settings(redis_server.url), "switchover")
    assert done.returncode == 2 and done.stdout == ""
    assert (
        done.stderr.strip()
        == f"error: REDIS_URL={redis_server.url}: switchover needs a redis+sentinel:// URL"
    )


@pytest.mark.slow
def test_a_master_that_refuses_writes_for_want_of_replicas_is_retried(
    cluster: SentinelCluster, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``NOREPLICAS`` (``min-replicas-to-write``: what a master cut off from its replicas answers
    while the sentinels promote one) is retried like a lost connection, not raised at once."""
    master = redis.Redis(port=cluster.master_port())
    master.config_set("min-replicas-to-write", 2)  # it has one
    monkeypatch.setenv(RETRY_SECONDS_ENV, "2")
    client = ResilientRedis.from_url(settings.redis_url)
    try:
        with pytest.raises(RedisUnavailable, match="NOREPLICAS"):
            client.set("refused", 1)
    finally:
        master.config_set("min-replicas-to-write", 0)
    assert client.set("accepted", 1)


@pytest.mark.slow
def test_a_client_follows_a_master_that_dies(cluster: SentinelCluster, settings: Settings) -> None:
    """Last in this module: it kills the master. A command retries (``shared.connection``) until the
    sentinels have promoted the replica (``down-after-milliseconds`` is 1 s here), then goes there."""
    client = ResilientRedis.from_url(settings.redis_url)
    assert client.incr("before") == 1
    old = cluster.master_port()
    cluster.kill(old)
    assert client.incr("after") == 1
    new = cluster.master_port()
    assert new not in (0, old)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.master_address == ("127.0.0.1", new)
