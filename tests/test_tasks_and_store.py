from __future__ import annotations

import pytest
import redis

from shared.settings import Settings, redact_url
from shared.store import ResultStore
from shared.tasks import ARG_MAX, ARG_MIN, Grid, validate_point


@pytest.mark.parametrize(
    ("x", "y", "named"),
    [
        ("1", 2, "x"),
        (1, 2.0, "y"),
        (True, 1, "x"),
        (None, 1, "x"),
        (ARG_MAX + 1, 0, "x"),
        (0, ARG_MIN - 1, "y"),
    ],
)
def test_invalid_arguments_name_the_argument(x: object, y: object, named: str) -> None:
    with pytest.raises(ValueError, match=rf"^{named}\b"):
        validate_point(x, y)


def test_valid_arguments_pass() -> None:
    assert validate_point(ARG_MIN, ARG_MAX) == (ARG_MIN, ARG_MAX)


def test_grid_parse() -> None:
    grid = Grid.parse("3x2")
    assert grid.size == 6
    assert list(grid.points()) == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    for bad in ("3", "axb", "0x5", "3x-1"):
        with pytest.raises(ValueError, match="grid"):
            Grid.parse(bad)


def test_redact_url() -> None:
    assert redact_url("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact_url("rediss://user:s3cret@host/1") == "rediss://user:***@host/1"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert "s3cret" not in Settings("redis://:s3cret@h:1/0").redacted_url


def test_store_is_idempotent_and_counts_deliveries(client: redis.Redis) -> None:
    store = ResultStore(client, "t")
    assert store.put(2, 3, 6) is True
    assert store.put(2, 3, 6) is False
    assert store.put(2, 3, 999) is False  # a redelivery never overwrites
    assert store.put_many([(0, 0, 0), (0, 1, 0), (2, 3, 6)]) == 2
    assert store.get(2, 3) == 6
    assert store.get(9, 9) is None
    assert store.count() == 3
    assert store.deliveries() == 6
    store.clear()
    assert store.count() == 0


def test_verify_reports_missing_wrong_unexpected_and_redelivered(client: redis.Redis) -> None:
    store = ResultStore(client, "t")
    grid = Grid(2, 2)
    store.put_many([(0, 0, 0), (0, 1, 0), (1, 0, 5), (7, 7, 49), (0, 0, 0)])
    report = store.verify(grid)
    assert not report.ok
    assert report.missing == [(1, 1)]
    assert report.wrong == [((1, 0), 5)]
    assert report.unexpected == [(7, 7)]
    assert report.redelivered == {(0, 0): 2}
    assert report.verified == 2
    assert "1 missing ((1, 1))" in report.problems()
    store.put(1, 1, 1)
    client.hset(store.results_key, "1,0", 0)
    client.hdel(store.results_key, "7,7")
    assert store.verify(grid).ok


def test_backends_have_separate_namespaces(client: redis.Redis) -> None:
    a, b = ResultStore(client, "dramatiq"), ResultStore(client, "rq")
    a.put(1, 1, 1)
    assert (a.count(), b.count()) == (1, 0)
