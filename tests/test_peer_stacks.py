"""The peer baselines on Redis, ``celery-redis`` and ``huey``: the seed's grid end to end with their
stock workers, verified point by point; keys only under the run's own names, gone after cleanup;
``skipped: <reason>`` without the library or the broker; the poison scenario on each.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import redis
from huey.registry import Message
from rich.console import Console

from benchmarks import celery_app, chaos_report, huey_app
from benchmarks.celery_backend import CeleryBackend, delete_own_queues
from benchmarks.chaos import plan, run_scenario
from benchmarks.cli import CHAOS_STACKS
from benchmarks.faults import SCENARIOS
from benchmarks.harness import Harness
from benchmarks.huey_backend import HueyBackend, delete_own_keys
from benchmarks.measure import RunRecord, run_case
from benchmarks.poison import pickle_bomb
from benchmarks.stacks import Stack, select
from benchmarks.workloads import Case, Profile
from shared.embedded import free_port
from shared.settings import Settings
from shared.tasks import Grid

PEERS = ["celery-redis seed-defaults", "celery-redis tuned", "huey seed-defaults", "huey tuned"]
GRID = Grid(4, 4)
ONE_GRID = Profile("one-grid", (Case("grid", GRID),), repeats=1, warmup=False)
QUIET = Console(quiet=True)


def _own_key(key: str) -> bool:
    """A key the peer stacks may leave while running: the results' store, or under the run's names."""
    return key.startswith(("pipeline:", celery_app.PREFIX)) or (
        key.startswith("huey.") and huey_app.PREFIX in key
    )


@pytest.mark.slow
@pytest.mark.parametrize("label", PEERS)
def test_peer_stack_runs_the_grid_verified_on_keys_of_its_own(
    label: str, settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    (stack,) = select([label])
    backend = stack.make(settings)
    record = RunRecord(stack.stack, stack.profile, "grid", GRID.size, 2, 1, str(GRID), 0.0, None)

    run_case(backend, record, Case("grid", GRID), tmp_path)

    logs = "\n".join(p.read_text(errors="replace")[-1500:] for p in sorted(tmp_path.glob("*.log")))
    assert record.status == "ok" and record.verified, (record.problems, logs)
    assert backend.store.count() == GRID.size and backend.store.deliveries() == GRID.size
    keys = sorted(k.decode() for k in client.keys("*"))
    assert [k for k in keys if not _own_key(k)] == []  # Huey's empty lists are gone already

    if isinstance(backend, HueyBackend):
        delete_own_keys(backend.pair)
    else:
        assert isinstance(backend, CeleryBackend)
        delete_own_queues(backend.seed)
    left = sorted(k.decode() for k in client.keys("*"))
    assert [k for k in left if not k.startswith("pipeline:") or k.endswith(":ready")] == []


@pytest.mark.parametrize("label", PEERS)
def test_peer_stack_reads_skipped_without_its_library(
    label: str, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (stack,) = select([label])
    library = "huey" if stack.stack == "huey" else "celery"
    monkeypatch.setitem(sys.modules, library, None)  # what `import huey` meets where it is not installed

    doc = Harness(ONE_GRID, [stack], settings, tmp_path, QUIET).run()

    (row,) = doc["summary"]
    assert row["status"].startswith(f"skipped: {library} is not installed (pip install '.[bench]')"), row
    assert doc["runs"] == []


def test_peer_stacks_read_skipped_when_their_redis_is_unreachable(tmp_path: Path) -> None:
    stacks = select(["celery-redis", "huey"])
    dead = Settings(f"redis://127.0.0.1:{free_port()}/0")
    doc = Harness(ONE_GRID, stacks, dead, tmp_path, QUIET).run()

    assert [(r["stack"], r["profile"]) for r in doc["summary"]] == [s.key for s in stacks]
    for row in doc["summary"]:
        assert row["status"].startswith("skipped: ") and "127.0.0.1" in row["status"], row


def test_huey_messages_are_json_and_a_pickle_is_never_loaded(tmp_path: Path) -> None:
    serializer = huey_app.JsonSerializer()
    message = Message("id-1", "benchmarks.huey_app.compute", args=(3, 4), kwargs={})
    assert serializer.deserialize(serializer.serialize(message)) == message._replace(args=[3, 4])
    marker = tmp_path / "pickle-was-run"
    with pytest.raises(ValueError):
        serializer.deserialize(pickle_bomb(marker))
    assert not marker.exists()


def test_make_chaos_runs_every_scenario_on_one_profile_of_each_peer() -> None:
    runs = [(s.name, st.label) for s, st in plan((), (), CHAOS_STACKS)]
    for label in ("celery-redis seed-defaults", "huey seed-defaults"):
        assert [name for name, stack in runs if stack == label] == [s.name for s in SCENARIOS]
        (stack,) = select([label])
        assert not stack.ours  # a baseline: reported, not required to pass


@pytest.mark.slow
@pytest.mark.parametrize("label", ["celery-redis seed-defaults", "huey seed-defaults"])
def test_poison_on_a_peer_stack_is_dropped_never_unpickled(label: str, tmp_path: Path) -> None:
    """The chaos poison scenario on 500 tasks, 50 malformed messages per queue: the grid is
    stored, nothing is kept of the poison (neither library keeps a failed message), no pickle ran."""
    poison = dataclasses.replace(next(s for s in SCENARIOS if s.name == "poison"), poison_per_queue=50)
    (stack,) = select([label])
    result = run_scenario(poison, stack, Grid(20, 25), tmp_path)

    logs = "\n".join(p.read_text(errors="replace")[-1500:] for p in sorted(tmp_path.glob("*.log")))
    assert result.lost == 0 and result.wrong == 0, logs
    assert result.poison_injected == 100 and result.poison_accounted is None
    assert not result.pickle_file_created
    assert result.workers_alive, logs
    assert not result.required and not result.passed  # a baseline's failure, reported with why
    assert result.note and chaos_report.notes({"chaos": [result.as_json()]})[-1].endswith(result.note)


def test_peer_stacks_are_in_the_table_as_baselines() -> None:
    peers: list[Stack] = select(["celery-redis", "huey"])
    assert [s.label for s in peers] == PEERS
    assert not any(s.ours for s in peers)
