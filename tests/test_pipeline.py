"""Both backends, end to end, through workers started with the stock CLIs."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from shared.backend import load_backend
from shared.runner import poll_pause, run_grid
from shared.settings import Settings
from shared.tasks import Grid
from tests.helpers import wait_until, workers

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["dramatiq", "rq"])
def test_grid_through_stock_workers(
    name: str, settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    backend = load_backend(name, settings)
    result = run_grid(backend, Grid(4, 5), compute_workers=2, log_dir=tmp_path, keep=True)
    assert result.ok, result.summary()
    assert result.summary().startswith(f"{name}: 20/20 results verified in ")
    assert backend.store.get(3, 4) == 12
    assert sum(backend.queue_depths().values()) == 0


def test_dramatiq_send_as_in_the_readme(settings: Settings, client: redis.Redis, tmp_path: Path) -> None:
    from dramatiq_impl.tasks import compute
    from shared.store import ResultStore

    backend = load_backend("dramatiq", settings)
    with workers(backend, tmp_path, ["compute"], ["result"]):
        for x, y in [(6, 7), (-3, 5), (1_000_000, 1_000_000)]:
            compute.send(x, y)
        store = ResultStore.from_env("dramatiq")
        assert wait_until(lambda: store.count() == 3)
    assert store.get(6, 7) == 42
    assert store.get(-3, 5) == -15
    assert store.get(1_000_000, 1_000_000) == 10**12


def test_rq_one_worker_on_both_queues(settings: Settings, client: redis.Redis, tmp_path: Path) -> None:
    from rq_impl.tasks import compute
    from shared.store import ResultStore

    backend = load_backend("rq", settings)
    with workers(backend, tmp_path, ["compute", "result"]):
        for x, y in [(6, 7), (-3, 5)]:
            compute.delay(x, y)
        store = ResultStore.from_env("rq")
        assert wait_until(lambda: store.count() == 2)
    assert (store.get(6, 7), store.get(-3, 5)) == (42, -15)


@pytest.mark.parametrize("name", ["dramatiq", "rq"])
def test_invalid_arguments_refused_before_enqueue(name: str, settings: Settings, client: redis.Redis) -> None:
    backend = load_backend(name, settings)
    with pytest.raises(ValueError, match=r"^compute\(\): y: Input should be a valid integer, got str '2'"):
        backend.submit(1, "2")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"^calls\[1\]: compute\(\): x: Input should be less than or equal to 1000000"
    ):
        backend.submit_many([(1, 1), (2_000_000, 1)])
    assert sum(backend.queue_depths().values()) == 0


def test_task_shortcuts_validate_too(client: redis.Redis) -> None:
    from dramatiq_impl.tasks import compute as dramatiq_compute
    from rq_impl.tasks import compute as rq_compute

    with pytest.raises(ValueError, match=r"^compute\(\): x: Input should be a valid integer, got str '6'"):
        dramatiq_compute.send("6", 7)
    with pytest.raises(ValueError, match=r"^compute\(\): y: Input should be a valid integer, got float 7.5"):
        rq_compute.delay(6, 7.5)
    assert client.dbsize() == 0


def test_waiting_looks_often_only_near_the_end() -> None:
    # Nothing stored yet: the rate is unknown, look again soon.
    assert poll_pause(0, 1000, 0.5, 0.002, 0.02) == 0.002
    # 100 of 1,000 in 1 s: ~9 s left, so the longest pause.
    assert poll_pause(100, 1000, 1.0, 0.002, 0.02) == 0.02
    # 990 of 1,000 in 1 s: ~10 ms left, an eighth of it is below the floor.
    assert poll_pause(990, 1000, 1.0, 0.002, 0.02) == 0.002
    # 900 of 1,000 in 1 s: ~111 ms left, an eighth of it.
    assert poll_pause(900, 1000, 1.0, 0.002, 0.02) == pytest.approx(0.1111 / 8, rel=0.01)
