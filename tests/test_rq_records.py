"""The records our scripts write are RQ's: the same keys and fields as RQ's own worker leaves, read
back by RQ's own readers; and a job's outputs are written with its success, or not at all."""

from __future__ import annotations

import re
import time

import pytest
import redis
from redis.exceptions import NoScriptError
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus, get_current_job
from rq.registry import FinishedJobRegistry, StartedJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer

from rq_impl import outbox, prestart, records, tasks
from rq_impl.lifecycle import LeanLifecycle
from rq_impl.worker import PipelineWorker
from shared.direct import call_scripts


def enqueue_then_fail() -> None:
    """A job that writes an output, then fails: its output must not be written."""
    tasks.handle_result.delay(1, 2, 2)
    raise ValueError("failed after enqueueing")


def enqueue_and_return() -> int:
    tasks.handle_result.delay(3, 4, 12)
    return 12


#: What ``record_started`` saw while it ran: the started job's layout.
STARTED: list[dict[str, object]] = []


def record_started(x: int, y: int) -> int:
    """A job that records what its start left in Redis, as seen from inside the running job."""
    job = get_current_job()
    assert job is not None
    (composite,) = job.connection.zrange(f"rq:wip:{job.origin}", 0, -1)
    names = {job.id: "JOB", str(job.worker_name): "WORKER", composite.decode().split(":")[1]: "EXEC"}
    names |= {done.decode(): "DONE" for done in job.connection.zrange(f"rq:finished:{job.origin}", 0, -1)}
    names |= {queued.decode(): "QUEUED" for queued in job.connection.lrange(f"rq:queue:{job.origin}", 0, -1)}
    STARTED.append(_layout(job.connection, names))
    return x * y


#: Keys that are ours, not RQ's: the woken worker's hold lists and their sweep (rq_impl.prestart).
OURS = re.compile(r":hold:|:holds(:|$)")


def _layout(client: redis.Redis, names: dict[str, str]) -> dict[str, object]:
    """Every ``rq:`` key, with ``names`` (ids) replaced by placeholders, and the fields of each."""
    pattern = re.compile("|".join(map(re.escape, names)))

    def named(text: bytes) -> str:
        return pattern.sub(lambda m: names[m.group()], text.decode())

    layout: dict[str, object] = {}
    for key in client.keys("rq:*"):
        if OURS.search(key.decode()):
            continue
        kind = client.type(key).decode()
        shape: object = kind
        if kind == "hash":
            shape = sorted(named(f) for f in client.hkeys(key))
        elif kind in ("zset", "set"):
            members = client.zrange(key, 0, -1) if kind == "zset" else client.smembers(key)
            shape = sorted(named(m) for m in members)
        elif kind == "stream":
            shape = sorted(f.decode() for f in client.xrange(key)[-1][1])
        layout[named(key)] = shape
    return layout


def _finished_layout(client: redis.Redis, job: Job) -> dict[str, object]:
    result = Result.fetch_latest(job, serializer=JSONSerializer)
    assert result is not None and result.execution_id
    names = {done.decode(): "DONE" for done in client.zrange(f"rq:finished:{job.origin}", 0, -1)}
    return _layout(client, names | {job.id: "JOB", "w1": "WORKER", result.execution_id: "EXEC"})


def _run(
    client: redis.Redis, worker_class: type[SimpleWorker], func: object, *args: object, jobs: int = 1
) -> Job:
    """Run ``jobs`` jobs of ``func(*args)`` on a fresh database; the last one, as Redis has it."""
    client.flushdb()
    queue = Queue("jobs", connection=client, serializer=JSONSerializer)
    ids = [queue.enqueue_call(func, args=args, result_ttl=30, timeout=10).id for _ in range(jobs)]
    worker_class([queue], connection=client, serializer=JSONSerializer, name="w1").work(burst=True)
    return Job.fetch(ids[-1], connection=client, serializer=JSONSerializer)


def test_a_job_leaves_what_rqs_own_worker_leaves(client: redis.Redis) -> None:
    """Started (seen from inside the job; the second one started by its predecessor's success
    script here) and finished: the same keys, fields and members."""
    STARTED.clear()
    stock = _run(client, SimpleWorker, "tests.test_rq_records.record_started", 6, 7, jobs=2)
    stock_finished = _finished_layout(client, stock)
    stock_worker = {k.decode() for k in client.hkeys("rq:worker:w1")}
    stock_result = stock.latest_result()
    lean = _run(client, LeanLifecycle, "tests.test_rq_records.record_started", 6, 7, jobs=2)
    assert len(STARTED) == 4 and "rq:execution:JOB:EXEC" in STARTED[0] and "rq:job:DONE" in STARTED[1]
    assert STARTED[2:] == STARTED[:2]
    assert _finished_layout(client, lean) == stock_finished
    assert {k.decode() for k in client.hkeys("rq:worker:w1")} == stock_worker
    assert lean.get_status() == stock.get_status(refresh=False) == JobStatus.FINISHED
    assert lean.started_at and lean.ended_at and lean.worker_name == stock.worker_name == "w1"
    result = lean.latest_result()
    assert stock_result is not None and stock_result.return_value == 42
    assert result is not None and result.type == Result.Type.SUCCESSFUL and result.return_value == 42
    assert 0 < client.ttl(lean.key) <= 30
    worker = client.hgetall("rq:worker:w1")
    assert worker[b"successful_job_count"] == b"2" and float(worker[b"total_working_time"]) > 0
    assert worker[b"state"] == b"idle"
    assert lean.id in FinishedJobRegistry("jobs", connection=client)
    assert StartedJobRegistry("jobs", connection=client).count == 0


def test_a_job_started_by_script_and_abandoned_is_found_and_retried(client: redis.Redis) -> None:
    compute = tasks.queue("compute", client)
    job = compute.enqueue_call(tasks.compute, args=(2, 3), **tasks.JOB_OPTIONS)
    worker = PipelineWorker([compute], connection=client, serializer=JSONSerializer)
    assert prestart.dequeue_and_start(worker, timeout=None) is not None
    registry = compute.started_job_registry
    assert registry.get_job_ids() == [job.id]
    # The worker dies here. Once the start's TTL (timeout + grace) has passed:
    registry.cleanup(timestamp=time.time() + worker.get_heartbeat_ttl(job) + 1)
    assert registry.count == 0
    assert job.get_status() == JobStatus.QUEUED and compute.job_ids == [job.id]  # Retry(max=3)


def test_a_success_sent_again_returns_the_job_it_claimed_and_claims_no_other(client: redis.Redis) -> None:
    """A round trip resent whole (a lost connection, or a ``WAIT`` too few replicas answered:
    ``PIPELINE_MIN_REPLICAS``) runs the success script twice with the same stamp: the second run
    returns the job the first one claimed and started, and leaves the next one queued."""
    queue = Queue("jobs", connection=client, serializer=JSONSerializer)
    first, second, third = (queue.enqueue_call("operator.mul", args=(i, 2), result_ttl=30) for i in range(3))
    worker = LeanLifecycle([queue], connection=client, serializer=JSONSerializer, name="w1")
    claim = records.claim_next(worker, ["jobs"])
    assert claim is not None and claim.job_id == first.id
    job, execution = records.started(worker, claim.job_id, claim.flat, claim.ttl, claim.stamp)
    job.ended_at = job.started_at
    claiming, stamp = records.claim_args(worker, ["jobs"])
    args = [*records.success_args(worker, job, execution, 30, "", [], []), *claiming]
    replies = [worker.scripts.finish(args) for _ in range(2)]
    claims = [records.parse_claim(reply[1:], stamp) for reply in replies]
    assert [c.job_id if c else None for c in claims] == [second.id, second.id]
    assert [c.queue_name if c else None for c in claims] == ["jobs", "jobs"]
    assert claims[0] is not None and claims[1] is not None and claims[1].ttl == claims[0].ttl
    assert queue.job_ids == [third.id]
    assert StartedJobRegistry("jobs", connection=client).get_job_ids() == [second.id]
    assert second.get_status() == JobStatus.STARTED and third.get_status() == JobStatus.QUEUED


def test_the_scripts_are_loaded_again_after_redis_forgot_them(client: redis.Redis) -> None:
    """A Redis restarted without persistence has an empty script cache: the start and the
    success scripts, called on the worker's kept connection, load themselves again."""
    client.flushdb()
    queue = Queue("jobs", connection=client, serializer=JSONSerializer)
    first = queue.enqueue_call("operator.mul", args=(6, 7), result_ttl=30, timeout=10)
    worker = LeanLifecycle([queue], connection=client, serializer=JSONSerializer, name="w1")
    client.script_flush()
    worker.work(burst=True)
    second = queue.enqueue_call("operator.mul", args=(2, 3), result_ttl=30, timeout=10)
    client.script_flush()
    worker.work(burst=True)
    assert first.get_status() == second.get_status() == JobStatus.FINISHED
    assert first.return_value() == 42 and second.return_value() == 6


def test_a_batch_of_script_calls_loads_the_script_again_and_keeps_each_reply(client: redis.Redis) -> None:
    """``call_scripts`` (held successes recorded in one round trip) on an empty script cache: the
    calls the script never ran for are sent again once it is loaded; an error stays in its place."""
    kept = redis.Redis(connection_pool=client.connection_pool, single_connection_client=True)
    script = kept.register_script("return redis.call('INCR', KEYS[1])")
    client.script_flush()
    replies = call_scripts(kept, script, [(["n"], []), ([], []), (["n"], [])])
    assert replies[0] == 1 and replies[2] == 2
    assert isinstance(replies[1], redis.ResponseError) and not isinstance(replies[1], NoScriptError)
    kept.close()


def test_outputs_are_written_with_the_success_or_not_at_all(client: redis.Redis) -> None:
    failed = _run(client, LeanLifecycle, "tests.test_rq_records.enqueue_then_fail")
    assert failed.get_status() == JobStatus.FAILED
    assert client.llen("rq:queue:result") == 0
    done = _run(client, LeanLifecycle, "tests.test_rq_records.enqueue_and_return")
    assert done.get_status() == JobStatus.FINISHED
    assert client.llen("rq:queue:result") == 1


def test_a_job_over_its_timeout_fails_as_with_rqs_own_alarm(client: redis.Redis) -> None:
    queue = Queue("jobs", connection=client, serializer=JSONSerializer)
    slow = queue.enqueue_call("time.sleep", args=(3,), timeout=1)
    after = queue.enqueue_call("operator.mul", args=(6, 7), timeout=1)
    LeanLifecycle([queue], connection=client, serializer=JSONSerializer).work(burst=True)
    assert slow.get_status() == JobStatus.FAILED
    result = slow.latest_result()
    assert result is not None and "JobTimeoutException" in (result.exc_string or "")
    assert after.get_status() == JobStatus.FINISHED  # the alarm is cleared for the next job


def test_only_data_commands_are_held_back(client: redis.Redis) -> None:
    box = outbox.open_for(client)
    try:
        box.pipeline.rpush("rq:queue:x", "1")
        assert box.commands() == [("RPUSH", "rq:queue:x", "1")]
        box.pipeline.eval("return 1", 0)
        with pytest.raises(TypeError, match="EVAL cannot be held back"):
            box.commands()
    finally:
        outbox.close()


def test_a_job_class_with_its_own_key_prefix_is_refused(client: redis.Redis) -> None:
    class OtherJob(Job):
        redis_job_namespace_prefix = "other:job:"

    with pytest.raises(ValueError, match="key layout under RQ_KEY_PREFIX"):
        LeanLifecycle(["jobs"], connection=client, job_class=OtherJob)


def test_outside_a_worker_tasks_write_at_once(client: redis.Redis) -> None:
    assert outbox.current() is None
    tasks.handle_result(6, 7, 42)
    assert tasks.store.get(6, 7) == 42
    tasks.compute.delay(2, 5)
    assert client.llen("rq:queue:compute") == 1
