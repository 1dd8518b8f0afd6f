"""PipelineWorker's lean job lifecycle: RQ's records, in about two round trips per job."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
import redis
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from rq_impl import prestart, tasks
from rq_impl.worker import PipelineWorker
from shared.settings import Settings


class CountingConnection(redis.Connection):
    """Counts what goes out: one send per command or per pipeline, i.e. one per round trip."""

    sends = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        super().send_packed_command(command, check_health)


def _counting_client(settings: Settings) -> redis.Redis:
    client = redis.Redis.from_url(settings.redis_url)
    client.connection_pool.connection_class = CountingConnection
    return client


def _worker(client: redis.Redis, *queue_names: str) -> PipelineWorker:
    queues = [tasks.queue(name, client) for name in queue_names]
    return PipelineWorker(queues, connection=client, serializer=JSONSerializer)


def test_jobs_keep_rqs_records_in_two_round_trips_each(settings: Settings, client: redis.Redis) -> None:
    n = 200
    compute = tasks.queue("compute", client)
    jobs = [compute.enqueue_call(tasks.compute, args=(i, 3), **tasks.JOB_OPTIONS) for i in range(n)]
    counting = _counting_client(settings)
    worker = _worker(counting, "compute")
    CountingConnection.sends = 0
    worker.work(burst=True)
    # Stock RQ: ~11 per job. Here: start, success (+ claim of the next); setup and teardown aside.
    assert CountingConnection.sends <= 2 * n + 40, CountingConnection.sends
    for job in jobs:
        job.refresh()
        assert job.get_status() == JobStatus.FINISHED
        assert job.ended_at is not None and job.last_heartbeat is not None
    assert compute.finished_job_registry.count == n
    assert compute.started_job_registry.count == 0
    assert client.llen(compute.intermediate_queue_key) == 0
    assert client.scard(f"rq:worker:{worker.name}:executions") == 0
    assert client.llen("rq:queue:result") == n  # each compute job enqueued its handle_result


def test_dependents_of_a_finished_job_are_enqueued(settings: Settings, client: redis.Redis) -> None:
    compute, result = tasks.queue("compute", client), tasks.queue("result", client)
    parent = compute.enqueue_call(tasks.compute, args=(2, 3), **tasks.JOB_OPTIONS)
    child = result.enqueue_call(tasks.handle_result, args=(9, 9, 81), depends_on=parent, **tasks.JOB_OPTIONS)
    assert child.get_status() == JobStatus.DEFERRED
    _worker(client, "compute").work(burst=True)
    assert child.get_status() == JobStatus.QUEUED
    assert child.id in result.job_ids


def test_a_stopping_worker_hands_its_claimed_job_back(settings: Settings, client: redis.Redis) -> None:
    compute = tasks.queue("compute", client)
    first, second = (compute.enqueue_call(tasks.compute, args=(i, 1), **tasks.JOB_OPTIONS) for i in range(2))
    worker = _worker(client, "compute")
    with client.pipeline() as pipe:
        worker._queue_claim(pipe)
        worker._keep_claim(pipe.execute()[-1])
    assert client.lrange(compute.intermediate_queue_key, 0, -1) == [first.id.encode()]
    worker.teardown()
    assert client.llen(compute.intermediate_queue_key) == 0
    assert compute.job_ids == [first.id, second.id]
    assert Job.fetch(first.id, client, serializer=JSONSerializer).get_status() == JobStatus.QUEUED


def test_a_woken_worker_starts_with_the_fetch_and_skips_stale_ids(client: redis.Redis) -> None:
    compute = tasks.queue("compute", client)
    client.rpush(compute.key, "ghost")  # an id whose job hash is gone
    job = compute.enqueue_call(tasks.compute, args=(2, 2), **tasks.JOB_OPTIONS)
    worker = _worker(client, "compute")
    worker._ttl_guess[compute.key] = 99  # not this job's: its records are rewritten
    dequeued = prestart.dequeue_and_start(worker, timeout=None)
    assert dequeued is not None and dequeued[0].id == job.id
    assert not client.exists("rq:job:ghost") and not client.exists("rq:executions:ghost")
    assert client.llen(compute.intermediate_queue_key) == 0
    assert job.get_status() == JobStatus.STARTED
    (entry, expires_at), *_ = client.zrange(compute.started_job_registry.key, 0, -1, withscores=True)
    assert entry.decode().startswith(f"{job.id}:")
    assert expires_at - time.time() < worker.get_heartbeat_ttl(job) + 2


def test_jobs_of_another_timeout_run_and_finish(settings: Settings, client: redis.Redis) -> None:
    compute = tasks.queue("compute", client)
    jobs = [
        compute.enqueue_call(
            tasks.compute, args=(i, 2), **{**tasks.JOB_OPTIONS, "timeout": 10 + 10 * (i % 2)}
        )
        for i in range(4)
    ]
    _worker(client, "compute").work(burst=True)
    for job in jobs:
        job.refresh()
        assert job.get_status() == JobStatus.FINISHED
        assert job.worker_name and job.started_at and job.ended_at
    assert compute.started_job_registry.count == 0
    assert client.llen("rq:queue:result") == 4


@pytest.mark.parametrize("prestart_known", [False, True])
def test_a_stop_requested_while_waiting_lets_the_dequeued_job_run(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch, prestart_known: bool
) -> None:
    compute = tasks.queue("compute", client)
    job = compute.enqueue_call(tasks.compute, args=(5, 5), **tasks.JOB_OPTIONS)
    worker = _worker(client, "compute")
    if prestart_known:
        worker._ttl_guess[compute.key] = worker.get_heartbeat_ttl(job)
    dequeue = worker._dequeue

    def sigterm_during_blmove(timeout: int | None) -> Any:
        worker.request_stop(signal.SIGTERM, None)  # what the handler does while BLMOVE waits
        return dequeue(timeout)

    monkeypatch.setattr(worker, "_dequeue", sigterm_during_blmove)
    worker.work()
    assert job.get_status() == JobStatus.FINISHED
    assert client.llen(compute.intermediate_queue_key) == 0
    assert client.llen("rq:queue:result") == 1
