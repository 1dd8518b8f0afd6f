"""RQ jobs written from a template (rq_impl.job_template) are RQ's own: the same hash, field by
field, as ``enqueue_call`` writes, read back by ``Job.fetch``, ``rq info`` and our ``status``, and
run by stock ``rq worker`` (forking and ``SimpleWorker``) and by ``PipelineWorker``."""

from __future__ import annotations

import os
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from rq_impl import tasks
from rq_impl.job_template import JobTemplate
from shared.backend import load_chunking_backend
from shared.settings import Settings
from shared.tasks import Grid, InvalidArguments
from tests.helpers import wait_until, workers
from tests.test_ops import RQ_CLI, queues, rq_info, status_json

#: Each task with arguments of its shape, on its own queue.
CALLS: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
    (tasks.compute, (6, -7)),
    (tasks.handle_result, (6, -7, -42)),
    (tasks.compute_chunk, ([[x, y] for x in range(20) for y in range(5)],)),
    (tasks.handle_results, ([[x, 3, 3 * x] for x in range(40)],)),
]
IDS = [fn.__name__ for fn, _ in CALLS]
#: Differ between any two jobs, even of the same call.
STAMPS = {b"created_at", b"enqueued_at"}


def queue_of(fn: Any, client: redis.Redis) -> Queue:
    """The task's own queue (as routed), on the test's client."""
    return tasks.queue(fn.template.queue.name, client)


def rq_writes(queue: Queue, fn: Callable[..., None], args: tuple[Any, ...], **options: Any) -> str:
    """What RQ's own ``enqueue_call`` writes for the call (as the code before the template did)."""
    with queue.connection.pipeline() as pipe:
        job = queue.enqueue_call(fn, args=args, pipeline=pipe, **{**tasks.JOB_OPTIONS, **options})
        pipe.execute()
    return job.id


def template_writes(way: str, template: JobTemplate, args: tuple[Any, ...]) -> str:
    if way == "add":
        with template.queue.connection.pipeline() as pipe:
            job_id = template.add(pipe, args)
            pipe.execute()
        return job_id
    if way == "write":
        return template.write(args)
    assert template.write_many([args]) == 1
    return template.queue.get_job_ids()[-1]


def same_hash(client: redis.Redis, ours: str, theirs: str) -> None:
    """Same fields, same values but the two timestamps (which are well-formed), same encoding
    and, where the encoding keeps one (listpack), the same order; same TTL or none."""
    mine, rqs = client.hgetall(f"rq:job:{ours}"), client.hgetall(f"rq:job:{theirs}")
    assert mine[b"created_at"] == mine[b"enqueued_at"] and mine[b"created_at"].endswith(b"Z")
    encoding = client.object("encoding", f"rq:job:{ours}")
    assert encoding == client.object("encoding", f"rq:job:{theirs}")
    if encoding == b"listpack":
        assert list(mine) == list(rqs)
    for stamp in STAMPS:
        assert len(mine.pop(stamp)) == len(rqs.pop(stamp))
    assert mine == rqs
    assert (client.ttl(f"rq:job:{ours}") > 0) == (client.ttl(f"rq:job:{theirs}") > 0)


@pytest.mark.parametrize("way", ["add", "write", "write_many"])
@pytest.mark.parametrize(("fn", "args"), CALLS, ids=IDS)
def test_the_hash_is_what_enqueue_call_writes(
    way: str, fn: Callable[..., None], args: tuple[Any, ...], client: redis.Redis
) -> None:
    queue = queue_of(fn, client)
    template = JobTemplate(queue, fn, tasks.JOB_OPTIONS)
    ours = template_writes(way, template, args)
    theirs = rq_writes(queue, fn, args)
    same_hash(client, ours, theirs)
    assert queue.get_job_ids() == [ours, theirs]
    assert client.smembers("rq:queues") == {queue.key.encode()}
    data = zlib.decompress(client.hget(f"rq:job:{ours}", "data") or b"")
    assert JSONSerializer.loads(data) == [f"rq_impl.tasks.{fn.__name__}", None, list(args), {}]

    mine, rqs = (Job.fetch(i, connection=client, serializer=JSONSerializer) for i in (ours, theirs))
    for attribute in ("func_name", "args", "kwargs", "timeout", "retries_left", "retry_intervals"):
        assert getattr(mine, attribute) == getattr(rqs, attribute), attribute
    for attribute in ("result_ttl", "failure_ttl", "ttl", "origin", "description", "meta"):
        assert getattr(mine, attribute) == getattr(rqs, attribute), attribute
    assert mine.get_status() == rqs.get_status() == JobStatus.QUEUED
    assert (mine.timeout, mine.retries_left, mine.result_ttl, mine.origin) == (10, 3, 30, queue.name)


def test_a_ttl_expires_the_job_as_rq_does(client: redis.Redis) -> None:
    queue = queue_of(tasks.compute, client)
    template = JobTemplate(queue, tasks.compute, {**tasks.JOB_OPTIONS, "ttl": 600})
    theirs = rq_writes(queue, tasks.compute, (1, 2), ttl=600)
    for way in ("add", "write", "write_many"):
        ours = template_writes(way, template, (1, 2))
        same_hash(client, ours, theirs)
        assert 0 < client.ttl(f"rq:job:{ours}") <= 600


def test_delay_returns_the_job_enqueue_call_returns(client: redis.Redis) -> None:
    ours = tasks.compute.delay(6, 7)
    theirs = tasks.compute.template.queue.enqueue_call(tasks.compute, args=(6, 7), **tasks.JOB_OPTIONS)
    stamps = {"created_at", "enqueued_at"}
    assert {k: v for k, v in ours.to_dict().items() if k not in stamps} == {
        k: v for k, v in theirs.to_dict().items() if k not in stamps
    }
    for attribute in ("func_name", "args", "kwargs", "origin", "description", "connection", "serializer"):
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert type(ours) is type(theirs) and len(ours.id) == len(theirs.id)
    assert ours.get_status() == JobStatus.QUEUED and ours.created_at == ours.enqueued_at
    assert Job.fetch(ours.id, connection=client, serializer=JSONSerializer).args == [6, 7]
    ours.meta["mine"] = 1  # its containers are its own, not the template's
    assert tasks.compute.delay(1, 1).meta == {}
    same_hash(client, ours.id, theirs.id)


def test_a_template_refuses_what_it_cannot_reproduce(client: redis.Redis) -> None:
    queue = queue_of(tasks.compute, client)
    with pytest.raises(ValueError, match="cannot reproduce depends_on"):
        JobTemplate(queue, tasks.compute, {**tasks.JOB_OPTIONS, "depends_on": "x"})
    with pytest.raises(ValueError, match="JSON serializer"):
        JobTemplate(Queue("compute", connection=client), tasks.compute, tasks.JOB_OPTIONS)


def test_bulk_jobs_are_pushed_in_order_and_counted(settings: Settings, client: redis.Redis) -> None:
    backend = load_chunking_backend("rq", settings)
    grid = Grid(50, 51)  # 2,550 points: three batches
    assert backend.submit_many(grid.points()) == grid.size
    ids = client.lrange("rq:queue:compute", 0, -1)
    jobs = Job.fetch_many([i.decode() for i in ids], connection=client, serializer=JSONSerializer)
    assert [tuple(job.args) for job in jobs if job] == list(grid.points())
    assert rq_info(settings)[0]["compute"]["depth"] == grid.size
    assert queues(status_json(settings, "rq"))["compute"]["depth"] == grid.size


def test_jobs_are_written_after_redis_forgets_the_script(settings: Settings, client: redis.Redis) -> None:
    backend = load_chunking_backend("rq", settings)
    backend.submit_many([(1, 1)])
    client.script_flush()  # what a restarted Redis knows of it
    job = tasks.compute.delay(2, 2)
    client.script_flush()
    assert backend.submit_many([(3, 3), (4, 4)]) == 2
    ids = [i.decode() for i in client.lrange("rq:queue:compute", 0, -1)]
    assert ids[1] == job.id
    jobs = Job.fetch_many(ids, connection=client, serializer=JSONSerializer)
    assert [j.args for j in jobs if j] == [[1, 1], [2, 2], [3, 3], [4, 4]]


def test_bad_input_refuses_the_whole_call(settings: Settings, client: redis.Redis) -> None:
    backend = load_chunking_backend("rq", settings)
    points = [*Grid(50, 50).points(), (1, 2_000_000)]  # the bad point after more than a batch
    with pytest.raises(InvalidArguments, match=r"^calls\[2500\]: compute\(\): y: Input should be less than"):
        backend.submit_many(points)
    with pytest.raises(InvalidArguments, match=r"^calls\[1250\]: compute_chunk\(\): points\[0\]\[1\]: Input"):
        backend.submit_chunks(points, size=2)
    with pytest.raises(InvalidArguments, match=r"^handle_result\(\): x: Input should be a valid integer"):
        tasks.handle_result.delay(None, 1, 1)
    assert client.dbsize() == 0


def submit_some(settings: Settings) -> tuple[Any, list[tuple[int, int]]]:
    """Four per-point jobs and a chunk of two, written from templates."""
    backend = load_chunking_backend("rq", settings)
    backend.submit_many([(1, 2), (3, 4)])
    backend.submit(5, 6)
    tasks.compute.delay(-7, 8)
    backend.submit_chunks([(9, 10), (11, -12)], size=2)
    return backend, [(1, 2), (3, 4), (5, 6), (-7, 8), (9, 10), (11, -12)]


@pytest.mark.slow
@pytest.mark.parametrize("worker_class", [None, "rq.worker.SimpleWorker"], ids=["forking", "SimpleWorker"])
def test_stock_rq_worker_runs_written_jobs(
    worker_class: str | None, settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    backend, points = submit_some(settings)
    compute_ids = [i.decode() for i in client.lrange("rq:queue:compute", 0, -1)]
    command = [RQ_CLI, "worker", "--burst", "--serializer", "json", "compute", "result"]
    if worker_class:
        command[2:2] = ["--worker-class", worker_class]
    env = {**os.environ, "REDIS_URL": settings.redis_url}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {p: backend.store.get(*p) for p in points} == {(x, y): x * y for x, y in points}
    statuses = {Job.fetch(i, connection=client, serializer=JSONSerializer).get_status() for i in compute_ids}
    assert statuses == {JobStatus.FINISHED}
    assert sum(backend.queue_depths().values()) == 0


@pytest.mark.slow
def test_pipeline_worker_runs_written_jobs(settings: Settings, client: redis.Redis, tmp_path: Path) -> None:
    backend, points = submit_some(settings)
    with workers(backend, tmp_path, ["compute"], ["result"]):
        assert wait_until(lambda: backend.store.count() == len(points))
    assert {p: backend.store.get(*p) for p in points} == {(x, y): x * y for x, y in points}
    assert sum(backend.queue_depths().values()) == 0
