"""Chunked mode: the chunk helpers on their own, then whole grids through stock-CLI workers."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from shared import seed
from shared.backend import load_chunking_backend
from shared.chunks import MAX_CHUNK_SIZE, chunked, compute_chunk
from shared.runner import run_grid
from shared.settings import Settings
from shared.tasks import Grid, InvalidArguments


def test_chunked_splits_in_order_with_a_short_last_chunk() -> None:
    chunks = list(chunked(Grid(3, 3).points(), 4))
    assert [len(c) for c in chunks] == [4, 4, 1]
    assert [p for c in chunks for p in c] == list(Grid(3, 3).points())
    for bad in (0, MAX_CHUNK_SIZE + 1, True):
        with pytest.raises(InvalidArguments, match="chunk size"):
            list(chunked([(0, 0)], bad))


def test_a_chunk_is_checked_as_json_lists_and_the_bad_point_is_named() -> None:
    assert seed.compute_chunk.call([[0, 1], (2, 3)]).args == ([[0, 1], [2, 3]],)
    for bad, named in (
        ([[0, 1], [2, "3"]], r"^compute_chunk\(\): points\[1\]\[1\]: Input should be a valid integer"),
        ([[0, 1], [2]], r"^compute_chunk\(\): points\[1\]: List should have at least 2 items"),
        (
            [[0, 10**7]],
            r"^compute_chunk\(\): points\[0\]\[1\]: Input should be less than or equal to 1000000",
        ),
        ("0,1", r"^compute_chunk\(\): points: Input should be a valid array"),
        ([], r"^compute_chunk\(\): points: List should have at least 1 item"),
    ):
        with pytest.raises(InvalidArguments, match=named):
            seed.compute_chunk.call(bad)


def test_a_chunks_rows_are_checked() -> None:
    assert seed.handle_results.call([[2, 3, 6]]).args == ([[2, 3, 6]],)
    with pytest.raises(
        InvalidArguments, match=r"^handle_results\(\): rows\[0\]\[2\]: Input should be a valid integer"
    ):
        seed.handle_results.call([[2, 3, "6"]])
    with pytest.raises(InvalidArguments, match=r"rows\[0\]: Value error, x=2000000 is outside"):
        seed.handle_results.call([[2_000_000, 3, 6]])


def test_a_failing_point_is_retried_alone_and_the_rest_of_its_chunk_goes_on() -> None:
    def flaky(x: int, y: int) -> int:
        if (x, y) == (1, 1):
            raise ConnectionError("lost the GPU")
        return x * y

    retried: list[tuple[int, int]] = []
    rows = compute_chunk([(0, 1), (1, 1), (2, 3)], lambda x, y: retried.append((x, y)), fn=flaky)
    assert rows == [[0, 1, 0], [2, 3, 6]]
    assert retried == [(1, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dramatiq", "rq"])
def test_chunked_grid_through_stock_workers(
    name: str, settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    backend = load_chunking_backend(name, settings)
    grid = Grid(7, 9)  # 63 points: six chunks of 10 and one of 3
    result = run_grid(backend, grid, compute_workers=2, log_dir=tmp_path, chunk_size=10, keep=True)
    assert result.ok, result.summary()
    assert not result.verification.redelivered
    assert backend.store.get(6, 8) == 48
    assert sum(backend.queue_depths().values()) == 0


@pytest.mark.parametrize("name", ["dramatiq", "rq"])
def test_a_chunk_with_one_bad_point_is_refused_whole_at_submit(
    name: str, settings: Settings, client: redis.Redis
) -> None:
    backend = load_chunking_backend(name, settings)
    with pytest.raises(
        ValueError, match=r"^calls\[0\]: compute_chunk\(\): points\[2\]\[0\]: Input should be less"
    ):
        backend.submit_chunks([(1, 1), (1, 2), (2_000_000, 1), (3, 3)], size=3)
    assert sum(backend.queue_depths().values()) == 0
    assert backend.submit_chunks(Grid(2, 3).points(), size=4) == 6
    assert sum(backend.queue_depths().values()) == 2
    backend.purge()
