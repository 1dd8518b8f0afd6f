"""The ops view (``status``, ``requeue``, ``purge``) on both backends, through the real CLI.

Counts are set up deterministically (an in-process consumer fetching and nacking, or a real worker
that has drained its queue), so every assertion is exact and none depends on timing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from dramatiq_impl import tasks as dramatiq_tasks
from shared.backend import load_ops_backend
from shared.embedded import free_port, private_redis
from shared.ops import QueueStatus
from shared.settings import Settings
from tests.helpers import wait_until, workers

CLI = str(Path(sys.executable).parent / "redis-pipeline")
RQ_CLI = str(Path(sys.executable).parent / "rq")


def cli(settings: Settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": settings.redis_url}
    return subprocess.run([CLI, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60)


def status_json(settings: Settings, backend: str) -> dict[str, Any]:
    done = cli(settings, "status", "--backend", backend, "--json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)[backend]
    return report


def queues(report: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {q["name"]: {k: v for k, v in q.items() if k != "name"} for q in report["queues"]}


def counts(depth: int = 0, in_flight: int = 0, dead: int = 0, delayed: int = 0) -> dict[str, int]:
    return {"depth": depth, "in_flight": in_flight, "dead": dead, "delayed": delayed}


# --- Dramatiq ---------------------------------------------------------------------------------


def test_dramatiq_status_counts_purge_and_confirmation(settings: Settings, client: redis.Redis) -> None:
    backend = load_ops_backend("dramatiq", settings)
    broker = backend.broker
    backend.submit_many([(1, 1), (1, 2), (1, 3), (1, 4), (1, 5)])
    broker.enqueue(dramatiq_tasks.compute.message(9, 9), delay=3_600_000)
    consumer = broker.consume("compute", prefetch=2, timeout=1000)
    held = next(consumer)
    failed = next(consumer)
    consumer.nack(failed)
    report = status_json(settings, "dramatiq")
    assert queues(report) == {
        "default": counts(),
        "compute": counts(depth=3, in_flight=1, dead=1, delayed=1),
        "result": counts(),
    }
    assert report["results_stored"] == 0 and report["workers"] == []

    refused = cli(settings, "purge", "--backend", "dramatiq", stdin="n\n")
    assert refused.returncode == 1 and "Drop 4 waiting, delayed messages" in refused.stderr
    assert backend.status().queue("compute").depth == 3

    done = cli(settings, "purge", "--backend", "dramatiq", "--queue", "compute", "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["dramatiq: compute: dropped 4"]
    assert backend.status().queue("compute") == QueueStatus("compute", 0, 1, 1, 0)
    consumer.ack(held)  # the held message's body survived the purge, so its ack still lands
    assert not client.hlen("dramatiq:compute.msgs")
    done = cli(settings, "purge", "--backend", "dramatiq", "--dead", "--yes")
    assert done.returncode == 0, done.stderr
    assert not client.exists("dramatiq:compute.XQ", "dramatiq:compute.XQ.msgs", "dramatiq:compute.XQ.reasons")
    assert queues(status_json(settings, "dramatiq"))["compute"] == counts()
    consumer.close()


@pytest.mark.slow
def test_dramatiq_requeue_runs_dead_letters_again(
    settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    """A dead letter that was delayed (``compute.DQ``, with an eta) runs at once on its own queue."""
    backend = load_ops_backend("dramatiq", settings)
    broker = backend.broker
    broker.enqueue(dramatiq_tasks.compute.message(2, 3))
    broker.enqueue(dramatiq_tasks.compute.message(4, 5), delay=3_600_000)
    ids = []
    for queue in ("compute", "compute.DQ"):
        consumer = broker.consume(queue, prefetch=1, timeout=1000)
        message = next(consumer)
        consumer.nack(message)
        ids.append(message.options["redis_message_id"])
        consumer.close()
    client.hset("dramatiq:compute.XQ.reasons", ids[0], "made up")
    assert backend.status().queue("compute").dead == 2

    unknown = cli(settings, "requeue", "--backend", "dramatiq", "no-such-id")
    assert unknown.returncode == 1 and "not dead-lettered / failed: no-such-id" in unknown.stderr
    done = cli(settings, "requeue", "--backend", "dramatiq", *ids)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "dramatiq: requeued 2"
    assert not client.hexists("dramatiq:compute.XQ.reasons", ids[0])
    assert backend.status().queue("compute") == QueueStatus("compute", 2, 0, 0, 0)
    with workers(backend, tmp_path, ["compute"], ["result"]):
        assert wait_until(lambda: backend.store.count() == 2)
    assert backend.store.get(2, 3) == 6 and backend.store.get(4, 5) == 20


@pytest.mark.slow
def test_dramatiq_status_lists_live_workers_with_host_and_queues(
    settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    backend = load_ops_backend("dramatiq", settings)
    with workers(backend, tmp_path, ["compute"], ["result"]) as group:
        assert wait_until(lambda: len(backend.status().workers) == 2)
        report = status_json(settings, "dramatiq")
        children = {c.pid for w in group.workers for c in psutil.Process(w.process.pid).children(True)}
    assert sorted(w["queues"] for w in report["workers"]) == [["compute"], ["result"]]
    for worker in report["workers"]:
        assert worker["host"] == socket.gethostname()
        assert worker["address"].startswith("127.0.0.1:")
        assert worker["pid"] in children
    assert backend.status().workers == []  # a clean shutdown removes the entry at once


# --- RQ ---------------------------------------------------------------------------------------


def rq_info(settings: Settings) -> tuple[dict[str, dict[str, int]], int]:
    """``rq info --raw``: per queue (waiting, executing, failed), and the number of workers."""
    done = subprocess.run(
        [RQ_CLI, "info", "--raw", "--url", settings.redis_url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, dict[str, int]] = {}
    workers = 0
    for line in done.stdout.splitlines():
        if line.startswith("queue "):
            # queue NAME 3, 0 executing, 0 finished, 2 failed
            name, rest = line.removeprefix("queue ").split(" ", 1)
            numbers = [int(part.strip().split(" ")[0]) for part in rest.split(",")]
            found[name] = {"depth": numbers[0], "in_flight": numbers[1], "dead": numbers[3]}
        elif line.startswith("worker "):
            workers += 1
    return found, workers


def assert_agrees_with_rq_info(settings: Settings) -> dict[str, Any]:
    report = status_json(settings, "rq")
    info_queues, info_workers = rq_info(settings)
    ours = queues(report)
    assert info_queues, "rq info listed no queues"
    for name, numbers in info_queues.items():
        assert {k: ours[name][k] for k in numbers} == numbers, name
    assert len(report["workers"]) == info_workers
    return report


@pytest.mark.slow
def test_rq_status_agrees_with_rq_info(settings: Settings, client: redis.Redis, tmp_path: Path) -> None:
    backend = load_ops_backend("rq", settings)
    compute = Queue("compute", connection=client, serializer=JSONSerializer)
    for i in range(3):
        compute.enqueue_call("rq_impl.tasks.compute", args=(i, 2))
    for job_id in ("bad-1", "bad-2"):
        compute.enqueue_call("rq_impl.tasks.compute", args=("a", 2), job_id=job_id)
    default = Queue("default", connection=client, serializer=JSONSerializer)
    for i in range(4):
        default.enqueue_call("rq_impl.tasks.compute", args=(i, 3))

    with workers(backend, tmp_path, ["compute"]) as group:
        assert wait_until(lambda: backend.status().queue("compute").dead == 2)
        assert wait_until(lambda: backend.status().queue("result").depth == 3)
        report = assert_agrees_with_rq_info(settings)
        assert queues(report) == {
            "default": counts(depth=4),
            "compute": counts(dead=2),
            "result": counts(depth=3),
        }
        (worker,) = report["workers"]
        assert worker["pid"] == group.workers[0].process.pid and worker["queues"] == ["compute"]
        assert worker["host"] == socket.gethostname() and worker["address"]
    assert assert_agrees_with_rq_info(settings)["workers"] == []

    done = cli(settings, "requeue", "--backend", "rq", "bad-2")
    assert done.returncode == 0 and done.stdout.strip() == "rq: requeued 1", done.stderr
    assert backend.status().queue("compute") == QueueStatus("compute", 1, 0, 1, 0)
    done = cli(settings, "requeue", "--backend", "rq", "--all")
    assert done.stdout.strip() == "rq: requeued 1"
    assert_agrees_with_rq_info(settings)

    done = cli(settings, "purge", "--backend", "rq", "--queue", "compute", "--queue", "default", "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["rq: compute: dropped 2", "rq: default: dropped 4"]
    assert queues(assert_agrees_with_rq_info(settings)) == {
        "default": counts(),
        "compute": counts(),
        "result": counts(depth=3),
    }


def test_rq_purge_dead_drops_failed_jobs(settings: Settings, client: redis.Redis) -> None:
    backend = load_ops_backend("rq", settings)
    compute = Queue("compute", connection=client, serializer=JSONSerializer)
    job = compute.enqueue_call("rq_impl.tasks.compute", args=(1, 2))
    compute.remove(job)
    compute.failed_job_registry.add(job, exc_string="made up")
    assert backend.status().queue("compute").dead == 1
    done = cli(settings, "purge", "--backend", "rq", "--queue", "compute", "--dead", stdin="y\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["rq: compute: dropped 1"]
    assert backend.status().queue("compute").dead == 0
    assert not client.exists(job.key)


# --- both -------------------------------------------------------------------------------------


def test_watch_refreshes_and_json_lines(settings: Settings, client: redis.Redis) -> None:
    done = cli(settings, "status", "--watch", "--count", "2", "--interval", "0.1")
    assert done.returncode == 0, done.stderr
    assert "dramatiq on " in done.stdout and "rq on " in done.stdout and "live workers" in done.stdout
    done = cli(settings, "status", "--watch", "--json", "--count", "3", "--interval", "0.1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3
    assert all(set(json.loads(line)) == {"dramatiq", "rq"} for line in lines)


def test_passwords_never_shown() -> None:
    with private_redis(password="s3cret-pw") as server:
        settings = Settings(f"redis://:s3cret-pw@127.0.0.1:{server.port}/0")
        for args in (["status"], ["status", "--json"]):
            done = cli(settings, *args)
            assert done.returncode == 0, done.stderr
            assert "s3cret-pw" not in done.stdout + done.stderr
            assert f"redis://:***@127.0.0.1:{server.port}/0" in done.stdout


def test_unreachable_redis_is_one_line() -> None:
    done = cli(Settings(f"redis://:pw@127.0.0.1:{free_port()}/0"), "status")
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot reach Redis at redis://:***@") and "pw@" not in done.stderr
