"""Diagnosis through the real CLI: ``redis-pipeline dead`` lists what real workers dead-lettered /
failed (id, task, queue, reason, time) with ids ``requeue`` takes; ``status`` names the fix when a
stock ``rq worker`` without the JSON serializer failed jobs; ``status`` fits 80 columns whole."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import redis

from shared.backend import load_ops_backend
from shared.dead import one_line
from shared.settings import Settings
from tests.helpers import wait_until, workers
from tests.test_ops import CLI, RQ_CLI, cli, status_json

pytestmark = pytest.mark.slow

WRONG_SERIALIZER_FIX = ("--serializer json", "redis-pipeline requeue --backend rq --all")


def narrow(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as an 80-column terminal shows it."""
    env = {**os.environ, "REDIS_URL": settings.redis_url, "COLUMNS": "80"}
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=60)


def dead_json(settings: Settings, backend: str) -> list[dict[str, Any]]:
    done = cli(settings, "dead", "--backend", backend, "--json")
    assert done.returncode == 0, done.stderr
    listed: list[dict[str, Any]] = json.loads(done.stdout)[backend]
    return listed


def assert_recent_utc(iso: str, since: float) -> None:
    """An ISO 8601 time in UTC, between the test's start and now (a correctness check, with a
    minute's slack either side; no speed is measured)."""
    when = datetime.fromisoformat(iso)
    offset = when.utcoffset()
    assert offset is not None and offset.total_seconds() == 0, iso
    assert since - 60 <= when.timestamp() <= time.time() + 60, iso


def assert_fits_80_columns(text: str) -> None:
    assert text.strip()
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "…" not in text, text  # nothing truncated


def test_one_line_is_a_tracebacks_last_line() -> None:
    trace = 'Traceback (most recent call last):\n  File "x.py", line 1\n    f()\nValueError: bad\n'
    assert one_line(trace) == "ValueError: bad"
    assert one_line("InvalidArguments: x\n  more") == "InvalidArguments: x more"
    assert one_line(None) == "-"


def test_dramatiq_dead_lists_reasons_and_requeue_takes_the_ids(
    settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    since = time.time()

    def push(args: list[object]) -> str:
        redis_id = str(uuid.uuid4())
        message = dramatiq.Message(
            queue_name="compute", actor_name="tasks.compute", args=tuple(args), kwargs={}, options={}
        )
        client.hset("dramatiq:compute.msgs", redis_id, message.encode())
        client.rpush("dramatiq:compute", redis_id)
        return redis_id

    poison = {
        push(["a", 2]): "InvalidArguments: compute(): x: Input should be a valid integer",
        push([1]): "InvalidArguments: compute(): missing a required argument: 'y'",
    }
    backend = load_ops_backend("dramatiq", settings)
    with workers(backend, tmp_path, ["compute", "result"]):
        assert wait_until(lambda: backend.status().queue("compute").dead == len(poison))

    listed = dead_json(settings, "dramatiq")
    assert {m["id"] for m in listed} == set(poison)
    for m in listed:
        assert m["task"] == "tasks.compute" and m["queue"] == "compute"
        assert m["reason"].startswith(poison[m["id"]]) and "\n" not in m["reason"]
        assert_recent_utc(m["time"], since)

    shown = narrow(settings, "dead", "--backend", "dramatiq")
    assert shown.returncode == 0, shown.stderr
    assert_fits_80_columns(shown.stdout)
    for redis_id in poison:
        assert redis_id in shown.stdout  # whole, so it can be copied into requeue
    assert "InvalidArguments" in shown.stdout and "tasks.compute" in shown.stdout

    first = listed[0]["id"]
    done = cli(settings, "requeue", "--backend", "dramatiq", first)
    assert done.returncode == 0 and done.stdout.strip() == "dramatiq: requeued 1", done.stderr
    assert [m["id"] for m in dead_json(settings, "dramatiq")] == [listed[1]["id"]]
    assert client.lrange("dramatiq:compute", 0, -1) == [first.encode()]


def test_rq_stock_worker_without_json_is_diagnosed_and_recovered(
    settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    """A stock ``rq worker`` (pickle) fails our JSON jobs with DeserializationError: ``dead``
    lists them, ``status`` names the fix; a truly broken job is listed but not blamed on it."""
    since = time.time()
    backend = load_ops_backend("rq", settings)
    backend.submit_many([(2, 3), (4, 5), (6, 7)])
    client.hset(
        "rq:job:garbage", mapping={"data": b"\x00\xff garbage", "status": "queued", "origin": "compute"}
    )
    client.rpush("rq:queue:compute", "garbage")
    stock = subprocess.run(
        [RQ_CLI, "worker", "--burst", "-u", settings.redis_url, "compute"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert stock.returncode == 0, stock.stderr
    assert backend.status().queue("compute").dead == 4

    listed = dead_json(settings, "rq")
    assert len(listed) == 4
    for m in listed:
        assert m["queue"] == "compute" and m["reason"] == "rq.exceptions.DeserializationError"
        assert m["task"] == ("?" if m["id"] == "garbage" else "rq_impl.tasks.compute")
        assert_recent_utc(m["time"], since)

    report = status_json(settings, "rq")
    assert report["wrong_serializer"] == 3
    (hint,) = report["hints"]
    assert "3 failed job(s)" in hint and "DeserializationError" in hint
    assert all(fix in hint for fix in WRONG_SERIALIZER_FIX)
    shown = narrow(settings, "status", "--backend", "rq")
    assert shown.returncode == 0, shown.stderr
    assert_fits_80_columns(shown.stdout)
    flat = " ".join(shown.stdout.split())
    assert "rq: 3 failed job(s) could not be decoded" in flat
    assert all(fix in flat for fix in WRONG_SERIALIZER_FIX)

    good = [m["id"] for m in listed if m["id"] != "garbage"]
    done = cli(settings, "requeue", "--backend", "rq", good[0])
    assert done.returncode == 0 and done.stdout.strip() == "rq: requeued 1", done.stderr
    assert status_json(settings, "rq")["wrong_serializer"] == 2
    done = cli(settings, "requeue", "--backend", "rq", "--all")
    assert done.returncode == 0 and done.stdout.strip() == "rq: requeued 3", done.stderr
    with workers(backend, tmp_path, ["compute"], ["result"]):
        assert wait_until(lambda: backend.store.count() == 3)
        assert wait_until(lambda: backend.status().queue("compute").dead == 1)  # garbage, again
    assert [backend.store.get(x, y) for x, y in ((2, 3), (4, 5), (6, 7))] == [6, 20, 42]
    report = status_json(settings, "rq")
    assert report["wrong_serializer"] == 0 and report["hints"] == []
    assert [m["id"] for m in dead_json(settings, "rq")] == ["garbage"]


def test_status_fits_80_columns_with_every_column(
    settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    dramatiq_backend = load_ops_backend("dramatiq", settings)
    rq_backend = load_ops_backend("rq", settings)
    with (
        workers(dramatiq_backend, tmp_path / "d", ["compute", "result"]),
        workers(rq_backend, tmp_path / "r", ["compute"]),
    ):
        assert wait_until(lambda: len(dramatiq_backend.status().workers) == 1)
        shown = narrow(settings, "status")
        reports = json.loads(cli(settings, "status", "--json").stdout)
    assert shown.returncode == 0, shown.stderr
    assert_fits_80_columns(shown.stdout)
    for header in ("queue", "depth", "in flight", "dead", "delayed"):
        assert f" {header} " in shown.stdout, header
    for header in ("worker", "host", "address", "pid", "queues", "last seen"):
        assert f" {header} " in shown.stdout, header
    cells = [cell.strip() for line in shown.stdout.splitlines() for cell in re.split("[│┃]", line)]
    for report in reports.values():
        (worker,) = report["workers"]
        assert str(worker["pid"]) in cells  # whole, on one line
        assert worker["address"] in cells
        for queue in worker["queues"]:
            assert any(queue in cell for cell in cells), queue
