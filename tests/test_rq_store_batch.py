"""An RQ result worker with a backlog commits the rows of many ``store_results`` jobs in one
PostgreSQL transaction (``rq_impl.store_batch``), and records every job's success once."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from rq import Queue
from sqlalchemy import create_engine, text

from shared.backend import BACKEND_ENV
from shared.pipeline import results, store_results
from shared.results import RESULTS_URL_ENV
from shared.settings import Settings
from tests import user_tasks
from tests.helpers import wait_until
from tests.postgres import PostgresServer
from tests.test_own_tasks import task_workers

pytestmark = pytest.mark.slow


def transactions(url: str, task: str) -> int:
    """How many transactions inserted the task's rows (``xmin``: a row's inserting transaction)."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            query = text("SELECT count(DISTINCT xmin::text) FROM pipeline_results WHERE task = :task")
            return int(connection.execute(query, {"task": task}).scalar_one())
    finally:
        engine.dispose()


def test_a_backlog_is_stored_in_few_transactions_and_every_job_finishes(
    settings: Settings,
    client: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_server: PostgresServer,
) -> None:
    monkeypatch.setenv(BACKEND_ENV, "rq")
    monkeypatch.setenv(RESULTS_URL_ENV, postgres_server.url)
    task = user_tasks.simulate
    results().store.clear(task.name)
    calls = task.calls([(i, 0.5) for i in range(400)])
    waiting = Queue(store_results.queue, connection=client)
    with task_workers("rq", settings, tmp_path, ["default"]):
        task.send_calls(calls)
        assert wait_until(lambda: waiting.count == len(calls), timeout=60), waiting.count
    assert results().count(task.name) == 0  # no result worker yet: every result is queued

    with task_workers("rq", settings, tmp_path, [store_results.queue]):
        assert wait_until(lambda: results().verify(calls).ok, timeout=60), results().verify(calls).problems()
        assert wait_until(lambda: waiting.finished_job_registry.count == len(calls), timeout=30)
    report = results().verify(calls)
    assert report.ok and report.stored == len(calls) and not report.wrong
    assert set(results().store.deliveries(task.name).values()) == {1}
    assert waiting.failed_job_registry.count == 0 and waiting.count == 0
    # One transaction per job would be 400; a backlog goes in batches of store_batch.MAX_JOBS.
    assert transactions(postgres_server.url, task.name) <= len(calls) // 10
