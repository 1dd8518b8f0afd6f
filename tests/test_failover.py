"""One Sentinel failover per backend on a small grid (``python -m benchmarks.failover``): a planned
switchover (``redis-pipeline switchover``: writes paused, ``SENTINEL FAILOVER``, the old master made
a replica) while the grid is being submitted and computed loses nothing, mixes nothing up, and every
worker lives on and follows the new master. Skipped, with the reason, where namespaces cannot be made.

The submitter is still sending when the switchover starts: with writes paused until the replicas
hold everything, nothing the old master acknowledged is missing from the new one, and what was
paused goes to the new master. (A plain ``SENTINEL FAILOVER`` loses acknowledged submissions below
the knob at every replica: ``make failover`` measures that, nothing asserts it.) The knob is on, as
it would be in production.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import netns
from benchmarks.sentinel_hosts import NET

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
KNOB = 1


def leftovers() -> list[str]:
    names = [line.split()[0] for line in netns.ip("netns", "list", check=False).splitlines() if line]
    links = [line.split(":")[1].strip() for line in netns.ip("-o", "link", "show").splitlines()]
    return [n for n in names + links if n.startswith(NET.prefix)]


@pytest.mark.parametrize("stack", ["dramatiq ours", "rq ours"])
def test_a_switchover_mid_run_loses_nothing(stack: str, tmp_path: Path) -> None:
    if reason := netns.namespaces_unavailable(NET.prefix):
        pytest.skip(f"cannot run the failover scenario here: {reason}")
    out = tmp_path / "failover.json"
    command = [sys.executable, "-m", "benchmarks.failover", "--scenario", "switchover"]
    command += ["--stack", stack, "--min-replicas", str(KNOB), "--grid", "10x20"]
    command += ["--cpu-ms", "20", "--timeout", "40", "--log-dir", str(tmp_path), "--out", str(out)]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=150)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the harness overran its own timeouts; so far:\n{exc.stdout!r}")
    finally:
        netns.cleanup(NET.prefix)  # also after a timeout, which kills the harness before its own cleanup
    assert leftovers() == []
    if done.returncode == netns.SKIPPED:
        pytest.skip(done.stderr.strip())
    assert out.exists(), done.stdout + done.stderr
    (row,) = json.loads(out.read_text())["failover"]
    shown = f"{row}\n{done.stdout}\n{done.stderr}"
    assert 0 < row["stored_at_fault"] < row["tasks"], shown  # the fault struck mid-run
    assert (row["lost"], row["wrong"], row["doubled"]) == (0, 0, 0), shown
    assert row["workers_alive"] and row["followed"], shown
    assert row["recovery_s"] is not None and row["recovery_s"] <= 30, shown
