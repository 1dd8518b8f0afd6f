"""PipelineWorker's lean job lifecycle: RQ's records, one round trip per job under load, and the
loop's stop and suspension checks still honoured between two jobs."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import pytest
import redis
from rq.exceptions import DequeueTimeout
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.suspension import suspend

from rq_impl import prestart, record_scripts, records, tasks
from rq_impl.worker import PipelineWorker
from shared.settings import Settings


class CountingConnection(redis.Connection):
    """Counts what goes out: one send per command or per pipeline, i.e. one per round trip; not
    a new connection's handshake (HELLO, CLIENT SETINFO: how many depends on redis-py's version)."""

    sends = 0
    _handshaking = False

    def on_connect_check_health(self, check_health: bool = True) -> None:
        self._handshaking = True
        try:
            super().on_connect_check_health(check_health)
        finally:
            self._handshaking = False

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._handshaking:
            CountingConnection.sends += 1
        super().send_packed_command(command, check_health)


def _counting_client(settings: Settings) -> redis.Redis:
    client = redis.Redis.from_url(settings.redis_url)
    client.connection_pool.connection_class = CountingConnection
    return client


def _worker(client: redis.Redis, *queue_names: str) -> PipelineWorker:
    queues = [tasks.queue(name, client) for name in queue_names]
    return PipelineWorker(queues, connection=client, serializer=JSONSerializer)


def _enqueue(client: redis.Redis, n: int, **options: Any) -> list[Job]:
    compute = tasks.queue("compute", client)
    return [
        compute.enqueue_call(tasks.compute, args=(i, 3), **{**tasks.JOB_OPTIONS, **options}) for i in range(n)
    ]


def _after_finish(monkeypatch: pytest.MonkeyPatch, calls: int, action: Any) -> None:
    """Run ``action`` right after the ``calls``-th success script returned (its claim made)."""
    finish, done = records.finish, []

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        reply = finish(*args, **kwargs)
        done.append(1)
        if len(done) == calls:
            action()
        return reply

    monkeypatch.setattr(records, "finish", wrapped)


def test_jobs_keep_rqs_records_in_one_round_trip_each(settings: Settings, client: redis.Redis) -> None:
    n = 200
    jobs = _enqueue(client, n)
    counting = _counting_client(settings)
    worker = _worker(counting, "compute")
    CountingConnection.sends = 0
    worker.work(burst=True)
    # Stock RQ: ~11 per job plus the task's enqueue. Here: one success script per job, which also
    # holds the job's enqueue and starts the next job; setup and teardown aside.
    assert CountingConnection.sends <= n + 40, CountingConnection.sends
    for job in jobs:
        job.refresh()
        assert job.get_status() == JobStatus.FINISHED
        assert job.ended_at is not None and job.last_heartbeat is not None
    compute = tasks.queue("compute", client)
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
    assert client.ttl(child.dependencies_key) == -1
    _worker(client, "result").work(burst=True)
    assert child.get_status() == JobStatus.FINISHED
    assert 0 < client.ttl(child.dependencies_key) <= 30  # the result TTL, as RQ's cleanup gives it


def test_a_stop_after_a_claim_runs_the_claimed_job_then_stops(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, third = _enqueue(client, 3)
    worker = _worker(client, "compute")
    _after_finish(monkeypatch, 1, lambda: worker.request_stop(signal.SIGTERM, None))
    worker.work()  # not burst: only the stop ends it
    assert first.get_status() == JobStatus.FINISHED
    assert second.get_status() == JobStatus.FINISHED  # claimed and started before the stop
    assert third.get_status() == JobStatus.QUEUED
    compute = tasks.queue("compute", client)
    assert compute.job_ids == [third.id]
    assert compute.started_job_registry.count == 0
    assert client.llen(compute.intermediate_queue_key) == 0


def test_a_suspension_stops_the_claims(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = _enqueue(client, 4)
    _after_finish(monkeypatch, 1, lambda: suspend(client))
    _worker(client, "compute").work(burst=True)  # a suspended worker in burst mode quits
    statuses = [job.get_status() for job in jobs]
    assert statuses == [JobStatus.FINISHED, JobStatus.FINISHED, JobStatus.QUEUED, JobStatus.QUEUED]


def test_max_jobs_counts_every_job(client: redis.Redis) -> None:
    jobs = _enqueue(client, 3)
    _worker(client, "compute").work(burst=True, max_jobs=2)
    assert [job.get_status() for job in jobs] == [JobStatus.FINISHED, JobStatus.FINISHED, JobStatus.QUEUED]


def test_a_woken_worker_starts_with_the_fetch_and_skips_stale_ids(client: redis.Redis) -> None:
    compute = tasks.queue("compute", client)
    client.rpush(compute.key, "ghost")  # an id whose job hash is gone
    client.hset("rq:job:husk", "status", "queued")  # a hash RQ's fetch refuses (no data): skipped
    client.rpush(compute.key, "husk")
    job = compute.enqueue_call(tasks.compute, args=(2, 2), **{**tasks.JOB_OPTIONS, "timeout": 99})
    worker = _worker(client, "compute")
    before = time.time()
    dequeued = prestart.dequeue_and_start(worker, timeout=None)
    after = time.time()
    assert dequeued is not None and dequeued[0].id == job.id
    assert not client.exists("rq:job:ghost") and not client.exists("rq:executions:ghost")
    assert client.llen(compute.intermediate_queue_key) == 0
    assert job.get_status() == JobStatus.STARTED
    (entry, expires_at), *_ = client.zrange(compute.started_job_registry.key, 0, -1, withscores=True)
    assert entry.decode().startswith(f"{job.id}:")
    # Started at some instant in [before, after], to expire the heartbeat TTL later (99 s job timeout
    # + grace): bounded by the clock around the call, not by how long the checks above took.
    ttl = worker.get_heartbeat_ttl(job)
    assert ttl > 99 and before + ttl - 1 <= expires_at <= after + ttl + 1


def test_a_job_wakes_one_idle_worker_which_claims_it_in_the_same_round_trip(
    settings: Settings, client: redis.Redis
) -> None:
    """Two idle workers wait on the queue; a job wakes one, which starts it with the claim sent
    behind its wait; the other is not woken and times out as RQ's dequeue does."""
    workers = [_worker(redis.Redis.from_url(settings.redis_url), "compute") for _ in range(2)]
    outcomes: list[Any] = []

    def wait(worker: PipelineWorker) -> None:
        try:
            # 2 s: the job is enqueued right after both are seen blocked (a few commands); the wait
            # only has to outlast that. The idle worker's timeout, not a speed under test.
            outcomes.append(prestart.dequeue_and_start(worker, timeout=2))
        except DequeueTimeout:
            outcomes.append("timeout")

    threads = [threading.Thread(target=wait, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    compute = tasks.queue("compute", client)
    for _ in range(500):  # until both are blocked in the wait
        if sum(c["cmd"] == "blmove" for c in client.client_list()) == 2:
            break
        time.sleep(0.01)
    client.script_load(record_scripts.CLAIM)  # a cold script cache would count a NOSCRIPT try per claim
    client.config_resetstat()
    (job,) = _enqueue(client, 1)
    for thread in threads:
        thread.join()
    started = [outcome for outcome in outcomes if outcome != "timeout"]
    assert outcomes.count("timeout") == 1 and len(started) == 1
    assert started[0][0].id == job.id and job.get_status() == JobStatus.STARTED
    # One claim for the job, one at the other's timeout: that one was never woken before it.
    stats = client.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 2
    assert compute.count == 0 and compute.started_job_registry.count == 1
    assert not any(client.llen(prestart.hold_key("compute", w.name)) for w in workers)


def _wait_then_die(worker: PipelineWorker, client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's wait goes out and moves a job into its hold list; its claim never does."""

    def wait_then_die(args: Any, first: Any) -> Any:
        client.execute_command(*first)
        raise redis.ConnectionError("worker died")

    with monkeypatch.context() as patch:
        patch.setattr(worker.scripts, "claim", wait_then_die)
        with pytest.raises(redis.ConnectionError):
            prestart.dequeue_and_start(worker, timeout=1)


def test_a_job_left_in_a_dead_workers_hold_list_is_swept_back_to_the_queue(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    (job,) = _enqueue(client, 1)
    (other,) = _enqueue(client, 1)
    worker = _worker(client, "compute")
    worker.register_birth()
    _wait_then_die(worker, client, monkeypatch)
    compute, hold = tasks.queue("compute", client), prestart.hold_key("compute", worker.name)
    assert client.lrange(hold, 0, -1) == [job.id.encode()] and compute.job_ids == [other.id]
    swept = "rq:queue:compute:holds:swept"  # at most one sweep per grace: drop it to sweep again
    now = time.time()
    assert prestart.sweep_holds(client, "compute", 5, now=now) == 0  # seen once: a live one may hold
    client.delete(swept)
    assert prestart.sweep_holds(client, "compute", 5, now=now + 4) == 0  # not yet: within the grace
    client.delete(swept)
    assert prestart.sweep_holds(client, "compute", 5, now=now + 5) == 1
    assert compute.job_ids == [job.id, other.id] and client.llen(hold) == 0  # back at the head
    assert job.get_status() == JobStatus.QUEUED
    client.delete(worker.key)  # the dead worker's key expires: its empty hold list leaves the set
    client.delete(swept)
    prestart.sweep_holds(client, "compute", 5, now=now + 10)
    assert client.smembers(prestart.holds_key("compute")) == set()


def test_a_worker_that_lives_on_takes_what_its_hold_list_kept_on_its_next_wait(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    (job,) = _enqueue(client, 1)
    worker = _worker(client, "compute")
    _wait_then_die(worker, client, monkeypatch)  # its connection broke; the process did not
    dequeued = prestart.dequeue_and_start(worker, timeout=None)
    assert dequeued is not None and dequeued[0].id == job.id
    assert job.get_status() == JobStatus.STARTED
    assert client.llen(prestart.hold_key("compute", worker.name)) == 0


def test_a_claim_skips_ids_rq_would_skip(client: redis.Redis) -> None:
    (first,) = _enqueue(client, 1)
    compute = tasks.queue("compute", client)
    client.hset("rq:job:husk", "status", "queued")  # no data: RQ's fetch refuses it
    client.rpush(compute.key, "husk", "ghost")  # ghost: no hash at all
    (second,) = _enqueue(client, 1)
    assert compute.job_ids == [first.id, "husk", "ghost", second.id]
    _worker(client, "compute").work(burst=True)  # first claims past husk and ghost to second
    assert first.get_status() == second.get_status() == JobStatus.FINISHED
    assert compute.count == 0 and compute.started_job_registry.count == 0
    assert client.hget("rq:job:husk", "status") == b"queued"


def test_a_job_is_registered_under_its_origin_as_rq_does(client: redis.Redis) -> None:
    (job,) = _enqueue(client, 1)  # origin "compute"
    client.lmove("rq:queue:compute", "rq:queue:elsewhere", "LEFT", "RIGHT")
    _worker(client, "elsewhere").work(burst=True)
    assert job.get_status() == JobStatus.FINISHED
    assert client.zcard("rq:wip:elsewhere") == client.zcard("rq:wip:compute") == 0
    assert client.zrange("rq:finished:compute", 0, -1) == [job.id.encode()]


def test_jobs_of_another_timeout_run_and_finish(settings: Settings, client: redis.Redis) -> None:
    jobs = _enqueue(client, 4, timeout=10)
    jobs += _enqueue(client, 4, timeout=20)
    _worker(client, "compute").work(burst=True)
    for job in jobs:
        job.refresh()
        assert job.get_status() == JobStatus.FINISHED
        assert job.worker_name and job.started_at and job.ended_at
    assert tasks.queue("compute", client).started_job_registry.count == 0
    assert client.llen("rq:queue:result") == 8


def test_a_stop_requested_while_waiting_lets_the_dequeued_job_run(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    (job,) = _enqueue(client, 1)
    worker = _worker(client, "compute")
    dequeue = worker._dequeue

    def sigterm_during_blmove(timeout: int | None) -> Any:
        worker.request_stop(signal.SIGTERM, None)  # what the handler does while BLMOVE waits
        return dequeue(timeout)

    monkeypatch.setattr(worker, "_dequeue", sigterm_during_blmove)
    worker.work()
    assert job.get_status() == JobStatus.FINISHED
    assert client.llen(tasks.queue("compute", client).intermediate_queue_key) == 0
    assert client.llen("rq:queue:result") == 1
