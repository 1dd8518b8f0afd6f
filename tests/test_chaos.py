"""Issue #4's reliability scenarios on our two paths: nothing lost, nothing wrong, poison kept.

Same code as ``make chaos`` on a smaller grid (500 tasks, 200 poison messages per queue) to keep
CI in minutes; recovery is checked against the same 30 s bar. Each scenario runs against its own
private redis-server with AOF, so a Redis restart is real.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from benchmarks.chaos import RECOVERY_LIMIT_S, run_scenario
from benchmarks.faults import SCENARIOS, Scenario
from benchmarks.stacks import Chunked, select
from shared.backend import load_chunking_backend
from shared.tasks import Grid

pytestmark = pytest.mark.slow

GRID = Grid(20, 25)


@pytest.mark.parametrize("stack_label", ["dramatiq ours", "rq ours", "dramatiq chunked", "rq chunked"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_loses_nothing(scenario: Scenario, stack_label: str, tmp_path: Path) -> None:
    if scenario.poison_per_queue:
        scenario = dataclasses.replace(scenario, poison_per_queue=200)
    (stack,) = select([stack_label])
    if stack.profile == "chunked":  # 10 chunks of 50, so the fault lands between and inside chunks
        name = stack.stack  # bound now: the lambda must not read the rebound ``stack``
        stack = dataclasses.replace(stack, make=lambda s: Chunked(load_chunking_backend(name, s), 50))
    result = run_scenario(scenario, stack, GRID, tmp_path)
    if not scenario.poison_per_queue:  # poison is written between the grid's two halves instead
        assert result.stored_at_fault < GRID.size, "the fault struck after the run was over"
    logs = "\n".join(p.read_text(errors="replace")[-1500:] for p in sorted(tmp_path.glob("*.log")))
    assert result.lost == 0, logs
    assert result.wrong == 0
    assert result.recovery_s is not None and result.recovery_s <= RECOVERY_LIMIT_S
    assert result.workers_alive, logs
    assert not result.pickle_file_created
    if scenario.poison_per_queue:
        assert result.poison_injected == 2 * scenario.poison_per_queue
        assert result.poison_accounted == result.poison_injected
        assert result.poison_without_reason == 0
    assert result.passed
