"""The asyncio peer (taskiq + taskiq-redis) and the chunked redis-limit probe, end to end on the
tests' private redis-server: real worker CLIs, every point verified."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from rich.console import Console

from benchmarks import schema
from benchmarks.harness import Harness
from benchmarks.stacks import select
from benchmarks.taskiq_backend import PROFILES, TaskiqBackend
from benchmarks.workloads import PROFILES as BENCH_PROFILES
from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK, active_table
from shared.settings import Settings

QUIET = Console(quiet=True)


def test_workers_are_taskiqs_own_cli_one_broker_per_queue(settings: Settings) -> None:
    routing = active_table()
    tuned = TaskiqBackend(settings, "tuned")
    compute = tuned.worker_command([routing.queue_for(COMPUTE_TASK)])
    result = tuned.worker_command([routing.queue_for(HANDLE_RESULT_TASK)])
    assert Path(compute[0]).name == "taskiq" and compute[1] == "worker"
    assert compute[2] == "benchmarks.taskiq_app:compute_broker"
    assert result[2] == "benchmarks.taskiq_app:result_broker"
    assert compute[-len(PROFILES["tuned"]) :] == PROFILES["tuned"]
    assert TaskiqBackend(settings).worker_command(["compute"])[3:] == ["--log-level", "WARNING"]
    with pytest.raises(ValueError, match="one broker"):
        tuned.worker_command(["compute", "result"])


@pytest.mark.slow
def test_taskiq_stack_runs_the_seed_grid_verified_on_keys_of_its_own(
    settings: Settings, tmp_path: Path
) -> None:
    from benchmarks import taskiq_app

    client = redis.Redis.from_url(settings.redis_url)
    before = set(client.keys())
    doc = Harness(BENCH_PROFILES["smoke"], select(["taskiq"]), settings, tmp_path, QUIET).run()

    assert schema.problems(doc) == []
    assert {(s["profile"], s["status"]) for s in doc["stacks"]} == {
        ("seed-defaults", "ran"),
        ("tuned", "ran"),
    }
    assert sorted((r["profile"], r["workload"]) for r in doc["runs"]) == [
        ("seed-defaults", "grid"),
        ("seed-defaults", "latency"),
        ("tuned", "grid"),
        ("tuned", "latency"),
    ]
    for run in doc["runs"]:
        assert run["status"] == "ok" and run["verified"] is True, run
    assert all(
        set(r["latency_ms"]) == {"p50", "p90", "p99", "max"}
        for r in doc["runs"]
        if r["workload"] == "latency"
    )
    grid = [r for r in doc["summary"] if r["workload"] == "grid"]
    assert all(r["limit"] == "redis-limit probe" for r in grid)

    created = {key.decode() for key in set(client.keys()) - before}
    assert created and all(taskiq_app.PREFIX in key for key in created), created
    TaskiqBackend(settings).delete_own_keys()
    assert not list(client.scan_iter(match=f"*{taskiq_app.PREFIX}*"))


@pytest.mark.slow
def test_chunked_probe_stores_every_point_and_is_the_chunked_rows_limit(
    settings: Settings, tmp_path: Path
) -> None:
    stacks = select(["redis-limit", "rq chunked"])
    doc = Harness(BENCH_PROFILES["smoke"], stacks, settings, tmp_path, QUIET).run()

    assert schema.problems(doc) == []
    assert all(r["status"] == "ok" and r["verified"] for r in doc["runs"])
    rows = {(r["stack"], r["profile"], r["workload"]): r for r in doc["summary"]}
    assert rows[("redis-limit", "chunked", "grid")]["fraction_of_limit"] == 1.0
    assert rows[("rq", "chunked", "grid")]["limit"] == "redis-limit chunked"
    assert rows[("rq", "chunked", "grid")]["fraction_of_limit"] is not None
    latency = rows[("redis-limit", "chunked", "latency")]
    assert latency["status"].startswith("not measured: a latency run sends chunks of one point")
