"""What idle workers cost Redis: commands per second per worker, from ``INFO commandstats``.

A worker that waits for work still talks to Redis (heartbeats, maintenance, a blocking pop that
times out). The performance issue bounds that at 20 commands/s per worker; this counts every
command Redis executed over the window, including those inside Lua scripts, minus our own INFO
calls. The shared Redis may have other clients: the harness runs it against its private server.
"""

from __future__ import annotations

import time

import redis

#: Settle after the workers are live (first fetches, presence registration), then count this long.
SETTLE_S = 2.0
WINDOW_S = 10.0


def total_calls(client: redis.Redis) -> int:
    """Commands Redis has executed since its stats were last reset, every command type summed."""
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values() if isinstance(v, dict))


def commands_per_second(client: redis.Redis, workers: int, window: float = WINDOW_S) -> float:
    """Commands per second per worker while ``workers`` idle workers run (nothing else submitting)."""
    time.sleep(SETTLE_S)
    before = total_calls(client)
    time.sleep(window)
    after = total_calls(client)
    ours = 1  # the first INFO is counted in ``after``; the second one is not yet
    return (after - before - ours) / window / max(workers, 1)
