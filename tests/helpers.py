"""Small waiting and worker helpers shared by the integration tests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from shared.backend import Backend
from shared.workers import WorkerGroup


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true; False on timeout (tests assert on it, never on speed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@contextmanager
def workers(backend: Backend, tmp_path: Path, *queue_lists: Sequence[str]) -> Iterator[WorkerGroup]:
    """Start one stock-CLI worker per queue list and wait until each is live in Redis."""
    since = time.time() - 1
    env = {**os.environ, "REDIS_URL": backend.settings.redis_url}
    with WorkerGroup(env, tmp_path) as group:
        for queues in queue_lists:
            group.start("-".join(queues), backend.worker_command(queues))
        live = wait_until(lambda: backend.live_workers(since) >= len(queue_lists) or bool(group.dead()))
        assert live and not group.dead(), "\n".join(w.tail() for w in group.workers)
        yield group
