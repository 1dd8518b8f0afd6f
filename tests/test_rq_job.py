"""PipelineJob reads a job hash exactly as RQ's Job does, and runs only the pipeline's functions."""

from __future__ import annotations

import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from rq_impl import tasks
from rq_impl.job import FunctionNotAllowed, PipelineJob


def _both(client: redis.Redis, job_id: str) -> tuple[Job, PipelineJob]:
    data = client.hgetall(f"rq:job:{job_id}")
    stock, ours = Job(job_id, client, JSONSerializer), PipelineJob(job_id, client, JSONSerializer)
    stock.restore(data)
    ours.restore(data)
    return stock, ours


def test_restore_matches_rqs_own(client: redis.Redis) -> None:
    job = tasks.queue("compute", client).enqueue_call(tasks.compute, args=(2, 3), **tasks.JOB_OPTIONS)
    client.hset(job.key, mapping={"started_at": "2026-12-01T13:32:00Z", "last_heartbeat": "not a date"})
    with pytest.raises(ValueError):  # RQ's parser still has the last word on what it cannot read
        _both(client, job.id)
    client.hset(job.key, "last_heartbeat", "2026-12-01T13:32:00.410012Z")
    stock, ours = _both(client, job.id)
    assert ours.to_dict() == stock.to_dict()
    assert (ours.created_at, ours.enqueued_at, ours.started_at, ours.last_heartbeat) == (
        stock.created_at,
        stock.enqueued_at,
        stock.started_at,
        stock.last_heartbeat,
    )
    assert ours.serializer is stock.serializer is JSONSerializer
    assert ours.func is tasks.compute and ours.args == [2, 3]


def test_only_pipeline_functions_run(client: redis.Redis) -> None:
    job = tasks.queue("compute", client).enqueue_call("os.system", args=("true",))
    _, ours = _both(client, job.id)
    with pytest.raises(FunctionNotAllowed):
        ours.func  # noqa: B018
