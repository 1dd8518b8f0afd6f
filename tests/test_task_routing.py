"""Declared tasks are routed by their full name through the user's celeryconfig (globs included);
the pipeline's own tasks keep their queues under it; ``status`` names routes no worker serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from shared.cli import main
from shared.ops import Status, WorkerStatus, with_unserved_routes
from shared.pipeline import run_chunk, store_results, task
from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK, active_table
from shared.settings import Settings

USER_CONFIG = """
broker_url = "redis://ignored"
task_default_queue = "default"
task_queues = {"default": {}, "compute": {}, "result": {}, "reports": {}}
task_routes = {
    "myapp.tasks.compute": {"queue": "compute"},
    "myapp.tasks.handle_result": {"queue": "result"},
    "myapp.reports.*": {"queue": "reports"},
}
"""


@pytest.fixture
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "celeryconfig.py"
    path.write_text(USER_CONFIG)
    monkeypatch.setenv("PIPELINE_CELERYCONFIG", str(path))
    return path


def _fn(day: str) -> str:
    return day


def test_a_users_task_names_route_through_their_celeryconfig(user_config: Path) -> None:
    compute = task(name="myapp.tasks.compute")(lambda x: x)
    weekly = task(name="myapp.reports.weekly")(_fn)
    unrouted = task(name="myapp.misc.other")(_fn)
    explicit = task(name="myapp.reports.pinned", queue="special")(_fn)
    assert compute.queue == "compute"
    assert weekly.queue == "reports"  # glob route
    assert unrouted.queue == "default"  # the table's default queue
    assert explicit.queue == "special"  # an explicit queue overrides the table


def test_the_pipelines_own_tasks_are_not_stranded_in_default_under_a_users_table(user_config: Path) -> None:
    table = active_table()
    assert not table.routes_task(COMPUTE_TASK)  # their config never names ours
    assert table.queue_for(COMPUTE_TASK) == "compute"
    assert table.queue_for(HANDLE_RESULT_TASK) == "result"
    assert store_results.queue == "result"
    assert run_chunk.queue == "compute"


def test_a_table_without_those_queues_sends_ours_to_its_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "onequeue.py"
    path.write_text('task_default_queue = "work"\ntask_queues = {"work": {}}\n')
    monkeypatch.setenv("PIPELINE_CELERYCONFIG", str(path))
    assert store_results.queue == "work"
    assert active_table().queue_for(COMPUTE_TASK) == "work"


def test_routes_to_queues_no_worker_serves_are_named() -> None:
    worker = WorkerStatus("w1", "host", 1, ["compute", "result"], None)
    status = Status("dramatiq", "redis://x", [], [worker], 0)
    routes = {"myapp.tasks.compute": "compute", "myapp.reports.*": "reports"}
    assert with_unserved_routes(status, routes).unserved == ["myapp.reports.* -> reports"]


def test_status_shows_unserved_routes(
    user_config: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    result = CliRunner().invoke(main, ["status", "--backend", "rq", "--json"])
    assert result.exit_code == 0, result.output
    unserved = json.loads(result.output)["rq"]["unserved"]
    assert "myapp.reports.* -> reports" in unserved and "myapp.tasks.compute -> compute" in unserved
    text = CliRunner().invoke(main, ["status", "--backend", "rq"])
    assert "no live worker serves:" in text.output and "myapp.reports.* -> reports" in text.output
