"""Malformed messages written straight into a stack's queues, and how many it accounted for.

Each stack stores a message differently, so each has a writer and a counter here; the kinds are
the same for all: garbage bytes, wrong types, wrong arity, unknown task names, one 10 MB payload,
and one pickle payload that would create ``marker`` if anything ever unpickled it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dramatiq
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from shared.backend import Backend

KINDS = ("garbage", "types", "arity", "unknown")
BIG = 10 * 1024 * 1024


def pickle_bomb(marker: Path) -> bytes:
    """Protocol-0 pickle bytes that call ``os.system("touch <marker>")`` when unpickled.

    Written out by hand: the project itself never imports pickle."""
    return b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."


@dataclass
class PoisonPlan:
    """``count`` messages per queue, cycling through KINDS, plus one big and one pickle message."""

    queues: Sequence[str]
    count: int
    marker: Path

    def kinds(self) -> list[str]:
        cycle = [KINDS[i % len(KINDS)] for i in range(max(0, self.count - 2))]
        return [*cycle, "big", "pickle"][: self.count]


@dataclass
class PoisonTally:
    injected: int = 0
    accounted: int | None = 0  # None: the stack has no dead-letter store to count in
    missing_reasons: int = 0
    ids: list[tuple[str, str]] = field(default_factory=list)  # (queue, id)


def _args(kind: str, task: str) -> tuple[str, list[Any]]:
    arity = 2 if task == "compute" else 3
    if kind == "types":
        return task, ["a"] * arity
    if kind == "arity":
        return task, [1]
    if kind == "unknown":
        return "no_such_task", [1, 2]
    return task, ["x" * BIG] + [1] * (arity - 1)  # big


def _task_of(queue: str) -> str:
    return "compute" if queue == "compute" else "handle_result"


# --- Dramatiq: message id in the queue list, bytes in <queue>.msgs -------------------------------


def _dramatiq_inject(backend: Any, plan: PoisonPlan) -> PoisonTally:
    client, ns = backend.broker.client, backend.broker.namespace
    tally = PoisonTally()
    for queue in plan.queues:
        pipe = client.pipeline(transaction=False)
        for kind in plan.kinds():
            if kind == "garbage":
                data = b"\x00\xff\xfe not json " + uuid.uuid4().bytes
            elif kind == "pickle":
                data = pickle_bomb(plan.marker)
            else:
                name, args = _args(kind, _task_of(queue))
                actor = name if kind == "unknown" else f"tasks.{name}"  # the seed's task names
                data = dramatiq.Message(
                    queue_name=queue, actor_name=actor, args=tuple(args), kwargs={}, options={}
                ).encode()
            redis_id = str(uuid.uuid4())
            pipe.hset(f"{ns}:{queue}.msgs", redis_id, data)
            pipe.rpush(f"{ns}:{queue}", redis_id)
            tally.ids.append((queue, redis_id))
        pipe.execute()
    tally.injected = len(tally.ids)
    return tally


def _dramatiq_count(backend: Any, tally: PoisonTally) -> None:
    client, ns = backend.broker.client, backend.broker.namespace
    tally.accounted, tally.missing_reasons = 0, 0
    for queue, redis_id in tally.ids:
        if client.zscore(f"{ns}:{queue}.XQ", redis_id) is not None:
            tally.accounted += 1
            tally.missing_reasons += not client.hexists(f"{ns}:{queue}.XQ.reasons", redis_id)


# --- RQ: job id in rq:queue:<queue>, job hash rq:job:<id> ----------------------------------------


def _rq_inject(backend: Any, plan: PoisonPlan) -> PoisonTally:
    client = backend.connection
    tally = PoisonTally()
    for queue_name in plan.queues:
        queue = Queue(queue_name, connection=client, serializer=JSONSerializer)
        for kind in plan.kinds():
            job_id = f"poison-{uuid.uuid4()}"
            if kind in ("garbage", "pickle"):
                data = pickle_bomb(plan.marker) if kind == "pickle" else b"\x00\xff\xfe not json"
                client.hset(
                    f"rq:job:{job_id}", mapping={"data": data, "status": "queued", "origin": queue_name}
                )
                client.rpush(f"rq:queue:{queue_name}", job_id)
            else:
                func, args = _args(kind, _task_of(queue_name))
                queue.enqueue_call(f"rq_impl.tasks.{func}", args=tuple(args), job_id=job_id, result_ttl=0)
            tally.ids.append((queue_name, job_id))
    tally.injected = len(tally.ids)
    return tally


def _rq_count(backend: Any, tally: PoisonTally) -> None:
    client = backend.connection
    tally.accounted, tally.missing_reasons = 0, 0
    failed = {
        q: set(FailedJobRegistry(q, connection=client, serializer=JSONSerializer).get_job_ids())
        for q in {q for q, _ in tally.ids}
    }
    for queue, job_id in tally.ids:
        if job_id in failed[queue]:
            tally.accounted += 1
            result = Job.fetch(job_id, connection=client, serializer=JSONSerializer).latest_result()
            tally.missing_reasons += not (result and result.exc_string)


# --- Celery: messages on the tasks exchange (RabbitMQ or Redis); rejected ones are dropped, not kept


def _celery_inject(backend: Any, plan: PoisonPlan) -> PoisonTally:
    from benchmarks.celery_app import own

    seed = backend.seed  # the backend's app: its exchange on its broker
    tally = PoisonTally(accounted=None)
    keys = {"compute": "compute.a_result", "result": "result.handle"}
    with seed.app.producer_or_acquire() as producer:
        for queue in plan.queues:
            for kind in plan.kinds():
                task_id = str(uuid.uuid4())
                task = "tasks." + _task_of(queue)
                headers = {"task": task, "id": task_id, "lang": "py"}
                if kind in ("garbage", "pickle"):
                    body = pickle_bomb(plan.marker) if kind == "pickle" else b"\x00\xff\xfe not json"
                    ctype = "application/x-python-serialize" if kind == "pickle" else "application/json"
                    producer.publish(
                        body, exchange=seed.exchange.name, routing_key=keys[queue], headers=headers,
                        content_type=ctype, content_encoding="binary",
                    )  # fmt: skip
                else:
                    name, args = _args(kind, _task_of(queue))
                    seed.app.send_task(
                        f"tasks.{name}",
                        args=args,
                        queue=own(queue),
                        routing_key=keys[queue],
                        producer=producer,
                    )
                tally.ids.append((queue, task_id))
    tally.injected = len(tally.ids)
    return tally


def _not_kept(backend: Any, tally: PoisonTally) -> None:
    """A stack that keeps no failed message: nothing to count them in."""
    tally.accounted = None


# --- Huey: messages pushed onto the Huey instance's list; a failed one is logged and dropped ------


def _huey_inject(backend: Any, plan: PoisonPlan) -> PoisonTally:
    from huey.registry import Message

    tally = PoisonTally(accounted=None)
    for queue in plan.queues:
        role = backend.role(queue)
        huey, task = backend.pair.hueys[role], backend.pair.task_names[role]
        pipe = huey.storage.conn.pipeline(transaction=False)
        for kind in plan.kinds():
            task_id = str(uuid.uuid4())
            if kind in ("garbage", "pickle"):
                data = pickle_bomb(plan.marker) if kind == "pickle" else b"\x00\xff\xfe not json"
            else:
                name, args = _args(kind, _task_of(queue))
                message = Message(task_id, name if kind == "unknown" else task, args=args, kwargs={})
                data = huey.serializer.serialize(message)
            pipe.lpush(huey.storage.queue_key, data)
            tally.ids.append((queue, task_id))
        pipe.execute()
    tally.injected = len(tally.ids)
    return tally


@dataclass(frozen=True)
class PoisonWriter:
    inject: Callable[[Any, PoisonPlan], PoisonTally]
    count: Callable[[Any, PoisonTally], None]


#: Backend name -> how to poison it. The chaos runner looks stacks up here, nowhere else.
WRITERS: dict[str, PoisonWriter] = {
    "dramatiq": PoisonWriter(_dramatiq_inject, _dramatiq_count),
    "rq": PoisonWriter(_rq_inject, _rq_count),
    "celery-rabbitmq": PoisonWriter(_celery_inject, _not_kept),
    "celery-redis": PoisonWriter(_celery_inject, _not_kept),
    "huey": PoisonWriter(_huey_inject, _not_kept),
}


def unwrap(backend: Backend) -> Backend:
    """The adapter's own backend under a stock or chunked profile (``benchmarks.stacks.Wrapped``)."""
    return getattr(backend, "inner", backend)


def writer_for(backend: Backend) -> PoisonWriter | None:
    return WRITERS.get(unwrap(backend).name)
