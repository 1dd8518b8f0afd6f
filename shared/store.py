"""The result store "at the other end": every (x, y) stored exactly once, every delivery counted.

Layout, per backend namespace ``pipeline:<backend>``:
  ``…:results``     hash ``"x,y"`` -> result, written with HSETNX so a redelivery never overwrites;
  ``…:deliveries``  hash ``"x,y"`` -> how many times ``handle_result`` delivered that point.
Both writes of a point go in one atomic script call; a chunk of points goes in one round trip too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis

from shared import replication
from shared.connection import connect
from shared.settings import Settings
from shared.tasks import Grid, Point, compute
from shared.verification import Verification

KEY_PREFIX = "pipeline"

#: ``put``'s writes for a Lua script that stores results together with other work (Dramatiq's
#: group commit writes them in the same script as the message's ack). The script binds
#: ``ARGV[i]`` .. ``ARGV[i + 3]`` to one ``script_row``: results key, deliveries key, field, value.
PUT_ROW_LUA = """
    redis.call("hsetnx", ARGV[i], ARGV[i + 2], ARGV[i + 3])
    redis.call("hincrby", ARGV[i + 1], ARGV[i + 2], 1)
"""
#: (results key, deliveries key, field, value): one row's arguments for ``PUT_ROW_LUA``.
ScriptRow = tuple[str, str, str, int]
#: Lua: ``PUT_ROW_LUA`` for every row of ARGV, atomically; returns how many rows were new.
PUT_ROWS_LUA = (
    "local new = 0\nfor i = 1, #ARGV, 4 do\n"
    + PUT_ROW_LUA.replace('redis.call("hsetnx"', 'new = new + redis.call("hsetnx"')
    + "end\nreturn new\n"
)


def put_script_rows(client: redis.Redis, rows: Sequence[ScriptRow]) -> int:
    """Store ``rows`` in one atomic round trip, confirmed on replicas if ``PIPELINE_MIN_REPLICAS``
    asks (``shared.replication``); returns how many were new."""
    if not rows:
        return 0
    script = client.register_script(PUT_ROWS_LUA)
    return int(replication.call(client, script, [], [value for row in rows for value in row]))


def _field(x: int, y: int) -> str:
    return f"{x},{y}"


def _point(name: bytes | str) -> Point:
    x, y = (name.decode() if isinstance(name, bytes) else name).split(",")
    return int(x), int(y)


class ResultStore:
    def __init__(self, client: redis.Redis, backend: str) -> None:
        self.client = client
        self.backend = backend
        self.results_key = f"{KEY_PREFIX}:{backend}:results"
        self.deliveries_key = f"{KEY_PREFIX}:{backend}:deliveries"

    @classmethod
    def from_env(cls, backend: str, settings: Settings | None = None) -> ResultStore:
        return cls(connect(settings or Settings.from_env()), backend)

    def put(self, x: int, y: int, result: int) -> bool:
        """Store one result; True if it was new, False if this was a redelivery."""
        return self.put_many([(x, y, result)]) == 1

    def put_many(self, rows: Iterable[tuple[int, int, int]]) -> int:
        """Store many results in one round trip; returns how many were new."""
        return put_script_rows(self.client, [self.script_row(x, y, result) for x, y, result in rows])

    def script_row(self, x: int, y: int, result: int) -> ScriptRow:
        """The arguments ``PUT_ROW_LUA`` needs to store one result as ``put`` does."""
        return self.results_key, self.deliveries_key, _field(x, y), result

    def get(self, x: int, y: int) -> int | None:
        value = self.client.hget(self.results_key, _field(x, y))
        return None if value is None else int(value)

    def count(self) -> int:
        return int(self.client.hlen(self.results_key))

    def deliveries(self) -> int:
        """Total deliveries seen (count() of them were first deliveries)."""
        return sum(int(v) for v in self.client.hvals(self.deliveries_key))

    def clear(self) -> None:
        self.client.delete(self.results_key, self.deliveries_key)

    def verify(self, grid: Grid) -> Verification:
        """Check every point of ``grid``: stored once, equal to ``compute(x, y)``, nothing else stored."""
        results = {_point(k): int(v) for k, v in self.client.hgetall(self.results_key).items()}
        deliveries = {_point(k): int(v) for k, v in self.client.hgetall(self.deliveries_key).items()}
        report = Verification(expected=grid.size, stored=len(results))
        for x, y in grid.points():
            value = results.get((x, y))
            if value is None:
                report.missing.append((x, y))
            elif value != compute(x, y):
                report.wrong.append(((x, y), value))
        report.unexpected = sorted(p for p in results if p not in grid)
        report.redelivered = {p: n for p, n in deliveries.items() if n > 1}
        return report
