"""The seed's two tasks on Huey: ``huey_consumer benchmarks.huey_app.compute_huey`` (or ``result_huey``).

Huey has one queue per Huey instance, so the seed's compute and result queues are two ``RedisHuey``
instances, named after this run (``PREFIX``: the keys are ``huey.redis.<prefix>compute`` and so on,
nothing another application's Huey uses). ``handle_result`` writes into the same ``ResultStore`` as
the other stacks, so every stack is verified the same way; each consumer records in Redis when its
workers start, so the harness knows when to start the clock.

Messages are JSON (``JsonSerializer``), not Huey's default pickle: the one change to the library's
defaults, as the stock RQ worker runs with ``--serializer json``. Results are off, as the seed's
``ignore_result=True``: ``handle_result`` stores them itself.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

from huey import RedisHuey
from huey.registry import Message
from huey.serializer import Serializer

from shared import tasks
from shared.connection import connect
from shared.settings import Settings
from shared.store import ResultStore

STORE_NAME = "huey"
READY_KEY = f"pipeline:{STORE_NAME}:ready"
#: A consumer's name, in its environment (``env NAME=… huey_consumer``): its workers mark it ready.
NODE_ENV = "PIPELINE_BENCH_HUEY_NODE"
#: This benchmark process's own Huey names, put in the environment so its consumers use them too
#: (letters, digits and ``_`` only: Huey strips anything else from a name).
PREFIX_ENV = "PIPELINE_BENCH_HUEY_PREFIX"
PREFIX = os.environ.setdefault(PREFIX_ENV, f"bench_{uuid.uuid4().hex[:8]}_")
#: Role -> the attribute ``huey_consumer`` is pointed at.
INSTANCES = {"compute": "compute_huey", "result": "result_huey"}


class JsonSerializer(Serializer):
    """Huey's serializer with JSON in place of pickle: a task message (``Message``) goes as its
    fields; anything else Huey stores (it stores no results here) as a JSON value."""

    def _serialize(self, data: Any) -> bytes:
        if isinstance(data, Message):
            return json.dumps({"message": list(data)}).encode()
        return json.dumps({"value": data}).encode()

    def _deserialize(self, data: bytes) -> Any:
        decoded = json.loads(data)
        if "message" in decoded:
            return Message(*decoded["message"])
        return decoded["value"]


class HueyPair:
    """The compute and result Huey instances on the Redis of ``settings``, with the seed's tasks."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.redis_url
        self.store = ResultStore(connect(settings), STORE_NAME)
        self.hueys = {
            role: RedisHuey(PREFIX + role, url=settings.redis_url, results=False, serializer=JsonSerializer())
            for role in INSTANCES
        }
        store = self.store

        @self.hueys["result"].task()
        def handle_result(x: int, y: int, result: int) -> None:
            """Store the result at the other end (idempotent: a redelivery stores nothing new)."""
            store.put(*tasks.validate_result(x, y, result))

        @self.hueys["compute"].task()
        def compute(x: int, y: int) -> None:
            """Perform the computation and hand its result to ``handle_result``, as the seed does."""
            x, y = tasks.validate_point(x, y)
            handle_result(x, y, tasks.compute(x, y))

        self.compute, self.handle_result = compute, handle_result
        #: Role -> the name its task goes by in a message (the poison scenario writes these).
        self.task_names = {
            "compute": self.hueys["compute"]._registry.task_to_string(compute.task_class),
            "result": self.hueys["result"]._registry.task_to_string(handle_result.task_class),
        }
        for huey in self.hueys.values():
            huey.on_startup()(self._ready)

    def _ready(self) -> None:
        node = os.environ.get(NODE_ENV) or str(os.getpid())
        self.store.client.zadd(READY_KEY, {node: time.time()})


#: What ``huey_consumer`` runs: the pair on ``REDIS_URL``.
pair = HueyPair(Settings.from_env())
compute_huey = pair.hueys["compute"]
result_huey = pair.hueys["result"]
