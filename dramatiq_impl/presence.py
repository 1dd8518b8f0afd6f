"""Worker presence for the ops view: Dramatiq's heartbeats name a broker id only, not where it runs.

Each worker process writes ``<ns>:__workers__.<broker_id>`` (JSON: host, address, pid, queues) with
a TTL, and its last-seen time in the zset ``<ns>:__workers__``, refreshed on a timer; both go on
a clean shutdown, and a killed worker's entry expires by itself.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import q_name
from dramatiq.middleware import Middleware

#: Seconds between refreshes, and how long an entry outlives its last refresh.
INTERVAL = 5.0
TTL = 15.0

logger = logging.getLogger(__name__)


def index_key(namespace: str) -> str:
    return f"{namespace}:__workers__"


def info_key(namespace: str, broker_id: str) -> str:
    return f"{index_key(namespace)}.{broker_id}"


class WorkerPresence(Middleware):
    """Registers this worker process in Redis and keeps the entry fresh until it stops."""

    def __init__(self, interval: float = INTERVAL, ttl: float = TTL) -> None:
        self.interval = interval
        self.ttl = ttl
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if not isinstance(broker, RedisBroker):
            return
        queues = worker.consumer_whitelist or broker.get_declared_queues()
        info = {
            "host": socket.gethostname(),
            "address": _address(broker),
            "pid": os.getpid(),
            "queues": sorted({q_name(q) for q in queues}),
        }
        self._stop.clear()
        self._refresh(broker, info)
        self._thread = threading.Thread(
            target=self._run, args=(broker, info), name="worker-presence", daemon=True
        )
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        if self._thread is None or not isinstance(broker, RedisBroker):
            return
        self._thread.join(self.interval)
        try:
            broker.client.delete(info_key(broker.namespace, broker.broker_id))
            broker.client.zrem(index_key(broker.namespace), broker.broker_id)
        except redis.RedisError:  # Redis away at the stop: the entry expires by itself (TTL)
            logger.warning("Could not remove this worker's presence entry; it expires in %g s.", self.ttl)

    def _run(self, broker: RedisBroker, info: dict[str, Any]) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._refresh(broker, info)
            except Exception:  # a Redis blip must not kill the timer; the next tick retries
                logger.warning("Could not refresh worker presence.", exc_info=True)

    def _refresh(self, broker: RedisBroker, info: dict[str, Any]) -> None:
        namespace, broker_id = broker.namespace, broker.broker_id
        now = time.time()
        pipe = broker.client.pipeline(transaction=False)
        pipe.set(info_key(namespace, broker_id), json.dumps(info), px=int(self.ttl * 1000))
        pipe.zadd(index_key(namespace), {broker_id: now})
        # Entries of workers killed long ago; their info keys have expired already.
        pipe.zremrangebyscore(index_key(namespace), 0, now - 10 * self.ttl)
        pipe.execute()


def _address(broker: RedisBroker) -> str:
    """This process's ip:port as Redis sees it (as ``rq`` records for its workers)."""
    try:
        return str(broker.client.client_info()["addr"])
    except Exception:  # CLIENT INFO needs Redis >= 6.2; the rest of the entry still helps
        return ""
