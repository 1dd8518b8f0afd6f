"""When each result first appears in the store: the end point of every latency sample.

Polling the results hash every millisecond adds half a poll interval on average, plus the sleep's
overshoot, to every sample: too coarse for a p50 of a few milliseconds. Redis can instead push a
keyspace event on every write to the hash; the watcher wakes on it, stamps the time, then lists
the hash to see which fields are new. Where ``CONFIG SET`` is refused (a managed Redis), it falls
back to polling. The server's ``notify-keyspace-events`` is restored afterwards.
"""

from __future__ import annotations

import threading
import time

import redis

from shared.store import ResultStore

#: Keyspace events (K) for hash commands (h): one per HSETNX that stores a result.
EVENTS = "Kh"
POLL_S = 0.001


class StoredAt(threading.Thread):
    def __init__(self, store: ResultStore) -> None:
        super().__init__(name="stored-at", daemon=True)
        self.client = store.client
        self.key = store.results_key
        self.first_seen: dict[bytes, float] = {}
        #: "push" (keyspace events) or "poll": the report says which one measured.
        self.method = "poll"
        self._done = threading.Event()
        self._restore: str | None = None
        self._pubsub: redis.client.PubSub | None = None

    def start(self) -> None:
        """Subscribe before returning, so no write made after this call goes unseen."""
        self._pubsub = self._subscribe()
        super().start()

    def _subscribe(self) -> redis.client.PubSub | None:
        try:
            old = str(self.client.config_get("notify-keyspace-events")["notify-keyspace-events"])
            self.client.config_set("notify-keyspace-events", "".join(sorted(set(old) | set(EVENTS))))
        except redis.ResponseError:  # CONFIG disabled or renamed
            return None
        self._restore = old
        db = self.client.connection_pool.connection_kwargs.get("db", 0)
        pubsub = self.client.pubsub()
        pubsub.subscribe(f"__keyspace@{db}__:{self.key}")
        while (reply := pubsub.get_message(timeout=1.0)) is None or reply["type"] != "subscribe":
            pass
        self.method = "push"
        return pubsub

    def run(self) -> None:
        pubsub = self._pubsub
        while not self._done.is_set():
            if pubsub is None:
                self._done.wait(POLL_S)
                self._stamp(time.perf_counter())
            elif pubsub.get_message(timeout=0.05) is not None:
                self._stamp(time.perf_counter())

    def _stamp(self, now: float) -> None:
        if len(self.first_seen) == self.client.hlen(self.key):
            return
        names: list[bytes] = self.client.hkeys(self.key)  # type: ignore[assignment]
        for name in names:
            self.first_seen.setdefault(name, now)

    def stop(self) -> None:
        self._done.set()
        self.join()
        if self._pubsub is not None:
            self._pubsub.close()
        if self._restore is not None:
            self.client.config_set("notify-keyspace-events", self._restore)
