"""Malformed messages written straight into Redis end in the dead-letter queue / failed registry
with their reason, while the worker keeps serving the valid message behind them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import dramatiq
import pytest
import redis
from rq import Callback, Queue
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from shared.backend import load_backend
from shared.settings import Settings
from tests.helpers import wait_until, workers

pytestmark = pytest.mark.slow


def test_dramatiq_dead_letters_poison_and_keeps_serving(
    settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    def push(data: bytes) -> str:
        redis_id = str(uuid.uuid4())
        client.hset("dramatiq:compute.msgs", redis_id, data)
        client.rpush("dramatiq:compute", redis_id)
        return redis_id

    def message(actor: str, args: list[object]) -> bytes:
        return dramatiq.Message(
            queue_name="compute", actor_name=actor, args=tuple(args), kwargs={}, options={}
        ).encode()

    poison = {
        push(b"\x00\xff garbage bytes"): "DecodeError",
        push(json.dumps({"not": "a message"}).encode()): "DecodeError",
        push(message("tasks.compute", [1])): "InvalidArguments: compute(): missing a required argument: 'y'",
        push(
            message("tasks.compute", ["a", 2])
        ): "InvalidArguments: compute(): x: Input should be a valid integer",
        push(message("compute", [1, 2])): "ActorNotFound",
        push(message("tasks.compute_chunk", [[[0, 1], [1, "b"]]])): (
            "InvalidArguments: compute_chunk(): points[1][1]: Input should be a valid integer"
        ),
        push(message("tasks.compute_chunk", ["not points"])): (
            "InvalidArguments: compute_chunk(): points: Input should be a valid array"
        ),
    }
    backend = load_backend("dramatiq", settings)
    with workers(backend, tmp_path, ["compute", "result"]):
        backend.submit(6, 7)
        assert wait_until(lambda: backend.store.get(6, 7) == 42)
        assert wait_until(lambda: client.zcard("dramatiq:compute.XQ") == len(poison))
        reasons = {k.decode(): v.decode() for k, v in client.hgetall("dramatiq:compute.XQ.reasons").items()}
    for redis_id, reason in poison.items():
        assert reason in reasons[redis_id]
    assert client.llen("dramatiq:compute") == 0
    assert backend.store.count() == 1


def test_rq_fails_poison_into_the_registry_and_keeps_serving(
    settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    queue = Queue("compute", connection=client, serializer=JSONSerializer)
    client.hset(
        "rq:job:garbage", mapping={"data": b"\x00\xff garbage", "status": "queued", "origin": "compute"}
    )
    client.rpush("rq:queue:compute", "garbage")
    poison = {
        "garbage": "DeserializationError",
        "arity": "InvalidArguments: compute(): missing a required argument: 'y'",
        "types": "InvalidArguments: compute(): x: Input should be a valid integer",
        "unknown": "'rq_impl.tasks.nope' is not a pipeline task",
        "shell": "'os.system' is not a pipeline task",
        "chunk": "InvalidArguments: compute_chunk(): points[1][1]: Input should be a valid integer",
        "callback": "callback 'os.system' is not in a module of pipeline tasks",
    }
    queue.enqueue_call("rq_impl.tasks.compute", args=(1,), job_id="arity")
    queue.enqueue_call("rq_impl.tasks.compute", args=("a", 2), job_id="types")
    queue.enqueue_call("rq_impl.tasks.nope", args=(1, 2), job_id="unknown")
    queue.enqueue_call("rq_impl.tasks.compute_chunk", args=([[0, 1], [1, "b"]],), job_id="chunk")
    marker = tmp_path / "must-not-exist"
    queue.enqueue_call("os.system", args=(f"touch {marker}",), job_id="shell")
    queue.enqueue_call(
        "rq_impl.tasks.compute", args=(1, 2), job_id="callback", on_success=Callback("os.system")
    )
    backend = load_backend("rq", settings)
    registry = FailedJobRegistry("compute", connection=client, serializer=JSONSerializer)
    with workers(backend, tmp_path, ["compute", "result"]):
        backend.submit(6, 7)
        assert wait_until(lambda: backend.store.get(6, 7) == 42)
        assert wait_until(lambda: len(registry) == len(poison))
    for job_id, reason in poison.items():
        result = Job.fetch(job_id, connection=client, serializer=JSONSerializer).latest_result()
        assert result is not None and reason in (result.exc_string or "")
    assert backend.store.count() == 1
    assert not marker.exists()
