"""The multi-host scenario (``python -m benchmarks.hosts``): Redis, compute and result workers on
their own network namespaces; both backends verified, then again with ``compute-a`` cut mid-run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import hosts, netns

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def ours() -> list[str]:
    """Namespaces and links of the harness still present (there must be none between runs)."""
    names = [line.split()[0] for line in netns.ip("netns", "list", check=False).splitlines() if line]
    links = [line.split(":")[1].strip() for line in netns.ip("-o", "link", "show").splitlines()]
    return [n for n in names + links if n.startswith(hosts.PREFIX)]


@pytest.fixture
def namespaces() -> None:
    if reason := netns.namespaces_unavailable(hosts.PREFIX):
        pytest.skip(f"cannot run the multi-host scenario here: {reason}")


@pytest.mark.usefixtures("namespaces")
def test_cleanup_removes_a_crashed_runs_leftovers() -> None:
    netns.ip("netns", "add", f"{hosts.PREFIX}leftover")
    netns.ip("link", "add", f"{hosts.PREFIX}br-left", "type", "bridge")
    sleeper = subprocess.Popen(["ip", "netns", "exec", f"{hosts.PREFIX}leftover", "sleep", "600"])
    try:
        assert len(ours()) == 2
        netns.cleanup(hosts.PREFIX)
        assert sleeper.wait(10) == -9
        assert ours() == []
    finally:
        sleeper.kill()
        netns.cleanup(hosts.PREFIX)


@pytest.mark.usefixtures("namespaces")
def test_both_backends_across_hosts_and_after_a_cut(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "benchmarks.hosts", "--grid", "30x30", "--timeout", "40"]
    try:
        done = subprocess.run(
            [*command, "--log-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=175
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the harness overran its own timeouts; so far:\n{exc.stdout!r}")
    finally:
        netns.cleanup(hosts.PREFIX)  # also after a timeout, which kills the harness before its own cleanup
    assert ours() == []
    if done.returncode == netns.SKIPPED:
        pytest.skip(done.stderr.strip())
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line.split(":")[0] for line in lines] == [
        "dramatiq steady",
        "dramatiq cut",
        "rq steady",
        "rq cut",
    ]
    for line in lines:
        assert ": 900/900 results verified" in line, line
    for line in lines[0::2]:
        assert line.endswith("workers: collector x4, compute-a x2, compute-b x2"), line
    for line in lines[1::2]:
        assert "recovery " in line and "(fault -> last result stored" in line, line
