"""RQ's PipelineWorker gives back a job its dead predecessor left between dequeue and start."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from rq_impl import tasks
from shared.backend import load_backend
from shared.settings import Settings
from tests.helpers import wait_until, workers

pytestmark = pytest.mark.slow


def test_job_stranded_in_the_intermediate_queue_is_run(
    settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    backend = load_backend("rq", settings)
    job = tasks.queue("compute", client).enqueue_call(tasks.compute, args=(6, 7), **tasks.JOB_OPTIONS)
    # What a worker killed right after BLMOVE leaves behind: the id moved, never started.
    client.lmove("rq:queue:compute", "rq:queue:compute:intermediate", "LEFT", "RIGHT")
    assert client.lrange("rq:queue:compute:intermediate", 0, -1) == [job.id.encode()]
    with workers(backend, tmp_path, ["compute"], ["result"]):
        assert wait_until(lambda: backend.store.get(6, 7) == 42, timeout=40)
    assert client.llen("rq:queue:compute:intermediate") == 0
