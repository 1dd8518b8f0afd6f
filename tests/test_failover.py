"""One Sentinel failover per backend on a small grid (``python -m benchmarks.failover``): a planned
``SENTINEL FAILOVER`` while the grid is being computed loses nothing, mixes nothing up, and every
worker lives on and follows the new master. Skipped, with the reason, where namespaces cannot be made.

The whole grid is queued before the fault, so nothing may be lost whatever ``PIPELINE_MIN_REPLICAS``
says: a replica holds a prefix of the master's writes, so the promoted one has every message
queued or in flight as of the switch, and what the old master took after it (fetches, acks,
results) is undone, to be delivered again. A submitter still sending across the fault may lose
acknowledged submissions with the knob at 0 (and, in a switchover, at 1: see the README's failover
notes); ``make failover`` measures that, nothing asserts it. The knob is on, as it would be in
production.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import hosts
from benchmarks.sentinel_hosts import NET

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
KNOB = 1


def leftovers() -> list[str]:
    names = [line.split()[0] for line in hosts.ip("netns", "list", check=False).splitlines() if line]
    links = [line.split(":")[1].strip() for line in hosts.ip("-o", "link", "show").splitlines()]
    return [n for n in names + links if n.startswith(NET.prefix)]


@pytest.mark.parametrize("stack", ["dramatiq ours", "rq ours"])
def test_a_switchover_mid_run_loses_nothing(stack: str, tmp_path: Path) -> None:
    if reason := hosts.namespaces_unavailable(NET.prefix):
        pytest.skip(f"cannot run the failover scenario here: {reason}")
    out = tmp_path / "failover.json"
    command = [sys.executable, "-m", "benchmarks.failover", "--scenario", "sentinel-failover"]
    command += ["--stack", stack, "--min-replicas", str(KNOB), "--grid", "10x20", "--submit-before"]
    command += ["--cpu-ms", "20", "--timeout", "40", "--log-dir", str(tmp_path), "--out", str(out)]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=150)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the harness overran its own timeouts; so far:\n{exc.stdout!r}")
    finally:
        hosts.cleanup(NET.prefix)  # also after a timeout, which kills the harness before its own cleanup
    assert leftovers() == []
    if done.returncode == hosts.SKIPPED:
        pytest.skip(done.stderr.strip())
    assert out.exists(), done.stdout + done.stderr
    (row,) = json.loads(out.read_text())["failover"]
    shown = f"{row}\n{done.stdout}\n{done.stderr}"
    assert 0 < row["stored_at_fault"] < row["tasks"], shown  # the fault struck mid-run
    assert (row["lost"], row["wrong"], row["doubled"]) == (0, 0, 0), shown
    assert row["workers_alive"] and row["followed"], shown
    assert row["recovery_s"] is not None and row["recovery_s"] <= 30, shown
