"""``PIPELINE_MIN_REPLICAS``: what we report as written waits for a replica's ``WAIT``, on a private
master with one replica (and a master alone, where nothing can be confirmed): a write reported
done is on the replica; with the replica stopped (SIGSTOP) it is not reported done; workers of
both backends run a grid with the knob on, per message and chunked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from rq_impl.lifecycle import LeanLifecycle
from shared.backend import load_backend
from shared.connection import RETRY_SECONDS_ENV, RedisUnavailable, connect
from shared.embedded import RedisServer
from shared.replication import MIN_REPLICAS_ENV, NotReplicated, min_replicas
from shared.settings import Settings
from shared.store import ResultStore
from tests.helpers import wait_until

CLI = str(Path(sys.executable).parent / "redis-pipeline")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, RedisServer]]:
    """A master and its replica."""
    master = RedisServer(tmp_path_factory.mktemp("master"))
    master.start()
    replica = RedisServer(
        tmp_path_factory.mktemp("replica"), args=["--replicaof", "127.0.0.1", str(master.port)]
    )
    replica.start()
    try:
        probe = redis.Redis(port=replica.port)
        assert wait_until(lambda: probe.info("replication")["master_link_status"] == "up", 30)
        probe.close()
        yield master, replica
    finally:
        replica.stop()
        master.stop()


@pytest.fixture
def knob(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MIN_REPLICAS_ENV, "1")
    monkeypatch.setenv(RETRY_SECONDS_ENV, "3")  # a write no replica confirms fails in ~3 s


def test_the_knob_reads_a_whole_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIN_REPLICAS_ENV, raising=False)
    assert min_replicas() == 0
    monkeypatch.setenv(MIN_REPLICAS_ENV, " 2 ")
    assert min_replicas() == 2
    monkeypatch.setenv(MIN_REPLICAS_ENV, "1.5")
    with pytest.raises(Exception, match=f"{MIN_REPLICAS_ENV}='1.5'"):
        min_replicas()


def test_a_confirmed_write_is_on_the_replica(knob: None, pair: tuple[RedisServer, RedisServer]) -> None:
    master, replica = pair
    store = ResultStore(connect(Settings(master.url)), "replication")
    assert store.put_many([(1, 2, 2), (3, 4, 12)]) == 2
    on_replica = redis.Redis(port=replica.port)
    # Read at once, no waiting: WAIT returned only once the replica had both rows.
    assert on_replica.hgetall(store.results_key) == {b"1,2": b"2", b"3,4": b"12"}
    on_replica.close()


def test_a_write_no_replica_confirms_is_not_reported_done(
    knob: None, pair: tuple[RedisServer, RedisServer]
) -> None:
    """The replica stopped: the store and both backends' submissions raise instead of returning."""
    master, replica = pair
    settings = Settings(master.url)
    assert replica.process is not None
    replica.process.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(RedisUnavailable) as raised:
            ResultStore(connect(settings), "replication").put(5, 6, 30)
        assert isinstance(raised.value.__cause__, NotReplicated)
        assert f"{MIN_REPLICAS_ENV}=1: only 0 replica(s)" in str(raised.value)
        for name in ("dramatiq", "rq"):
            with pytest.raises(RedisUnavailable, match=MIN_REPLICAS_ENV):
                load_backend(name, settings).submit(7, 8)
    finally:
        replica.process.send_signal(signal.SIGCONT)
    assert ResultStore(connect(settings), "replication").put(5, 6, 30) in (True, False)


def test_a_master_alone_confirms_nothing(knob: None, tmp_path: Path) -> None:
    alone = RedisServer(tmp_path)
    alone.start()
    try:
        with pytest.raises(RedisUnavailable, match="only 0 replica"):
            ResultStore(connect(Settings(alone.url)), "replication").put(1, 1, 1)
        os.environ[MIN_REPLICAS_ENV] = "0"  # the knob off: today's behaviour (monkeypatch restores)
        store = ResultStore(connect(Settings(alone.url)), "replication")
        # The unconfirmed write did reach the master (only its confirmation failed): not new now.
        assert store.put(1, 1, 1) is False
        assert store.get(1, 1) == 1
    finally:
        alone.stop()


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["--chunked"]], ids=["per-message", "chunked"])
def test_workers_store_every_result_with_the_knob_on(
    pair: tuple[RedisServer, RedisServer], mode: list[str], tmp_path: Path
) -> None:
    """``run`` with the workers' stock CLIs, every process with ``PIPELINE_MIN_REPLICAS=1``:
    Dramatiq's group commits and RQ's success scripts wait for the replica."""
    master, _replica = pair
    env = {**os.environ, "REDIS_URL": master.url, MIN_REPLICAS_ENV: "1", "PYTHONPATH": str(ROOT)}
    client = redis.Redis(port=master.port)
    client.flushall()  # our private pair: what earlier tests' unconfirmed submissions left
    for name in ("dramatiq", "rq"):
        waits = _waits(client)
        command = [CLI, "run", "--backend", name, "--grid", "6x7", "--log-dir", str(tmp_path / name), *mode]
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"{name}: 42/42 results verified" in done.stdout, done.stdout + done.stderr
        # The submission and at least one commit per result worker and compute worker waited.
        assert _waits(client) - waits >= 3
    client.close()


def test_an_rq_worker_confirms_a_run_of_successes_with_one_wait(
    pair: tuple[RedisServer, RedisServer], knob: None
) -> None:
    """With the knob on, an RQ worker holds a success while it runs the next waiting job
    (``rq_impl.store_batch``): a queue of 60 jobs is recorded with far fewer ``WAIT`` s than jobs,
    every job finished and on the replica."""
    master, replica = pair
    client = redis.Redis(port=master.port)
    client.flushall()
    queue = Queue("jobs", connection=client, serializer=JSONSerializer)
    jobs = [queue.enqueue_call("operator.mul", args=(i, 3), result_ttl=60) for i in range(60)]
    waits = _waits(client)
    LeanLifecycle([queue], connection=client, serializer=JSONSerializer).work(burst=True)
    assert [job.get_status() for job in jobs] == [JobStatus.FINISHED] * 60
    assert [job.return_value() for job in jobs] == [i * 3 for i in range(60)]
    assert 1 <= _waits(client) - waits <= 30
    copy = redis.Redis(port=replica.port)
    assert copy.zcard("rq:finished:jobs") == 60
    copy.close()
    client.close()


def _waits(client: redis.Redis) -> int:
    """How many ``WAIT`` commands the server has run."""
    stats: dict[str, dict[str, int]] = client.info("commandstats")
    return stats.get("cmdstat_wait", {}).get("calls", 0)
